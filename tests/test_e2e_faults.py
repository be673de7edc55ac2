"""Kills, faults and concurrency on the local target (issue #10, the catalogue as tests).

Each case runs the real tool in a subprocess (its own process group, so a SIGKILL reaches the Docker CLI
it started too) against the real Docker engine, docker-registry and the patched moto server, and hits a
point of the pipeline by waiting for the line the tool prints when it gets there. After a kill:

- no stage is recorded done that did not finish: every record's claim holds in the world (the image is in
  the engine, the digest in the registry with its tags, the stack carries the recorded key and is stable);
- `copilot-doit cache verify` finds nothing bad and leaves no `.tmp-*` behind;
- a plain rerun converges (exit 0, stacks *_COMPLETE) and the run after it is up to date throughout.

A fault (the emulator or the registry paused, killed or wiped, the engine gone) ends in one `ERROR:` line
naming the cause, a non-zero exit, no traceback, within a bound (the local target's timeout is lowered to
a few seconds through COPILOT_DOIT_LOCAL_TIMEOUT so the file stays fast). Whatever a test stops it
resumes in a `finally`, by the pid recorded in the local target's `services.json`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, marks

pytestmark = pytest.mark.e2e

# A stuck emulator or registry is declared so after this many seconds (the product default is 30).
FAST_TIMEOUT = "3"
STABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE")


# --- the tool as a process we can kill at a chosen line ------------------------------------------------

class Run:
    """The tool in its own process group, its output (stdout + stderr) read line by line as it comes."""

    def __init__(self, ws, *args: str, tool: str = "doit", api_log: Path | None = None, **extra_env):
        cmd = [sys.executable, "-m", "doit" if tool == "doit" else "copilot_doit.cli", *args]
        env = ws.env(PYTHONUNBUFFERED="1", **extra_env)
        if api_log is not None:
            env["COPILOT_DOIT_API_LOG"] = str(api_log)
        self.started = time.monotonic()
        self.p = subprocess.Popen(cmd, cwd=ws.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.p.stdout:
            with self._cv:
                self.lines.append(line)
                self._cv.notify_all()
        with self._cv:
            self.lines.append(None)   # end of output
            self._cv.notify_all()

    @property
    def output(self) -> str:
        with self._cv:
            return "".join(x for x in self.lines if x is not None)

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        """Block until a line matches `pattern` (a regex); fail if the run ends or the time passes first."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cv:
            while True:
                for line in self.lines[seen:]:
                    if line is None:
                        raise AssertionError(f"the run ended before a line matched {pattern!r}:\n{self.output}")
                    if rx.search(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matched {pattern!r} within {timeout}s:\n{self.output}")
                self._cv.wait(left)

    def kill(self) -> None:
        """SIGKILL the whole process group: the tool and the Docker CLI it started."""
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait(timeout=30)
        self._reader.join(timeout=30)

    def finish(self, timeout: float = 300) -> tuple[int, str, float]:
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout}s:\n{self.output}") from None
        self._reader.join(timeout=30)
        return self.p.returncode, self.output, time.monotonic() - self.started


def run_to_end(ws, *args, timeout: float = 300, **kw) -> tuple[int, str, float]:
    return Run(ws, *args, **kw).finish(timeout)


# --- what must hold after a kill ----------------------------------------------------------------------

def records(ws, stage: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((ws.root / "cache" / "actions" / stage).glob("*.json"))]


def registry_digest(endpoints, repo: str, ref: str) -> str | None:
    from copilot_doit.targets.local import lite
    return lite.registry_digest(endpoints.registry, repo, ref)


def record_keys(ws) -> set[tuple[str, str]]:
    return {(p.parent.name, p.stem) for p in (ws.root / "cache" / "actions").glob("*/*.json")}


