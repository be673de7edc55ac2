"""Shared fixtures: a throw-away copy of the sample workspace, and the real services it deploys to.

End-to-end tests use the real Docker engine, docker-registry and the patched moto server, shared by
the whole session under one local dir. With CI=true a missing one is a failure, never a skip.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest


# A suite started in the background by a shell without job control inherits SIGINT ignored (POSIX: `cmd &`
# there runs with SIGINT and SIGQUIT set to SIG_IGN), and so would every process it starts: the tests that
# send Ctrl-C (interrupt.py's guard, the CLI's exit 130) need it delivered, as at a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _sigint_handler_untouched(request):
    """A test that leaves SIGINT's handler changed (ignored, or another handler) breaks every later test of
    its worker that sends Ctrl-C (interrupt.py's guard stays off under SIG_IGN, and children inherit it):
    it fails here, by name, instead of them."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before if before is not None else signal.default_int_handler)
        pytest.fail(f"{request.node.nodeid} left SIGINT's handler changed: {before!r} -> {after!r}")

REPO = Path(__file__).resolve().parents[1]
CI = os.environ.get("CI", "").lower() == "true"
BUSYBOX = shutil.which("busybox")


def missing(what: str):
    if CI:
        pytest.fail(f"{what} (CI=true: a missing dependency is a failure)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def local_dir(tmp_path_factory):
    d = os.environ.get("COPILOT_DOIT_TEST_LOCAL_DIR") or str(tmp_path_factory.mktemp("local"))
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # pytest -n N: each worker its own moto server and registry (one may be paused or reset)
        d = str(Path(d) / worker)
        Path(d).mkdir(parents=True, exist_ok=True)
    os.environ["COPILOT_DOIT_LOCAL_DIR"] = d
    yield Path(d)
    from copilot_doit.targets.local import services
    services.stop("unused")


@pytest.fixture(scope="session")
def services_up(local_dir):
    """The engine answers, docker-registry and busybox are installed, the moto server starts."""
    from copilot_doit import engine
    from copilot_doit.errors import ServiceUnavailable
    try:
        engine.image_id("copilot-doit-probe:none")
    except ServiceUnavailable as exc:
        missing(f"Docker engine: {exc}")
    if not (shutil.which("docker-registry") or shutil.which("registry")):
        missing("docker-registry is not installed")
    if not BUSYBOX:
        missing("busybox (busybox-static) is not installed")
    from copilot_doit.targets.local import services
    try:
        return services.ensure_running("unused")
    except ServiceUnavailable as exc:
        missing(f"local services: {exc}")


class Workspace:
    """A copy of manifests/ in a fresh git repo with its own app name (so tests never share stacks)."""

    def __init__(self, root: Path, app: str, endpoints):
        self.root = root
        self.app = app
        self.endpoints = endpoints
        self.api_log = root / "api.jsonl"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update({"COPILOT_DOIT_API_LOG": str(self.api_log), "PYTHONPATH": str(REPO)})
        env.pop("COPILOT_DOIT_CACHE", None)
        env.update(extra)
        return env

    def run(self, *args: str, tool: str = "doit", check: bool = True, **extra_env) -> subprocess.CompletedProcess:
        self.api_log.write_text("")
        cmd = [sys.executable, "-m", "doit", *args] if tool == "doit" else [sys.executable, "-m", "copilot_doit.cli", *args]
        p = subprocess.run(cmd, cwd=self.root, env=self.env(**extra_env), capture_output=True, text=True, timeout=600)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return p

    def api_calls(self) -> list[dict]:
        return [json.loads(line) for line in self.api_log.read_text().splitlines() if line.strip()]

    def mutating(self) -> list[str]:
        return [f"{c['service']}:{c['operation']}" for c in self.api_calls() if c["mutating"]]

    def commit(self, message: str = "change") -> None:
        subprocess.run(["git", "add", "-A"], cwd=self.root, check=True, capture_output=True)
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", message],
                       cwd=self.root, check=True, capture_output=True)

    def stacks(self) -> list[dict]:
        """Every stack of the shared emulator (paginated: the session's tests leave many)."""
        pages = self.client("cloudformation").get_paginator("describe_stacks").paginate()
        return [st for page in pages for st in page["Stacks"]]

    def client(self, service: str):
        import boto3
        return boto3.client(service, endpoint_url=self.endpoints.moto_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


def set_log_level(ws, level: str) -> None:
    """api's LOG_LEVEL variable set to `level` (a manifest change that re-packages and re-deploys api)."""
    m = ws.manifests / "api" / "manifest.yml"
    text = m.read_text()
    current = text.split("LOG_LEVEL: ", 1)[1].split("\n", 1)[0]
    m.write_text(text.replace(f"LOG_LEVEL: {current}", f"LOG_LEVEL: {level}"))


def marks(stdout: str) -> dict[str, str]:
    """doit's own marks per task: '.' ran, '--' up to date."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith(".  ") or line.startswith("-- "):
            mark, rest = line.split(" ", 1)
            out[rest.strip().split()[0]] = mark
    return out


def make_workspace(base: Path, endpoints) -> Workspace:
    root = base / "repo"
    shutil.copytree(REPO / "manifests", root / "manifests",
                    ignore=shutil.ignore_patterns("busybox"))
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    (root / ".gitignore").write_text("/cache/\nbusybox\napi.jsonl\n")
    for ctx in (root / "manifests").glob("*/src"):
        if (ctx / "Dockerfile").exists() and "COPY busybox" in (ctx / "Dockerfile").read_text():
            shutil.copy(BUSYBOX, ctx / "busybox")
    app = "t" + uuid.uuid4().hex[:8]
    (root / "manifests" / ".workspace").write_text(f"application: {app}\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    ws = Workspace(root, app, endpoints)
    ws.commit("sample workspace")
    return ws


def scratch_workspace(base: Path, endpoints, prefix: str, manifests: dict[str, str]) -> Workspace:
    """A workspace of one local environment `test` and the given workloads ({name: manifest text, whose
    image builds from copilot/<name>/src/Dockerfile}), each image FROM scratch with one file, committed."""
    root = base / "repo"
    ws = root / "copilot"
    (ws / "environments" / "test").mkdir(parents=True)
    (ws / ".workspace").write_text(f"application: {prefix}{uuid.uuid4().hex[:8]}\n")
    (ws / "copilot-doit.yml").write_text("environments:\n  test: {target: local, region: us-east-1}\n")
    (ws / "environments" / "test" / "manifest.yml").write_text("name: test\ntype: Environment\n")
    for name, text in manifests.items():
        (ws / name / "src").mkdir(parents=True)
        (ws / name / "src" / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\nCMD [\"/hello\"]\n")
        (ws / name / "src" / "hello.txt").write_text(f"hello from {name}\n")
        (ws / name / "manifest.yml").write_text(text)
    (root / "dodo.py").write_text((REPO / "dodo.py").read_text())
    (root / ".gitignore").write_text("api.jsonl\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    w = Workspace(root, ws.joinpath(".workspace").read_text().split()[-1], endpoints)
    w.commit("generated")
    return w


def scratch_session(tmp_path: Path, monkeypatch, prefix: str, names: list[str]):
    """(workspace, Session over `names` in env `test`) of a scratch workspace of Backend Services built from
    their own contexts, with the cache under tmp_path and the workspace as the current folder."""
    from copilot_doit.session import Options, Session
    ws = scratch_workspace(tmp_path, None, prefix, {
        n: f"name: {n}\ntype: Backend Service\nimage: {{build: copilot/{n}/src/Dockerfile, port: 80}}\n"
        for n in names})
    monkeypatch.chdir(ws.root)
    monkeypatch.setenv("COPILOT_DOIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COPILOT_DOIT_WORKSPACE", raising=False)
    return ws, Session(Options(names=list(names), envs=["test"]))


@pytest.fixture
def workspace(tmp_path, services_up) -> Workspace:
    return make_workspace(tmp_path, services_up)
