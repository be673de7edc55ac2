"""`copilot-doit deploy -j N` (issue #12 scope 3, its Done-when): `deploy -j 4 -e test` on a 20-workload
generated workspace deploys all, a rerun skips all (answered by noop.py, in doit's words), no error, and
the cache verifies. Under CPython 3.11 this run crashed with SIGSEGV until doit stopped swapping
sys.stdout from its worker threads (tasks._stage_task); every `.` line present shows lines stay whole."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import Workspace, marks, scratch_workspace

pytestmark = pytest.mark.e2e

N = 20


def generated_workspace(base, endpoints, n: int) -> Workspace:
    return scratch_workspace(base, endpoints, "j", {
        f"w{i:02d}": f"name: w{i:02d}\ntype: Backend Service\nimage:\n  build: copilot/w{i:02d}/src/Dockerfile\n"
                     "cpu: 256\nmemory: 512\ncount: 1\n" for i in range(n)})


def definition_steps(block: list[str]) -> set[str]:
    """The digests of a build's `load build definition` step(s) in these lines: one per build (BuildKit's plain
    printer may print a step twice, with the same digest, when it gets a late update)."""
    steps = {line.split()[0] for line in block if "load build definition" in line and line.split()[0].startswith("#")}
    return {line.split()[1] for line in block
            if line.split()[:1] and line.split()[0] in steps and line.split()[1:2] and line.split()[1].startswith("sha256:")}


def assert_each_build_s_lines_are_one_block(stdout: str) -> None:
    """Each task's output stays grouped (tasks.TaskBlocks): after `building <name> from`, the indented lines
    up to the next unindented one are that build's progress: its one `load build definition` step, and no
    other build's (four builds at once used to interleave their `#1 … #5` lines)."""
    blocks, current = [], None
    for line in stdout.splitlines():
        if line and not line[0].isspace():
            current = [line]
            blocks.append(current)
        elif current is not None:
            current.append(line)
    builds = [b for b in blocks if b[0].startswith("building ")]
    assert len(builds) == N, [b[0] for b in builds]
    for b in builds:
        assert len(definition_steps(b)) == 1, "\n".join(b)


def test_jobs_deploy_a_generated_workspace_then_skip_it(tmp_path, services_up):
    ws = generated_workspace(tmp_path, services_up, N)
    out = ws.run("deploy", "-j", "4", "-e", "test", tool="cli")
    assert "Traceback" not in out.stdout + out.stderr and "ERROR" not in out.stdout + out.stderr, out.stdout + out.stderr
    m = marks(out.stdout)
    expected = {"env:test"} | {f"{st}:w{i:02d}@test" for st in ("build", "push", "package", "lint", "deploy")
                               for i in range(N)}
    assert set(m) == expected and set(m.values()) == {"."}, (sorted(expected - set(m)), out.stdout)
    assert_each_build_s_lines_are_one_block(out.stdout)
    calls = ws.api_calls()
    builds = [c for c in calls if c["operation"] == "Build"]
    assert len(builds) == N, len(builds)
    # A stage's change drops only its own and later stages' answers (Session.changed): a workload's image is
    # not looked up again after each of its package, lint and deploy (before: 8 engine inspects and 9 registry
    # HEADs per workload in a -j first deploy; now 2 and 4, with room for the checks run ahead under -j).
    per = {op: sum(1 for c in calls if c["operation"] == op) / N for op in ("InspectImage", "HeadManifest")}
    assert per["InspectImage"] <= 3 and per["HeadManifest"] <= 6, per
    cfn = ws.client("cloudformation")
    for i in range(N):
        stack = cfn.describe_stacks(StackName=f"{ws.app}-test-w{i:02d}")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
    again = ws.run("deploy", "-j", "4", "-e", "test", tool="cli")
    assert "Traceback" not in again.stdout + again.stderr and "ERROR" not in again.stdout + again.stderr
    assert ws.mutating() == [], ws.mutating()
    m = marks(again.stdout)
    assert set(m) == expected and set(m.values()) == {"--"}, (sorted(expected - set(m)), again.stdout)
    verify = subprocess.run([sys.executable, "-m", "copilot_doit.cli", "cache", "verify"], cwd=ws.root,
                            env=ws.env(), capture_output=True, text=True)
    assert verify.returncode == 0 and "the cache is sound" in verify.stdout, verify.stdout + verify.stderr
