"""`copilot-doit deploy` under a pseudo-terminal and without one (issue #13 scopes 1 and 2): the environment
and workload questions, the refusals without a terminal, `--all-envs`, `--diff` (yes and no), `--diff-yes`.

One workspace for the module (the sample with only `api` and `mailer`, environments test and prod):
each deploy builds on the previous one, so every image is built once.
"""
from __future__ import annotations

import shutil
import sys

import pytest

from conftest import make_workspace, marks, missing, set_log_level

try:
    import pexpect
except ImportError:  # the `test` extra installs it
    pexpect = None

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ws(tmp_path_factory, services_up):
    if pexpect is None:
        missing("pexpect is not installed (pip install -e .[test])")
    w = make_workspace(tmp_path_factory.mktemp("tty"), services_up)
    for name in ("frontend", "worker"):     # two small workloads keep "all" cheap; worker needs frontend
        shutil.rmtree(w.manifests / name)
    w.commit("api and mailer only")
    return w


def spawn(ws, *args: str):
    """`copilot-doit deploy ...` with stdin and stdout on a pseudo-terminal. The questions are the subject
    here: the stages' lines stay plain (COPILOT_DOIT_PLAIN=1) for `marks`; the live view on a terminal is
    tests/test_e2e_live.py's."""
    ws.api_log.write_text("")
    return pexpect.spawn(sys.executable, ["-m", "copilot_doit.cli", "deploy", *args], cwd=str(ws.root),
                         env=ws.env(COPILOT_DOIT_PLAIN="1"), encoding="utf-8", timeout=300, dimensions=(50, 200))


def finish(child) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before


def stack_names(ws) -> set[str]:
    return {s["StackName"] for s in ws.stacks() if s["StackName"].startswith(ws.app + "-")
            and not s["StackStatus"].startswith("DELETE")}