def assert_no_false_record(ws, before: set = frozenset()) -> None:
    """Every record claims only what holds: a stage killed before it finished left no record. Images and
    digests are checked for every record; a stack record written since `before` must be of the key the
    stack carries, stable (older records are history: the stack moved on since)."""
    from copilot_doit import engine
    from copilot_doit.stacks import KEY_TAG
    for rec in records(ws, "build"):
        assert engine.image_id(rec["result"]["image_id"]), f"build record of a missing image: {rec}"
    for rec in records(ws, "push"):
        r = rec["result"]
        repo = r["repository_uri"].split("/", 1)[1]
        assert registry_digest(ws.endpoints, repo, r["digest"]) == r["digest"], f"push record of a missing digest: {r}"
        for tag in r["tags"]:
            if tag != "latest":   # `latest` follows the last push of the repository
                assert registry_digest(ws.endpoints, repo, tag) == r["digest"], f"push record, tag {tag} missing: {r}"
    cfn = ws.client("cloudformation")
    for stage in ("env", "deploy"):
        for rec in records(ws, stage):
            if (stage, rec["key"]) in before:
                continue
            name = rec["result"].get("stack") or f"{ws.app}-test"
            live = cfn.describe_stacks(StackName=name)["Stacks"][0]
            tags = {t["Key"]: t["Value"] for t in live.get("Tags") or []}
            assert tags.get(KEY_TAG) == rec["key"], f"{stage} record of a key the stack does not carry: {rec}"
            assert live["StackStatus"] in STABLE, f"{stage} record of a stack {live['StackStatus']}: {rec}"


def assert_cache_verifies_clean(ws) -> None:
    p = ws.run("cache", "verify", "--temp-older-than", "0", tool="cli")
    assert "the cache is sound" in p.stdout, p.stdout
    assert not list((ws.root / "cache").rglob(".tmp-*")), list((ws.root / "cache").rglob(".tmp-*"))


def assert_converges(ws, *args: str) -> str:
    """A plain rerun deploys what is left (exit 0, stacks stable), and the run after it has nothing to do."""
    rc, out, _ = run_to_end(ws, "deploy", *args)
    assert rc == 0, out
    assert "Traceback" not in out, out
    cfn = ws.client("cloudformation")
    for st in ws.stacks():
        if st["StackName"].startswith(ws.app + "-"):
            assert st["StackStatus"] in STABLE, (st["StackName"], st["StackStatus"], out)
    rc, again, _ = run_to_end(ws, "deploy", *args)
    assert rc == 0, again
    m = marks(again)
    assert m and all(v == "--" for v in m.values()), again
    assert cfn  # noqa: the client above is the emulator's
    return out


def assert_one_clear_error(rc: int, out: str, *needles: str) -> str:
    assert rc != 0, out
    assert "Traceback" not in out, out
    assert "internal error" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, out
    for needle in needles:
        assert needle in errors[0], out
    return errors[0]


# --- 1. SIGKILL at each point of the pipeline ----------------------------------------------------------

def _edit_api(ws) -> None:
    manifest = ws.manifests / "api" / "manifest.yml"
    manifest.write_text(manifest.read_text().replace("LOG_LEVEL: info", "LOG_LEVEL: debug"))


def _edit_api_context(ws) -> None:
    (ws.manifests / "api" / "src" / "www" / "edited.txt").write_text("an edit of the build context\n")


