"""`copilot-doit svc delete` on the local target, and plan's orphans (issue #11 scope 6): one workload of
the sample workspace is deployed, deleted (its stack is gone, the next plan deploys it again, the cache is
untouched), a stack of that name another tool made is refused, and a stack whose workload left the
workspace is listed by plan and removed by `svc delete`."""
from __future__ import annotations

import json

import pytest

from conftest import make_workspace

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ws(tmp_path_factory, services_up):
    w = make_workspace(tmp_path_factory.mktemp("delete"), services_up)
    w.run("deploy", "name=api", "env=test")
    return w


def _status(ws, stack: str) -> str | None:
    cfn = ws.client("cloudformation")
    try:
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except cfn.exceptions.ClientError as exc:
        assert "does not exist" in str(exc)
        return None


def _create(ws, stack: str, tags: dict) -> None:
    ws.client("cloudformation").create_stack(
        StackName=stack, TemplateBody=json.dumps({"Resources": {"L": {"Type": "AWS::Logs::LogGroup"}}}),
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def test_delete_then_plan_deploys_it_again_and_a_foreign_stack_is_refused(ws):
    stack = f"{ws.app}-test-api"
    assert _status(ws, stack) == "CREATE_COMPLETE"

    asks = ws.run("svc", "delete", "-n", "api", "-e", "test", tool="cli", check=False)  # no terminal, no --yes
    assert asks.returncode == 2 and "pass --yes" in asks.stderr and _status(ws, stack) == "CREATE_COMPLETE"
    assert ws.mutating() == []
    kind = ws.run("job", "delete", "-n", "api", "-e", "test", "--yes", tool="cli", check=False)
    assert kind.returncode == 1 and "'api' is a Backend Service, not a job" in kind.stderr
    assert "Traceback" not in kind.stderr and _status(ws, stack) == "CREATE_COMPLETE"

    p = ws.run("svc", "delete", "-n", "api", "-e", "test", "--yes", tool="cli")
    assert "Deleted service api from environment test." in p.stdout, p.stdout
    assert "api is still in the workspace" in p.stdout and "the next deploy of it creates its stack again" in p.stdout
    assert _status(ws, stack) is None
    assert ws.mutating() == ["cloudformation:DeleteStack"]          # -e: no repository, no registry

    plan = ws.run("plan", "-n", "api", "-e", "test", tool="cli", check=False)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert f"run   deploy:api@test  stack {stack} does not exist" in plan.stdout, plan.stdout

    _create(ws, stack, {"managed-by": "terraform"})
    foreign = ws.run("svc", "delete", "-n", "api", "-e", "test", "--yes", tool="cli", check=False)
    assert foreign.returncode == 1 and "created by neither copilot-doit nor Copilot" in foreign.stderr
    assert "Traceback" not in foreign.stderr
    assert _status(ws, stack) == "CREATE_COMPLETE" and ws.mutating() == []
    ws.client("cloudformation").delete_stack(StackName=stack)


def test_plan_lists_orphans_without_changing_its_exit_code_and_delete_removes_them(ws):
    ws.run("deploy", "name=api", "env=test")
    orphan = f"{ws.app}-test-gone"   # a workload whose folder left the workspace
    _create(ws, orphan, {"copilot-application": ws.app, "copilot-environment": "test", "copilot-service": "gone"})

    p = ws.run("plan", "-n", "api", "-e", "test", tool="cli", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (f"orphan: stack {orphan} (workload gone is no longer in the workspace; "
            "`copilot-doit svc delete -n gone -e test` removes it)") in p.stdout
    assert "do not change the exit code" in p.stdout
    doc = json.loads(ws.run("plan", "-n", "api", "-e", "test", "--format", "json", tool="cli").stdout)
    assert [(o["stack"], o["owner"]) for o in doc["orphans"]] == [(orphan, "Copilot")]
    assert _status(ws, orphan) == "CREATE_COMPLETE"                  # plan deletes nothing

    gone = ws.run("svc", "delete", "-n", "gone", "--yes", tool="cli")   # every environment, and the app
    assert f"Deleted service gone from application {ws.app}." in gone.stdout, gone.stdout
    assert f"no stack {ws.app}-prod-gone in environment prod" in gone.stdout
    assert _status(ws, orphan) is None
    again = ws.run("plan", "-n", "api", "-e", "test", tool="cli", check=False)
    assert again.returncode == 0 and "orphan" not in again.stdout

    unknown = ws.run("svc", "delete", "-n", "gone", "--yes", tool="cli", check=False)
    assert unknown.returncode == 1 and "no service named 'gone'" in unknown.stderr
