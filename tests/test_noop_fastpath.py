"""`copilot-doit deploy` answers a no-op without doit (copilot_doit/noop.py, issue #12): the same lines as the
doit run, in the same order, from the same checks; anything to do, or anything wrong, goes through doit."""
from __future__ import annotations

import pytest

from conftest import marks

pytestmark = pytest.mark.e2e

NAMES = ["api", "frontend"]


def _imported(stderr: str) -> set[str]:
    """Top-level modules a `python -X importtime` run imported."""
    out = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            out.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return out


def _stage_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(("-- ", ".  "))]


@pytest.fixture
def deployed(workspace):
    workspace.run("deploy", "name=" + ",".join(NAMES), "env=test")
    return workspace


def test_noop_is_answered_without_doit_with_doit_s_own_lines(deployed):
    ws = deployed
    by_doit = ws.run("deploy", "name=" + ",".join(NAMES), "env=test")
    fast = ws.run("deploy", "-n", ",".join(NAMES), "-e", "test", tool="cli", PYTHONPROFILEIMPORTTIME="1")
    assert _stage_lines(fast.stdout) == _stage_lines(by_doit.stdout), (fast.stdout, by_doit.stdout)
    assert len(_stage_lines(fast.stdout)) == 1 + 5 * len(NAMES)
    assert set(marks(fast.stdout).values()) == {"--"}, fast.stdout
    imported = _imported(fast.stderr)
    assert "copilot_doit" in imported, "the import log is empty: the test would prove nothing"
    assert "doit" not in imported, "the no-op imported doit"
    # nor the other heavy ones: manifests from the parsed-YAML memo (mailer's interpolates the app and env
    # names: kept), live checks over plain HTTP
    assert not imported & {"yaml", "boto3", "botocore", "docker", "cfnlint", "moto", "pygit2", "filelock"}, imported
    # nor what only a change needs (a change set's uuid, a process started, Copilot's sha256 S3 keys), nor
    # concurrent.futures (it imports logging): ~20 ms of a no-op together
    assert not imported & {"uuid", "subprocess", "hashlib", "concurrent", "logging"}, imported
    # nor dataclasses (its import, with inspect's, and its per-class code generation: ~35 ms; values.py)
    assert not imported & {"dataclasses", "inspect"}, imported
    assert ws.mutating() == [], ws.mutating()
    assert fast.stderr.count("Traceback") == 0


def test_quiet_noop_prints_nothing(deployed):
    out = deployed.run("deploy", "-n", ",".join(NAMES), "-e", "test", "--quiet", tool="cli")
    assert out.stdout == "", out.stdout


def test_a_change_goes_through_doit(deployed):
    ws = deployed
    (ws.manifests / "frontend" / "src" / "www" / "index.html").write_text("<h1>changed again</h1>\n")
    out = ws.run("deploy", "-n", ",".join(NAMES), "-e", "test", tool="cli", PYTHONPROFILEIMPORTTIME="1")
    m = marks(out.stdout)
    assert m["build:frontend@test"] == "." and m["deploy:frontend@test"] == ".", out.stdout
    assert m["build:api@test"] == "--", out.stdout
    assert "doit" in _imported(out.stderr)
    # and the run after it is a no-op again, answered without doit
    again = ws.run("deploy", "-n", ",".join(NAMES), "-e", "test", tool="cli", PYTHONPROFILEIMPORTTIME="1")
    assert set(marks(again.stdout).values()) == {"--"} and "doit" not in _imported(again.stderr), again.stdout


