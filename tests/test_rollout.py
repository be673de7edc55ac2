"""copilot_doit/rollout.py against recorded ECS answers: botocore's Stubber on a real ECS client checks every
request's parameters and every response's shape against the ECS API model, and fails on a call that was
not expected (or an expected one that was not made)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from copilot_doit import rollout
from copilot_doit.errors import StageFailed

CLUSTER = "demo-test-Cluster-AbCdEf"
SERVICE = "demo-test-api-Service-XyZ123"
SVC_ARN = f"arn:aws:ecs:us-east-1:123456789012:service/{CLUSTER}/{SERVICE}"
TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/demo-test-api:{}"
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)   # the deploy started
NEW, OLD = "ecs-svc/2222222222222222222", "ecs-svc/1111111111111111111"


@pytest.fixture
def ecs():
    import boto3
    from botocore.stub import Stubber
    client = boto3.client("ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        client.stub = stub
        yield client
        stub.assert_no_pending_responses()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def deployment(id_, status, state, running, desired, pending=0, failed=0, rev=4, created=5, updated=5,
               reason=""):
    d = {"id": id_, "status": status, "taskDefinition": TD.format(rev), "desiredCount": desired,
         "pendingCount": pending, "runningCount": running, "failedTasks": failed, "createdAt": at(created),
         "updatedAt": at(updated), "launchType": "FARGATE"}
    if state:
        d["rolloutState"] = state
        d["rolloutStateReason"] = reason or {"IN_PROGRESS": "ECS deployment ecs-svc/x in progress.",
                                             "COMPLETED": "ECS deployment ecs-svc/x completed."}.get(state, "")
    return d


def old_completed(running=2, updated=-3600, status="ACTIVE"):
    return deployment(OLD, status, "COMPLETED", running, 2, rev=3, created=-86400, updated=updated)


def services(*deployments, events=(), rollback=True):
    primary = next(d for d in deployments if d["status"] == "PRIMARY")
    return {"services": [{
        "serviceArn": SVC_ARN, "serviceName": SERVICE, "clusterArn": f"arn:aws:ecs:us-east-1:123456789012:cluster/{CLUSTER}",
        "status": "ACTIVE", "desiredCount": primary["desiredCount"], "runningCount": primary["runningCount"],
        "pendingCount": primary["pendingCount"], "launchType": "FARGATE", "taskDefinition": primary["taskDefinition"],
        "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": rollback},
                                    "maximumPercent": 200, "minimumHealthyPercent": 100},
        "deployments": list(deployments),
        "events": [{"id": f"ev-{i}", "createdAt": t, "message": m} for i, (t, m) in enumerate(events)]}],
        "failures": []}


def task_arn(n: int) -> str:
    return f"arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/{n:08x}0123456789abcdef01234567"


def task(n, stopped, reason="Essential container in task exited", code="EssentialContainerExited",
         containers=(("api", 1, None),), started_by=NEW, rev=4, last="STOPPED"):
    t = {"taskArn": task_arn(n), "clusterArn": f"arn:aws:ecs:us-east-1:123456789012:cluster/{CLUSTER}",
         "taskDefinitionArn": TD.format(rev), "lastStatus": last, "desiredStatus": "STOPPED", "startedBy": started_by,
         "stoppedReason": reason, "stopCode": code, "stoppingAt": at(stopped - 2),
         "containers": [{"name": name, "lastStatus": "STOPPED", "taskArn": task_arn(n),
                         **({"exitCode": ec} if ec is not None else {}), **({"reason": r} if r else {})}
                        for name, ec, r in containers]}
    if last == "STOPPED":
        t["stoppedAt"] = at(stopped)
    return t


def expect_describe(ecs, response):
    ecs.stub.add_response("describe_services", response, {"cluster": CLUSTER, "services": [SERVICE]})


def expect_list(ecs, arns, token=None, next_token=None):
    params = {"cluster": CLUSTER, "serviceName": SERVICE, "desiredStatus": "STOPPED", "maxResults": 100}
    if token:
        params["nextToken"] = token
    resp = {"taskArns": arns, **({"nextToken": next_token} if next_token else {})}
    ecs.stub.add_response("list_tasks", resp, params)


def expect_tasks(ecs, tasks):
    ecs.stub.add_response("describe_tasks", {"tasks": tasks, "failures": []},
                          {"cluster": CLUSTER, "tasks": [t["taskArn"] for t in tasks]})


def expect_taskdef(ecs, rev=4, sidecar_essential=False):
    ecs.stub.add_response("describe_task_definition", {"taskDefinition": {
        "taskDefinitionArn": TD.format(rev), "family": "demo-test-api", "revision": rev,
        "containerDefinitions": [{"name": "api", "image": "repo/api@sha256:" + "a" * 64, "essential": True},
                                 {"name": "firelens_log_router", "image": "fluent-bit", "essential": sidecar_essential}]}},
        {"taskDefinition": TD.format(rev)})


class Clock:
    """Injectable sleep/clock: sleeping advances the clock, nothing waits."""

    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def clock(self):
        return self.t

    def sleep(self, s):
        self.sleeps.append(s)
        self.t += s


def run_watch(ecs, timeout=600, interval=5.0):
    out, c = [], Clock()
    try:
        result = rollout.watch(ecs, CLUSTER, SERVICE, T0, timeout, out=out.append, sleep=c.sleep, clock=c.clock,
                               name="api", interval=interval)
        return result, out, c, None
    except StageFailed as exc:
        return None, out, c, exc


# --- watch -------------------------------------------------------------------------------------------------
def test_successful_rollout_prints_progress_and_returns_the_completed_deployment(ecs):
    # The old PRIMARY before the stack's update reaches the service: COMPLETED but not since T0.
    expect_describe(ecs, services(old_completed(status="PRIMARY")))
    expect_list(ecs, [])
    expect_describe(ecs, services(deployment(NEW, "PRIMARY", "IN_PROGRESS", 1, 2, pending=1), old_completed(1)))
    expect_list(ecs, [task_arn(1)])  # the replaced old task: stopped by the scheduler, not a failure
    expect_tasks(ecs, [task(1, 40, reason=f"Scaling activity initiated by (deployment {NEW})",
                            code="ServiceSchedulerInitiated", containers=(("api", 0, None),), started_by=OLD, rev=3)])
    expect_describe(ecs, services(deployment(NEW, "PRIMARY", "COMPLETED", 2, 2, updated=90)))
    expect_list(ecs, [task_arn(1)])  # already seen: not described again
    result, out, c, exc = run_watch(ecs)
    assert exc is None, exc
    assert result.deployment_id == NEW and result.rollout_state == "COMPLETED" and result.running == 2
    assert out == [
        f"service api: 2/2 running, 0 pending (deployment {OLD} COMPLETED)",
        f"service api: 1/2 running, 1 pending (deployment {NEW} IN_PROGRESS; {OLD} ACTIVE COMPLETED: 1 running)",
        f"service api: 2/2 running, 0 pending (deployment {NEW} COMPLETED)",
        f"deployment {NEW} COMPLETED: 2/2 running",
    ]
    assert c.sleeps == [5.0, 5.0]


def test_failed_rollout_names_the_stopped_reason_and_exit_code(ecs):
    expect_describe(ecs, services(deployment(NEW, "PRIMARY", "IN_PROGRESS", 0, 1, pending=1, failed=1),
                                  old_completed(1), rollback=False))
    expect_list(ecs, [task_arn(7)])
    expect_tasks(ecs, [task(7, 30, containers=(("api", 1, None), ("firelens_log_router", 0, None)))])
    expect_taskdef(ecs)  # the log router is not essential: its exit code is not the story
    failed = deployment(NEW, "PRIMARY", "FAILED", 0, 1, failed=3, updated=120,
                        reason="ECS deployment circuit breaker: tasks failed to start.")
    expect_describe(ecs, services(failed, old_completed(1), rollback=False))
    expect_list(ecs, [task_arn(7), task_arn(8)])
    expect_tasks(ecs, [task(8, 100, containers=(("api", 1, None), ("firelens_log_router", 0, None)))])
    result, out, _, exc = run_watch(ecs)
    assert result is None and exc is not None
    line = f"task {task_arn(7).rsplit('/', 1)[1][:8]} stopped: Essential container in task exited (container api exit code 1)"
    assert line == "task 00000007 stopped: Essential container in task exited (container api exit code 1)"
    assert line in out
    assert f"deployment {NEW} FAILED: ECS deployment circuit breaker: tasks failed to start" in out
    msg = str(exc)
    assert msg.startswith(f"service api: deployment {NEW} FAILED: ECS deployment circuit breaker: tasks failed to start")
    assert "Essential container in task exited (container api exit code 1)" in msg
    assert "tasks 00000008, 00000007 stopped: Essential container in task exited (container api exit code 1)" in msg
    assert "firelens" not in msg
    assert "rolled back" not in msg  # rollback is off on this service


def test_circuit_breaker_rollback_is_named_and_old_tasks_are_ignored(ecs):
    expect_describe(ecs, services(deployment(NEW, "PRIMARY", "IN_PROGRESS", 0, 2, pending=2, failed=2),
                                  old_completed(2)))
    expect_list(ecs, [task_arn(1), task_arn(2), task_arn(3)])
    expect_tasks(ecs, [task(1, -600, reason="Task failed ELB health checks in (target-group x)", started_by=OLD, rev=3),
                       task(2, 20, containers=(("api", 137, "OutOfMemoryError: Container killed due to memory usage"),)),
                       task(3, 25, reason="", code="TaskFailedToStart", containers=())])
    expect_taskdef(ecs)
    # ECS rolls back: the last COMPLETED deployment is PRIMARY again, ours ACTIVE and FAILED.
    events = [(at(70), f"(service {SERVICE}) rolling back to deployment {OLD}."),
              (at(69), f"(service {SERVICE}) (deployment {NEW}) deployment failed: tasks failed to start."),
              (at(-700), f"(service {SERVICE}) was unable to place a task (an earlier deploy's event).")]
    expect_describe(ecs, services(
        deployment(OLD, "PRIMARY", "IN_PROGRESS", 2, 2, rev=3, created=-86400, updated=70,
                   reason=f"ECS deployment circuit breaker: rolling back to deploymentId {OLD}."),
        deployment(NEW, "ACTIVE", "FAILED", 0, 0, failed=10, updated=70,
                   reason="ECS deployment circuit breaker: tasks failed to start."), events=events))
    expect_list(ecs, [task_arn(1), task_arn(2), task_arn(3)])
    _, out, _, exc = run_watch(ecs)
    assert exc is not None
    text = "\n".join(out)
    assert "00000001" not in text  # stopped before the deploy started
    assert ("task 00000002 stopped: Essential container in task exited (container api exit code 137: "
            "OutOfMemoryError: Container killed due to memory usage)") in out
    assert "task 00000003 stopped: TaskFailedToStart" in out
    assert f"service api event: (service {SERVICE}) rolling back to deployment {OLD}." in out
    assert "an earlier deploy's event" not in text
    want = (f"deployment {NEW} FAILED: ECS deployment circuit breaker: tasks failed to start — "
            f"the circuit breaker rolled back to deployment {OLD} (demo-test-api:3)")
    assert want in out
    assert str(exc).startswith(f"service api: {want}; last stopped tasks: task 00000003")


def test_a_rollback_whose_failed_deployment_is_already_gone_still_fails(ecs):
    expect_describe(ecs, services(deployment(NEW, "PRIMARY", "IN_PROGRESS", 0, 2, pending=2), old_completed(2)))
    expect_list(ecs, [])
    expect_describe(ecs, services(deployment(OLD, "PRIMARY", "COMPLETED", 2, 2, rev=3, created=-86400, updated=200)))
    expect_list(ecs, [])
    _, out, _, exc = run_watch(ecs)
    assert exc is not None and f"rolled back to deployment {OLD}" in str(exc)
    assert f"service api: ECS rolled back to deployment {OLD} (demo-test-api:3)" in out
    assert str(exc) == f"service api: deployment {NEW} FAILED — ECS rolled back to deployment {OLD} (demo-test-api:3)"


def test_a_watch_that_starts_after_the_rollback_learns_it_from_the_events(ecs):
    expect_describe(ecs, services(deployment(OLD, "PRIMARY", "COMPLETED", 2, 2, rev=3, created=-86400, updated=200),
                                  events=[(at(150), f"(service {SERVICE}) rolling back to deployment {OLD}.")]))
    expect_list(ecs, [])
    _, _, _, exc = run_watch(ecs)
    assert exc is not None and f"rolling back to deployment {OLD}" in str(exc)


def test_a_forced_new_deployment_after_the_stacks_is_followed_not_taken_for_a_rollback(ecs):
    forced = "ecs-svc/3333333333333333333"
    expect_describe(ecs, services(deployment(NEW, "PRIMARY", "IN_PROGRESS", 0, 2, pending=2), old_completed(2)))
    expect_list(ecs, [])
    expect_describe(ecs, services(deployment(forced, "PRIMARY", "IN_PROGRESS", 0, 2, created=40, updated=40),
                                  deployment(NEW, "ACTIVE", "IN_PROGRESS", 1, 0), old_completed(1)))
    expect_list(ecs, [])
    expect_describe(ecs, services(deployment(forced, "PRIMARY", "COMPLETED", 2, 2, created=40, updated=99)))
    expect_list(ecs, [])
    result, out, _, exc = run_watch(ecs)
    assert exc is None and result.deployment_id == forced
    assert out[-1] == f"deployment {forced} COMPLETED: 2/2 running"


def test_timeout_says_what_was_seen_last(ecs):
    for i in range(4):  # t = 0, 5, 10, 12: the last poll at the deadline
        expect_describe(ecs, services(deployment(NEW, "PRIMARY", "IN_PROGRESS", 1, 2, pending=1), old_completed(1)))
        expect_list(ecs, [task_arn(4)])
        # still stopping (no exit code yet): described again at each poll until it has stopped
        expect_tasks(ecs, [task(4, 9)] if i == 3 else [task(4, 8, last="STOPPING")])
    expect_taskdef(ecs)
    _, out, c, exc = run_watch(ecs, timeout=12)
    assert exc is not None
    assert c.sleeps == [5.0, 5.0, 2.0]
    msg = str(exc)
    assert msg.startswith("service api: the rollout did not finish within 12s (ECS carries on with it); last seen: "
                          f"service api: 1/2 running, 1 pending (deployment {NEW} IN_PROGRESS; ")
    assert "task 00000004 stopped: Essential container in task exited (container api exit code 1)" in msg
    assert len([line for line in out if line.startswith("service api: ")]) == 1  # printed once: nothing changed


def test_throttling_is_retried_and_access_denied_on_tasks_is_one_line(ecs):
    ecs.stub.add_client_error("describe_services", "ThrottlingException", "Rate exceeded")
    expect_describe(ecs, services(deployment(NEW, "PRIMARY", "IN_PROGRESS", 0, 1, pending=1)))
    ecs.stub.add_client_error("list_tasks", "AccessDeniedException", "not authorized to perform: ecs:ListTasks")
    expect_describe(ecs, services(deployment(NEW, "PRIMARY", "COMPLETED", 1, 1, updated=60)))
    result, out, _, exc = run_watch(ecs)
    assert exc is None and result.rollout_state == "COMPLETED"
    assert ("service api: cannot read its stopped tasks (AccessDeniedException: not authorized to perform: "
            "ecs:ListTasks); watching without them") in out


def test_a_missing_service_is_one_error(ecs):
    ecs.stub.add_response("describe_services", {"services": [], "failures": [{"arn": SVC_ARN, "reason": "MISSING"}]},
                          {"cluster": CLUSTER, "services": [SERVICE]})
    _, _, _, exc = run_watch(ecs)
    assert str(exc) == f"ECS service {SERVICE} in cluster {CLUSTER}: MISSING"


def test_without_a_rollout_state_one_deployment_at_its_desired_count_is_done(ecs):
    d = deployment(NEW, "PRIMARY", None, 2, 2, updated=30)
    expect_describe(ecs, services(d, deployment(OLD, "ACTIVE", None, 1, 0, rev=3, created=-86400, updated=20)))
    expect_list(ecs, [])
    expect_describe(ecs, services(d))
    expect_list(ecs, [])
    result, out, _, exc = run_watch(ecs)
    assert exc is None and result.rollout_state is None and len(result.deployments) == 1
    assert out[-1] == f"service api: 2/2 running, 0 pending (deployment {NEW} PRIMARY)"


# --- stopped_tasks -----------------------------------------------------------------------------------------
def test_stopped_tasks_pages_and_describes_in_batches_of_100(ecs):
    arns = [task_arn(n) for n in range(150)]
    expect_list(ecs, arns[:100], next_token="page-2")
    expect_list(ecs, arns[100:], token="page-2")
    expect_tasks(ecs, [task(n, 300 - n, reason="Task failed ELB health checks in (target-group tg)",
                            code="ServiceSchedulerInitiated", containers=(("api", 143, None),)) for n in range(100)])
    expect_taskdef(ecs)  # once for all 150 (one task definition)
    expect_tasks(ecs, [task(n, 300 - n, reason="Task failed ELB health checks in (target-group tg)",
                            code="ServiceSchedulerInitiated", containers=(("api", 143, None),)) for n in range(100, 150)])
    seen: set = set()
    got = rollout.stopped_tasks(ecs, CLUSTER, SERVICE, T0, seen)
    assert len(got) == 150 and seen == set(arns)
    assert [t.stopped_at for t in got] == sorted(t.stopped_at for t in got)  # oldest first
    assert got[0].task_id == f"{149:08x}" and got[0].started_by == NEW
    assert got[0].containers == (rollout.ContainerExit("api", 143, ""),)
    # The same listing again: nothing new to describe.
    expect_list(ecs, arns[:100], next_token="page-2")
    expect_list(ecs, arns[100:], token="page-2")
    assert rollout.stopped_tasks(ecs, CLUSTER, SERVICE, T0, seen) == []


def test_stopped_tasks_without_describe_task_definition_shows_every_container(ecs):
    expect_list(ecs, [task_arn(1)])
    expect_tasks(ecs, [task(1, 10, containers=(("api", 1, None), ("firelens_log_router", 0, None)))])
    ecs.stub.add_client_error("describe_task_definition", "AccessDeniedException", "no")
    got = rollout.stopped_tasks(ecs, CLUSTER, SERVICE, T0, set())
    assert [c.name for c in got[0].containers] == ["api", "firelens_log_router"]


# --- lines --------------------------------------------------------------------------------------------------
def _rollout(**kw) -> rollout.Rollout:
    primary = rollout.Deployment(id=NEW, status="PRIMARY", rollout_state="IN_PROGRESS", rollout_state_reason="",
                                 task_definition=TD.format(4), running=1, desired=2, pending=1, failed_tasks=0,
                                 created_at=at(5), updated_at=at(5))
    return rollout.Rollout(name="api", service_status="ACTIVE", primary=kw.pop("primary", primary), **kw)


def test_lines_say_only_what_changed():
    a = _rollout()
    assert rollout.lines(None, a) == [f"service api: 1/2 running, 1 pending (deployment {NEW} IN_PROGRESS)"]
    assert rollout.lines(a, a) == []
    ev = rollout.ServiceEvent("e1", at(9), "(service x) (task 1234) failed container health checks.")
    b = _rollout(events=(ev,))
    assert rollout.lines(a, b) == ["service api event: (service x) (task 1234) failed container health checks."]
    assert rollout.lines(b, b) == []


def test_lines_leave_out_an_old_deployment_state_before_since():
    old = rollout.Deployment(id=OLD, status="PRIMARY", rollout_state="COMPLETED", rollout_state_reason="",
                             task_definition=TD.format(3), running=2, desired=2, pending=0, failed_tasks=0,
                             created_at=at(-86400), updated_at=at(-3600))
    r = _rollout(primary=old)
    assert rollout.lines(None, r, since=T0) == [f"service api: 2/2 running, 0 pending (deployment {OLD} COMPLETED)"]
    assert rollout.lines(None, r)[-1] == f"deployment {OLD} COMPLETED: 2/2 running"


def test_a_failed_primary_with_rollback_on_says_the_circuit_breaker_rolls_back():
    failed = rollout.Deployment(id=NEW, status="PRIMARY", rollout_state="FAILED",
                                rollout_state_reason="ECS deployment circuit breaker: tasks failed to start.",
                                task_definition=TD.format(4), running=0, desired=2, pending=0, failed_tasks=10,
                                created_at=at(5), updated_at=at(80))
    assert rollout.lines(_rollout(), _rollout(primary=failed, rollback=True), since=T0)[-1] == (
        f"deployment {NEW} FAILED: ECS deployment circuit breaker: tasks failed to start — the circuit breaker "
        "rolls back to the last completed deployment (its rollback is on)")