def test_refusals_without_a_terminal(ws):
    p = ws.run("deploy", "-n", "api", tool="cli", check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "(prod, test)" in lines[0] or "(test, prod)" in lines[0], lines[0]
    assert "-e " in lines[0] and "--all-envs" in lines[0], lines[0]
    assert p.stdout == "" and ws.mutating() == []

    p = ws.run("deploy", "-n", "api", "-e", "test", "--diff", tool="cli", check=False)
    assert p.returncode == 2 and "--diff-yes" in p.stderr, p.stdout + p.stderr
    assert ws.mutating() == []

    p = ws.run("deploy", "-e", "test", "--all-envs", tool="cli", check=False)
    assert p.returncode == 2 and "not both" in p.stderr, p.stderr


def test_questions_and_diff_on_a_terminal(ws):
    # No answer (Ctrl-D) at a question: nothing deployed, nothing started.
    child = spawn(ws)
    child.expect_exact("Workloads [")
    child.sendeof()
    rc, out = finish(child)
    assert rc == 1 and "nothing deployed" in out and ws.mutating() == [], out

    # The workload question (with "all" as 0), then the environment question: only test is deployed.
    child = spawn(ws)
    child.expect_exact("Select one or more services or jobs in your workspace.")
    child.expect_exact("0) all")
    child.expect_exact("Workloads [")
    child.sendline("1")                                             # api (the workspace's first)
    child.expect_exact("Select an environment to deploy to")
    child.expect_exact("Environment [1-2")
    child.sendline("test")
    rc, out = finish(child)
    assert rc == 0, out
    assert stack_names(ws) == {f"{ws.app}-test", f"{ws.app}-test-api"}, out
    assert "mailer" not in "".join(marks(out)), out

    # --diff, then Enter (no): the diff is shown, nothing is deployed, no API call changes anything.
    set_log_level(ws, "debug")
    child = spawn(ws, "-n", "api", "-e", "test", "--diff")
    child.expect_exact("1 stack(s) would change")
    child.expect_exact("LOG_LEVEL")
    child.expect_exact("Continue with the deployment? [y/N]")
    child.sendline("")
    rc, out = finish(child)
    assert rc == 0 and "nothing deployed" in out, out
    assert ws.mutating() == [], ws.mutating()
    assert "debug" not in str(ws.client("cloudformation").get_template(StackName=f"{ws.app}-test-api")["TemplateBody"])

    # --diff, then "n": the same.
    child = spawn(ws, "-n", "api", "-e", "test", "--diff")
    child.expect_exact("[y/N]")
    child.sendline("n")
    rc, out = finish(child)
    assert rc == 0 and "nothing deployed" in out and ws.mutating() == [], out

    # --diff, then "y": deployed.
    child = spawn(ws, "-n", "api", "-e", "test", "--diff")
    child.expect_exact("[y/N]")
    child.sendline("y")
    rc, out = finish(child)
    assert rc == 0, out
    assert marks(out).get("deploy:api@test") == ".", out
    assert "cloudformation:ExecuteChangeSet" in ws.mutating()
    # The summary on the terminal: what ran and the service's URL (a Backend Service behind the internal ALB).
    env_stack = ws.client("cloudformation").describe_stacks(StackName=f"{ws.app}-test")["Stacks"][0]
    dns = next(o["OutputValue"] for o in env_stack["Outputs"] if o["OutputKey"] == "InternalLoadBalancerDNSName")
    row = next(line for line in out.splitlines() if line.startswith("api  "))
    assert "package, lint, deploy" in row and row.rstrip().endswith(f"http://{dns}/api"), out
    assert "debug" in str(ws.client("cloudformation").get_template(StackName=f"{ws.app}-test-api")["TemplateBody"])

    # Nothing changes: "no changes", no question, and the run goes on (all up to date).
    child = spawn(ws, "-n", "api", "-e", "test", "--diff")
    child.expect_exact("no changes")
    rc, out = finish(child)
    assert rc == 0 and "[y/N]" not in out, out
    assert marks(out) and set(marks(out).values()) == {"--"}, out

    # "all" at the workload question (by its word); the environment by number.
    child = spawn(ws)
    child.expect_exact("Workloads [")
    child.sendline("all")
    child.expect_exact("Environment [1-2")
    child.sendline(str(ws_envs(ws).index("test") + 1))
    rc, out = finish(child)
    assert rc == 0, out
    assert {"deploy:api@test", "deploy:mailer@test"} <= set(marks(out)), out
    assert f"{ws.app}-test-mailer" in stack_names(ws) and not any("-prod" in n for n in stack_names(ws))


def ws_envs(ws) -> list[str]:
    from copilot_doit.workspace import load_workspace
    return load_workspace(ws.manifests).environments


def test_diff_yes_and_all_workloads_without_a_terminal(ws):
    set_log_level(ws, "warn")
    p = ws.run("deploy", "-n", "api", "-e", "test", "--diff-yes", tool="cli")
    assert "1 stack(s) would change" in p.stdout and "LOG_LEVEL" in p.stdout, p.stdout
    assert "[y/N]" not in p.stdout and marks(p.stdout).get("deploy:api@test") == ".", p.stdout
    assert "cloudformation:ExecuteChangeSet" in ws.mutating()

    p = ws.run("deploy", "-e", "test", tool="cli")                  # no -n, no terminal: all, said first
    first = p.stdout.splitlines()[0]
    assert first.startswith("deploying all 2 workloads") and "api, mailer" in first, p.stdout
    assert {"deploy:api@test", "deploy:mailer@test"} <= set(marks(p.stdout)), p.stdout

    p = ws.run("deploy", "-n", "api", "--all-envs", tool="cli")     # every environment, on purpose
    assert marks(p.stdout).get("deploy:api@prod") == ".", p.stdout
    assert {f"{ws.app}-prod", f"{ws.app}-prod-api"} <= stack_names(ws)


def test_detach(ws):
    """--detach starts the stack update and returns; the stage is not recorded, so the next run checks the
    live stack again (here the emulator has finished: up to date, nothing deployed twice)."""
    records = ws.root / "cache" / "actions" / "deploy"
    before = sorted(records.glob("*.json"))
    set_log_level(ws, "error")
    p = ws.run("deploy", "-n", "api", "-e", "test", "--detach", tool="cli")
    assert "detached: stack" in p.stdout and "describe-stack-events" in p.stdout, p.stdout
    assert "cloudformation:ExecuteChangeSet" in ws.mutating()
    assert f"{ws.app}-test-api UPDATE_COMPLETE" not in p.stdout, p.stdout    # no progress followed
    assert sorted(records.glob("*.json")) == before                          # not recorded as done
    again = ws.run("deploy", "-n", "api", "-e", "test", tool="cli")
    assert marks(again.stdout).get("deploy:api@test") == "--", again.stdout
    assert "cloudformation:ExecuteChangeSet" not in ws.mutating()


def test_doit_deploy_without_env(ws):
    p = ws.run("deploy", "name=api", check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "env=all" in lines[0] and "prod, test" in lines[0], p.stderr
    assert ws.mutating() == []
    listed = ws.run("list", "--all", "name=api")                    # reading needs no environment
    assert "deploy:api@prod" in listed.stdout and "deploy:api@test" in listed.stdout