def test_a_stack_deleted_outside_is_not_a_noop(deployed):
    ws = deployed
    cfn = ws.client("cloudformation")
    cfn.delete_stack(StackName=f"{ws.app}-test-api")
    cfn.get_waiter("stack_delete_complete").wait(StackName=f"{ws.app}-test-api",
                                                 WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    out = ws.run("deploy", "-n", ",".join(NAMES), "-e", "test", tool="cli")
    m = marks(out.stdout)
    assert m["deploy:api@test"] == "." and m["deploy:frontend@test"] == "--", out.stdout
    assert cfn.describe_stacks(StackName=f"{ws.app}-test-api")["Stacks"][0]["StackStatus"].endswith("_COMPLETE")


def test_a_bad_manifest_is_reported_once_by_the_doit_run(deployed):
    ws = deployed
    mf = ws.manifests / "api" / "manifest.yml"
    mf.write_text(mf.read_text() + "\ncount: lots\n")
    by_cli = ws.run("deploy", "-n", ",".join(NAMES), "-e", "test", tool="cli", check=False)
    by_doit = ws.run("deploy", "name=" + ",".join(NAMES), "env=test", check=False)
    assert by_cli.returncode != 0 and by_doit.returncode != 0
    assert "Traceback" not in by_cli.stdout + by_cli.stderr
    assert "manifest.yml" in by_cli.stdout + by_cli.stderr and "count" in by_cli.stdout + by_cli.stderr
    assert (by_cli.stdout + by_cli.stderr).count("count") == (by_doit.stdout + by_doit.stderr).count("count")


def _count(ws, operation: str) -> int:
    return sum(1 for c in ws.api_calls() if c["operation"] == operation)


# Each check leaves one audit line, however it was answered: a registry lookup is the run's first HEAD, a read
# of the registry's storage, or a HEAD for what the storage does not show; an engine lookup is a hit in the
# run's listing or an inspect. Which of the two a check used depends on the order the threads got there.
_CHECKS = {"engine lookups": ("InspectImage", "LookupListing"), "registry lookups": ("HeadManifest", "LookupStorage"),
           "DescribeStacks": ("DescribeStacks",)}


def _checks(ws) -> dict[str, int]:
    return {what: sum(_count(ws, op) for op in ops) for what, ops in _CHECKS.items()}


def test_when_something_runs_doit_takes_over_the_checked_session(deployed):
    """A deploy that must run goes through doit with the session noop.py checked: nothing is checked twice
    (as many live checks as `doit deploy` makes for the same change), unless another run came between."""
    ws = deployed
    index = ws.manifests / "frontend" / "src" / "www" / "index.html"
    index.write_text("<h1>one</h1>\n")
    ws.run("deploy", "name=" + ",".join(NAMES), "env=test")
    by_doit = _checks(ws)
    index.write_text("<h1>two</h1>\n")
    out = ws.run("deploy", "-n", ",".join(NAMES), "-e", "test", tool="cli")
    assert marks(out.stdout)["deploy:frontend@test"] == "." and marks(out.stdout)["deploy:api@test"] == "--"
    by_cli = _checks(ws)
    assert by_cli == by_doit, (by_cli, by_doit)
    assert by_cli["registry lookups"] > 0 and by_cli["engine lookups"] > 0, by_cli


def _describe_stacks(ws) -> list[str | None]:
    return [(c.get("params") or {}).get("StackName") for c in ws.api_calls() if c["operation"] == "DescribeStacks"]


def test_a_few_stacks_are_asked_for_by_name_many_in_one_walk(deployed):
    """A run of one or two workloads reads its stacks by name (the region may hold hundreds: a walk costs a
    round trip per page of them, 0.25 s on an emulator with 130); more workloads, one listing of the region —
    on the local target the emulator's one answer for all of it (moto patch 19), no DescribeStacks page."""
    ws = deployed
    ws.run("deploy", "-n", ",".join(NAMES), "-e", "test", tool="cli")
    assert sorted(_describe_stacks(ws)) == sorted([f"{ws.app}-test"] + [f"{ws.app}-test-{n}" for n in NAMES])
    ws.run("plan", "env=test")                  # every workload of the sample: more than two
    calls = ws.api_calls()
    assert _describe_stacks(ws) == [], calls
    assert [c["operation"] for c in calls if c["service"] == "cloudformation"] == ["ListAllStacks"], calls