# (first deploy, then edit, the line to kill at, extra arguments of the killed run)
KILL_POINTS = {
    "first-env-stack": (False, None, r"^deploying environment stack", ()),
    "first-build": (False, None, r"^building api from", ()),
    "first-push": (False, None, r"^pushing api to", ()),
    "first-package": (False, None, r"^packaging api for test", ()),
    "first-lint": (False, None, r"^\.  lint:api@test", ()),
    "first-create": (False, None, r"^deploying stack \S+-test-api ", ()),
    "edit-build": (True, _edit_api_context, r"^building api from", ()),
    "edit-held-update": (True, _edit_api, r"UPDATE_IN_PROGRESS", ("resource-tags=copilot-doit-emulator:hold=4",)),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_at_each_point_leaves_nothing_false_and_a_rerun_converges(workspace, point):
    ws = workspace
    first, edit, line, extra = KILL_POINTS[point]
    if first:
        ws.run("deploy", "name=api", "env=test")
    if edit:
        edit(ws)
    before = record_keys(ws)
    r = Run(ws, "deploy", "name=api", "env=test", *extra)
    r.wait_for(line)
    r.kill()
    assert "Traceback" not in r.output, r.output
    assert_no_false_record(ws, before)
    assert_cache_verifies_clean(ws)
    killed = record_keys(ws)
    assert_converges(ws, "name=api", "env=test")
    assert_no_false_record(ws, killed)


# --- 2. killed while the local target starts -----------------------------------------------------------

def processes_in(d: Path) -> dict[int, str]:
    """Every process whose working directory is `d` (the local target starts its services there)."""
    target, out = os.path.realpath(d), {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/cwd") == target:
                    out[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                pass
    return out


def _kill_pids(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("service", ["moto", "registry"])
def test_killed_while_the_local_target_starts_leaves_nothing_local_stop_cannot_find(workspace, tmp_path, service):
    ws = workspace
    ld = tmp_path / "local"          # this test's own local target, started by the runs below
    env = {"COPILOT_DOIT_LOCAL_DIR": str(ld)}
    marker = "moto_server" if service == "moto" else "registry.yml"
    try:
        r = Run(ws, "deploy", "name=api", "env=test", **env)
        r.wait_for(f"^local: starting {'the moto server' if service == 'moto' else 'docker-registry'}", timeout=60)
        deadline = time.monotonic() + 30   # spawned, not answering yet
        while not any(marker in cmd for cmd in processes_in(ld).values()):
            assert time.monotonic() < deadline, r.output
            time.sleep(0.01)
        r.kill()
        left = processes_in(ld)
        assert left, "the kill came before the service was spawned"
        stop = ws.run("local", "stop", tool="cli", **env)
        assert "Traceback" not in stop.stdout + stop.stderr
        deadline = time.monotonic() + 10
        while processes_in(ld) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes_in(ld), f"orphans after `local stop`: {processes_in(ld)}\n{stop.stdout}"
        # A kill while starting, then a deploy without `local stop` first: the recorded service is reused or
        # replaced, never duplicated.
        r = Run(ws, "deploy", "name=api", "env=test", **env)
        r.wait_for(r"^local: starting", timeout=60)
        deadline = time.monotonic() + 30
        while not any(marker in cmd for cmd in processes_in(ld).values()):
            assert time.monotonic() < deadline, r.output
            time.sleep(0.01)
        r.kill()
        rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test", **env)
        assert rc == 0, out
        running = processes_in(ld)
        assert sorted(("moto" if "moto_server" in c else "registry") for c in running.values()) == ["moto", "registry"], running
        state = json.loads((ld / "services.json").read_text())
        assert {state["moto"]["pid"], state["registry"]["pid"]} == set(running), (state, running)
        ws.run("local", "stop", tool="cli", **env)
        assert not processes_in(ld)
    finally:
        _kill_pids(processes_in(ld))


# --- 3. faults: the emulator or the registry paused, killed or wiped; the engine gone --------------------

def service_pid(ld: Path, name: str) -> int:
    return json.loads((Path(ld) / "services.json").read_text())[name]["pid"]


class Paused:
    """SIGSTOP a service of the local target (by the pid its records name) and SIGCONT it on exit."""

    def __init__(self, ld: Path, name: str):
        self.pid = service_pid(ld, name)

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)


@pytest.fixture
def own_target(tmp_path):
    """A local target of this test alone (its services can be killed or wiped without touching the
    session's), stopped at the end by the pids found in its folder."""
    ld = tmp_path / "own-local"
    yield ld
    _kill_pids(processes_in(ld))


FAULT_TIMEOUT = {"COPILOT_DOIT_LOCAL_TIMEOUT": FAST_TIMEOUT}
SERVICE_WORDS = {"moto": "moto server", "registry": "registry"}


def test_a_paused_service_before_a_run_is_one_error_within_the_bound(workspace, local_dir):
    """The emulator, then the registry, paused (SIGSTOP) before a deploy and before a plan."""
    ws = workspace
    ws.run("deploy", "name=api", "env=test")
    for service in ("moto", "registry"):
        for command in ("deploy", "plan"):
            args = ("deploy", "name=api", "env=test") if command == "deploy" else ("plan", "-n", "api", "-e", "test")
            with Paused(local_dir, service):
                rc, out, took = run_to_end(ws, *args, tool="doit" if command == "deploy" else "cli", timeout=120,
                                           **FAULT_TIMEOUT)
            assert_one_clear_error(rc, out, SERVICE_WORDS[service], "paused or stuck")
            assert took < 30, (service, command, took, out)
    rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test")       # resumed: up to date again
    assert rc == 0 and all(v == "--" for v in marks(out).values()), out


@pytest.mark.parametrize("service, line", [
    ("moto", r"^deploying stack \S+-test-api "),
    ("registry", r"^pushing api to")])
def test_a_service_paused_mid_deploy_is_one_error_within_the_bound(workspace, local_dir, service, line):
    ws = workspace
    ws.run("deploy", "name=api", "env=test")
    _edit_api_context(ws)
    _edit_api(ws)
    r = Run(ws, "deploy", "name=api", "env=test", **FAULT_TIMEOUT)
    r.wait_for(line)
    with Paused(local_dir, service):
        paused = time.monotonic()
        rc, out, _ = r.finish(timeout=180)
        took = time.monotonic() - paused
    assert_one_clear_error(rc, out, "did not answer")
    assert took < 40, (took, out)
    assert_no_false_record(ws)
    assert_converges(ws, "name=api", "env=test")


def test_the_registry_killed_mid_push_is_one_error_and_the_next_run_restarts_it(workspace, own_target):
    ws = workspace
    env = {"COPILOT_DOIT_LOCAL_DIR": str(own_target), **FAULT_TIMEOUT}
    r = Run(ws, "deploy", "name=api", "env=test", **env)
    r.wait_for(r"^pushing api to")
    os.kill(service_pid(own_target, "registry"), signal.SIGKILL)
    rc, out, took = r.finish(timeout=180)
    assert_one_clear_error(rc, out, "push")
    assert took < 60, (took, out)
    rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test", **env)
    assert rc == 0, out
    assert "starting docker-registry" in out, out
    rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test", **env)
    assert rc == 0 and all(v == "--" for v in marks(out).values()), out


def test_registry_storage_wiped_under_a_running_registry_is_pushed_again(workspace, own_target):
    ws = workspace
    env = {"COPILOT_DOIT_LOCAL_DIR": str(own_target)}
    rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test", **env)
    assert rc == 0, out
    pid = service_pid(own_target, "registry")
    shutil.rmtree(own_target / "registry" / "docker")
    rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test", **env)
    assert rc == 0, out
    assert "Traceback" not in out, out
    assert marks(out)["push:api@test"] == ".", out          # pushed again, not "already in registry"
    assert service_pid(own_target, "registry") == pid       # the same registry, still running
    rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test", **env)
    assert rc == 0 and all(v == "--" for v in marks(out).values()), out


def test_the_engine_pruned_and_the_emulator_restarted_retag_from_the_registry(workspace, own_target):
    """After a reboot of the machine, say: the engine's images pruned, the emulator's state gone with its
    process (its ECR records included), the registry's blobs still on disk. The build is found by its content
    tag in the registry; the push cannot come from the engine (the image is not there) and needs no layers:
    a manifest-only retag re-records it. Before, the push tagged an image the engine no longer had: a
    traceback."""
    ws = workspace
    env = {"COPILOT_DOIT_LOCAL_DIR": str(own_target)}
    # An image of this test alone: the engine is shared with tests running beside it.
    (ws.manifests / "api" / "src" / "www" / "this-test.txt").write_text(f"{ws.root}\n")
    rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test", **env)
    assert rc == 0, out
    image_ids = {rec["result"]["image_id"] for rec in records(ws, "build")}
    subprocess.run(["docker", "rmi", "-f", *image_ids], check=True, capture_output=True)
    moto = service_pid(own_target, "moto")
    _kill_pids([moto])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{moto}").exists() and "zombie" not in Path(f"/proc/{moto}/status").read_text().lower():
        assert time.monotonic() < deadline, "moto outlived SIGKILL"
        time.sleep(0.05)
    rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test", **env)
    assert rc == 0, out
    assert "Traceback" not in out and "internal error" not in out, out
    m = marks(out)
    assert m["build:api@test"] == "--" and m["push:api@test"] == ".", out
    assert "without pushing layers" in out, out
    rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test", **env)
    assert rc == 0 and all(v == "--" for v in marks(out).values()), out


def test_a_push_of_an_image_removed_from_the_engine_since_its_check_is_one_sentence(services_up):
    """The image gone between the checks and the push (pruned by hand meanwhile): one error, no traceback."""
    from copilot_doit.errors import StageFailed
    from copilot_doit.stages import push

    class Target:
        def ensure_repository(self, repo_name, resource_tags):
            return f"127.0.0.1:1/{repo_name}"

        def push_reference(self, repo_uri):
            return repo_uri

        def registry_auth(self, repo_uri):
            return None

    gone = "sha256:" + "0" * 64
    with pytest.raises(StageFailed, match=r"is no longer in the engine .*run again"):
        push.push_image(Target(), "app/api", gone, ["ck-1"], {})


def test_without_the_docker_engine_an_up_to_date_deploy_and_a_plan_succeed(workspace, tmp_path):
    ws = workspace
    ws.run("deploy", "name=api", "env=test")
    dead = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    rc, out, _ = run_to_end(ws, "deploy", "name=api", "env=test", **dead)
    assert rc == 0 and all(v == "--" for v in marks(out).values()), out
    rc, out, _ = run_to_end(ws, "plan", "-n", "api", "-e", "test", tool="cli", **dead)
    assert rc == 0 and "Traceback" not in out, out
    _edit_api_context(ws)                                        # now a build is needed: that needs the engine
    rc, out, took = run_to_end(ws, "deploy", "name=api", "env=test", timeout=120, **dead)
    assert_one_clear_error(rc, out, "Docker engine")
    assert took < 60, (took, out)


# --- 4. two deploys of one workspace at once -------------------------------------------------------------

def _env_stack_created_once(ws, *outputs: str) -> None:
    assert sum(o.count("deploying environment stack") for o in outputs) == 1, outputs
    live = [s for s in ws.stacks() if s["StackName"] == f"{ws.app}-test" and s["StackStatus"] != "DELETE_COMPLETE"]
    assert len(live) == 1 and live[0]["StackStatus"] in STABLE, live


@pytest.mark.parametrize("second", ["api", "frontend"], ids=["same-workload", "other-workload"])
def test_two_deploys_at_once_both_succeed_and_the_env_stack_is_created_once(workspace, second):
    ws = workspace
    first = Run(ws, "deploy", "name=api", "env=test")
    first.wait_for(r"^\.  env:test")                 # the first run holds the cache lock and is deploying
    other = Run(ws, "deploy", f"name={second}", "env=test")
    rc1, out1, _ = first.finish()
    rc2, out2, _ = other.finish()
    assert rc1 == 0 and rc2 == 0, (out1, out2)
    assert "Traceback" not in out1 + out2
    assert "waiting for the cache lock held by pid" in out2, out2
    _env_stack_created_once(ws, out1, out2)
    cfn = ws.client("cloudformation")
    for name in {"api", second}:
        assert cfn.describe_stacks(StackName=f"{ws.app}-test-{name}")["Stacks"][0]["StackStatus"] in STABLE
    if second == "api":                               # the second found the first one's work done
        assert all(v == "--" for v in marks(out2).values()), out2
    rc, again, _ = run_to_end(ws, "deploy", f"name={','.join(sorted({'api', second}))}", "env=test")
    assert rc == 0 and all(v == "--" for v in marks(again).values()), again


def test_no_wait_while_another_deploy_runs_is_one_busy_sentence(workspace):
    ws = workspace
    first = Run(ws, "deploy", "name=api", "env=test")
    first.wait_for(r"^\.  env:test")
    rc, out, took = run_to_end(ws, "deploy", "-n", "frontend", "-e", "test", "--no-wait", tool="cli", timeout=60)
    assert rc != 0 and "Traceback" not in out, out
    assert "is in use by pid" in out and "not waiting (--no-wait)" in out, out
    assert took < 15, took
    rc1, out1, _ = first.finish()
    assert rc1 == 0, out1
    _env_stack_created_once(ws, out1, out)


# --- the plain-HTTP client of the local target, against stand-in servers (no services needed) -----------

def test_a_stuck_endpoint_fails_after_one_read_timeout_and_throttling_is_retried(monkeypatch):
    import http.server
    import socket
    from copilot_doit.targets.local import lite
    monkeypatch.setattr(lite, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(lite, "CONNECT_TIMEOUT", 0.5)
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(8)                      # the kernel accepts connections; nobody ever answers (a paused process)
    try:
        started = time.monotonic()
        with pytest.raises(lite.LiteError, match=r"moto server \(http://127.0.0.1:\d+\) did not answer within 0.5s"):
            lite.describe_stacks(f"http://127.0.0.1:{stuck.getsockname()[1]}", "us-east-1")
        assert time.monotonic() - started < 1.5          # one attempt, not three
    finally:
        stuck.close()

    seen = []
    body = (b'<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
            b"<DescribeStacksResult><Stacks/></DescribeStacksResult></DescribeStacksResponse>")

    class Throttling(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(1)
            ok = len(seen) > 2
            self.send_response(200 if ok else 400)
            data = body if ok else b"<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>"
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert lite.describe_stacks(f"http://127.0.0.1:{server.server_address[1]}", "us-east-1") == {}
        assert len(seen) == 3
    finally:
        server.shutdown()
