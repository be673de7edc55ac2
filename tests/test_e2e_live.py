"""`copilot-doit deploy` with and without a terminal (issue #13, scope 4): piped, the plain lines of before;
under a pseudo-terminal, the live view (stage spinners, resources with Copilot's descriptions, the summary);
a no-op on a terminal never loads rich; and the README's recorded session is what .ci/record-session makes
today. One workspace for the module (the sample with `api` only)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, make_workspace, marks, missing, set_log_level

try:
    import pexpect
except ImportError:  # the `test` extra installs it
    pexpect = None

pytestmark = pytest.mark.e2e
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


@pytest.fixture(scope="module")
def ws(tmp_path_factory, services_up):
    if pexpect is None:
        missing("pexpect is not installed (pip install -e .[test])")
    w = make_workspace(tmp_path_factory.mktemp("live"), services_up)
    for name in ("frontend", "worker", "mailer"):
        shutil.rmtree(w.manifests / name)
    w.commit("api only")
    return w


def on_a_terminal(ws, *args: str, program=("-m", "copilot_doit.cli", "deploy")) -> tuple[int, str]:
    env = ws.env(TERM="xterm-256color")
    env.pop("COPILOT_DOIT_PLAIN", None)
    for name in ("COLUMNS", "LINES"):   # pytest-xdist's workers set 80 x 24: the pty's own size counts
        env.pop(name, None)
    child = pexpect.spawn(sys.executable, [*program, *args], cwd=str(ws.root), env=env, encoding="utf-8",
                          timeout=300, dimensions=(50, 160))
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before


def test_piped_the_plain_lines_stay(ws):
    p = ws.run("deploy", "-n", "api", "-e", "test", tool="cli")
    m = marks(p.stdout)
    assert m.get("env:test") == "." and m.get("deploy:api@test") == ".", p.stdout
    assert re.search(r"^\.  deploy:api@test  \(", p.stdout, re.M), p.stdout
    assert re.search(rf"^  {ws.app}-test-api CREATE_COMPLETE$", p.stdout, re.M), p.stdout   # one line per event
    assert re.search(r"^  Service CREATE_COMPLETE$", p.stdout, re.M), p.stdout
    assert not any(ch in p.stdout for ch in SPINNER + "✔\x1b"), p.stdout


def test_on_a_terminal_the_live_view(ws):
    set_log_level(ws, "debug")
    rc, out = on_a_terminal(ws, "-n", "api", "-e", "test")
    assert rc == 0, out
    assert any(ch in out for ch in SPINNER), out                                    # the stage's spinner
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert "✔ deploy:api@test" in text and "✔ package:api@test" in text, text
    assert "-- build:api@test" in text, text                                        # up to date, said plainly
    assert re.search(r"- TaskDefinition +An ECS task definition to group your containers", text), text
    assert re.search(r"\[update complete\]", text), text
    assert "  TaskDefinition UPDATE_COMPLETE\r\n" not in text                         # not the plain event line
    env_stack = ws.client("cloudformation").describe_stacks(StackName=f"{ws.app}-test")["Stacks"][0]
    dns = next(o["OutputValue"] for o in env_stack["Outputs"] if o["OutputKey"] == "InternalLoadBalancerDNSName")
    row = next(line for line in text.splitlines() if line.startswith("api  "))
    assert "package, lint, deploy" in row and row.rstrip().endswith(f"http://{dns}/api"), text

    # The same command piped: the plain lines (and the same summary).
    set_log_level(ws, "warn")
    p = ws.run("deploy", "-n", "api", "-e", "test", tool="cli")
    assert marks(p.stdout).get("deploy:api@test") == ".", p.stdout
    assert re.search(r"^  TaskDefinition UPDATE_COMPLETE$", p.stdout, re.M), p.stdout
    assert "An ECS task definition" not in p.stdout and not any(ch in p.stdout for ch in SPINNER)
    assert any(line.startswith("api  ") and line.rstrip().endswith(f"http://{dns}/api")
               for line in p.stdout.splitlines()), p.stdout


def test_a_no_op_on_a_terminal_does_not_load_rich(ws):
    probe = ("import sys\n"
             "from copilot_doit import cli\n"
             "rc = cli.main(['deploy', '-n', 'api', '-e', 'test'])\n"
             "print('LOADED', sorted(m for m in ('rich', 'boto3', 'docker') if m in sys.modules), 'RC', rc)\n")
    rc, out = on_a_terminal(ws, program=("-c", probe))
    assert "LOADED [] RC 0" in out, out
    assert "-- deploy:api@test  (" in out and "✔" not in out, out


def normalized(text: str) -> list[str]:
    """A session's lines with what differs between two recordings (times, digests, ids, generated names,
    ports, the git describe) made alike."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"[0-9a-f]{7,}", "#", line)
        line = re.sub(r"[A-Z0-9]{8,}", "#", line)
        line = re.sub(r"\d+(\.\d+)?", "0", line)
        line = re.sub(r"[0-9a-f-]*#[0-9a-f#-]*", "#", line)
        # The image's tags are listed sorted, and the git sha's place among them depends on its first
        # character (a digit sorts before `ck-…`, a letter after): compare them as a set.
        line = re.sub(r"\(([^()]*latest)\)$", lambda m: "(" + ", ".join(sorted(m.group(1).split(", "))) + ")", line)
        out.append(" ".join(line.split()))
    return out


def test_the_recorded_session_is_what_the_code_shows_today(tmp_path, services_up):
    """README shows .ci/deploy-session.svg: recorded again here (a cold deploy of the sample's frontend, on
    the script's own moto server and registry) and compared, line by line, with the committed recording."""
    p = subprocess.run([sys.executable, str(REPO / ".ci" / "record-session"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stdout + p.stderr
    new = (tmp_path / "deploy-session.txt").read_text()
    committed = (REPO / ".ci" / "deploy-session.txt").read_text()
    assert normalized(new) == normalized(committed), \
        f"the recorded session changed: run .ci/record-session and commit .ci/deploy-session.*\n{new}"
    for name in ("deploy-session.svg", "deploy-live.svg"):
        svg = (tmp_path / name).read_text()
        assert svg.startswith("<svg") and (REPO / ".ci" / name).exists()
    assert "deploy:frontend@test" in (REPO / ".ci" / "deploy-session.svg").read_text()
    live_svg = (tmp_path / "deploy-live.svg").read_text().replace("&#160;", " ")
    assert "An ECS service to run and maintain your tasks" in live_svg
