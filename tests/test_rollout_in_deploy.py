"""The ECS rollout shown while a stack deploys (issue #13): stacks.deploy polls rollout.ServiceProgress, and a
failed deploy's message carries the stopped tasks' reasons and exit codes. CloudFormation is the emulator (a
stack update that fails and rolls back); ECS answers are recorded ones (the emulator's ECS runs no tasks),
the same shapes tests/test_rollout.py checks against the ECS API model."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import pytest

from copilot_doit import rollout, stacks
from copilot_doit.errors import StageFailed

pytestmark = pytest.mark.e2e

CLUSTER = "demo-test-Cluster-AbCdEf"
SERVICE = "demo-test-api-Service-XyZ123"
TASK = f"arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/3f2a1b9c0123456789abcdef01234567"
TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/demo-test-api:4"


class RecordedEcs:
    """ECS as a failing rollout answers it, on every poll: the new deployment FAILED by the circuit breaker,
    one task stopped because its essential container exited with code 1."""

    def __init__(self, since: datetime):
        self.since = since
        self.calls: list[str] = []

    def describe_services(self, cluster, services):
        self.calls.append("DescribeServices")
        t = self.since
        return {"services": [{
            "serviceName": SERVICE, "status": "ACTIVE",
            "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
            "deployments": [
                {"id": "ecs-svc/2", "status": "PRIMARY", "taskDefinition": TD, "desiredCount": 1, "pendingCount": 0,
                 "runningCount": 0, "failedTasks": 3, "createdAt": t, "updatedAt": t, "rolloutState": "FAILED",
                 "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start."}],
            "events": [{"id": "e1", "createdAt": t, "message": f"(service {SERVICE}) deployment ecs-svc/2 deployment "
                                                                 "failed: tasks failed to start."}]}], "failures": []}

    def list_tasks(self, **kwargs):
        self.calls.append("ListTasks")
        return {"taskArns": [TASK]}

    def describe_tasks(self, cluster, tasks):
        self.calls.append("DescribeTasks")
        return {"tasks": [{"taskArn": TASK, "taskDefinitionArn": TD, "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
                           "stoppedReason": "Essential container in task exited", "stopCode": "EssentialContainerExited",
                           "stoppingAt": self.since, "stoppedAt": self.since, "startedBy": "ecs-svc/2",
                           "containers": [{"name": "api", "exitCode": 1, "lastStatus": "STOPPED"}]}], "failures": []}

    def describe_task_definition(self, taskDefinition):
        return {"taskDefinition": {"containerDefinitions": [{"name": "api", "essential": True}]}}


@pytest.fixture
def target(services_up, tmp_path):
    from copilot_doit.targets.local import LocalTarget
    from copilot_doit.workspace import EnvSettings
    return LocalTarget(EnvSettings(name="test", target="local", region="us-east-1"), tmp_path)


def test_a_failed_rollout_prints_and_reports_why_the_tasks_stopped(target, capsys):
    name = "r" + uuid.uuid4().hex[:10]
    ok = {"Resources": {"Log": {"Type": "AWS::Logs::LogGroup"}}}
    stacks.deploy(target, name, json.dumps(ok), {}, {"k": "v"})
    # An update whose resource fails (a table name that is taken; the emulator, as AWS, rolls the update
    # back): the deploy polls the rollout meanwhile.
    table = {"TableName": name, "BillingMode": "PAY_PER_REQUEST",
             "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
             "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}
    target.client("dynamodb").create_table(**table)
    bad = {"Resources": {"Log": {"Type": "AWS::Logs::LogGroup"},
                         "Table": {"Type": "AWS::DynamoDB::Table", "Properties": table}}}
    since = datetime.fromtimestamp(time.time() - 5, timezone.utc)
    ecs = RecordedEcs(since)
    progress = rollout.ServiceProgress(ecs, CLUSTER, lambda: SERVICE, since, "api")
    capsys.readouterr()
    with pytest.raises(StageFailed) as failed:
        stacks.deploy(target, name, json.dumps(bad), {}, {"k": "v"}, progress=progress)
    out = capsys.readouterr().out
    assert "DescribeServices" in ecs.calls and "DescribeTasks" in ecs.calls
    assert "task 3f2a1b9c stopped: Essential container in task exited (container api exit code 1)" in out, out
    assert "circuit breaker" in out, out
    message = str(failed.value)
    assert f"stack {name} ended UPDATE_ROLLBACK_COMPLETE" in message, message
    assert "last stopped tasks: task 3f2a1b9c stopped: Essential container in task exited (container api exit code 1)" \
        in message, message


def test_an_ecs_error_stops_the_watch_not_the_deploy(target, capsys):
    import botocore.exceptions

    class Denied:
        def describe_services(self, **_):
            raise botocore.exceptions.ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                                                  "DescribeServices")

    name = "r" + uuid.uuid4().hex[:10]
    progress = rollout.ServiceProgress(Denied(), CLUSTER, lambda: SERVICE, datetime.now(timezone.utc), "api")
    out = stacks.deploy(target, name, json.dumps({"Resources": {"Log": {"Type": "AWS::Logs::LogGroup"}}}), {},
                        {"k": "v"}, progress=progress)
    assert out["status"] == "CREATE_COMPLETE"
    text = capsys.readouterr().out
    assert text.count("service api: rollout not shown") == 1 and "AccessDenied" in text, text
