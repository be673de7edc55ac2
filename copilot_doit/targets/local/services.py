"""Background services of the local target: a patched moto server and a docker-registry.

Started on first use on free 127.0.0.1 ports, recorded in `<cache>/local/services.json`, reused by later
runs (a pid + cmdline + TCP check, well under a millisecond), stopped by `copilot-doit local stop`.
moto keeps its state in memory only: a restarted moto is an empty cloud, which the live checks of the
stages notice (stacks missing) and redeploy. The registry keeps its blobs under `<cache>/local/registry`.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ...errors import ServiceUnavailable

STATE_FILE = "services.json"
MOTO_MARKER = "copilot_doit.targets.local.moto_server"
# Command-line markers of moto servers started by earlier layouts of this package: a server started
# before an upgrade is still found (reused, or stopped by `local stop`) instead of being orphaned.
LEGACY_MOTO_MARKERS = ("copilot_doit.local.moto_server",)
MOTO_MARKERS = (MOTO_MARKER, *LEGACY_MOTO_MARKERS)
REGISTRY_MARKERS = ("registry",)
REGISTRY_BINARIES = ("docker-registry", "registry")


@dataclass
class Endpoints:
    moto_url: str        # http://127.0.0.1:PORT
    registry: str        # 127.0.0.1:PORT


def local_dir(cache_root) -> Path:
    return Path(os.environ.get("COPILOT_DOIT_LOCAL_DIR") or Path(cache_root) / "local")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int, markers: tuple[str, ...]) -> bool:
    """The pid runs and its command line names one of `markers` (a recycled pid does not)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().decode(errors="replace")
    except OSError:
        return False
    return any(m in cmd for m in markers)


def _port_open(port: int) -> bool:
    with contextlib.closing(socket.socket()) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def _locked(d: Path):
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_state(d: Path) -> dict:
    try:
        return json.loads((d / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write_state(d: Path, state: dict) -> None:
    from ...cache import atomic_write
    atomic_write(d / STATE_FILE, json.dumps(state, indent=2).encode())


def _running(state: dict, name: str) -> bool:
    s = state.get(name)
    return bool(s) and _alive(s["pid"], _markers(name)) and _port_open(s["port"])


def _markers(name: str) -> tuple[str, ...]:
    return MOTO_MARKERS if name == "moto" else REGISTRY_MARKERS


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailable(f"{what} exited with code {proc.returncode} on start; see {log}")
        if _http_ok(url):
            return
        time.sleep(0.1)
    proc.kill()
    raise ServiceUnavailable(f"{what} did not answer {url} within {timeout:.0f}s; see {log}")


def _start_moto(d: Path) -> dict:
    port = _free_port()
    log = d / "moto.log"
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("COPILOT_DOIT_API_LOG", None)
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", MOTO_MARKER, "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=str(d))
    _wait_ready(f"http://127.0.0.1:{port}/moto-api/data.json", proc, log, "the moto server")
    return {"pid": proc.pid, "port": port, "started": time.time(), "log": str(log)}


def _registry_binary() -> str:
    for name in REGISTRY_BINARIES:
        path = shutil.which(name)
        if path:
            return path
    raise ServiceUnavailable("docker-registry is not installed", allowed="apt-get install docker-registry")


def _start_registry(d: Path) -> dict:
    binary = _registry_binary()
    port = _free_port()
    root = d / "registry"
    root.mkdir(parents=True, exist_ok=True)
    cfg = d / "registry.yml"
    cfg.write_text(json.dumps({  # JSON is YAML: no templating of a config file
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True},
                    "cache": {"blobdescriptor": "inmemory"}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }, indent=2))
    log = d / "registry.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(d))
    _wait_ready(f"http://127.0.0.1:{port}/v2/", proc, log, "docker-registry")
    return {"pid": proc.pid, "port": port, "started": time.time(), "log": str(log), "root": str(root)}


def ensure_running(cache_root) -> Endpoints:
    d = local_dir(cache_root)
    state = read_state(d)
    if _running(state, "moto") and _running(state, "registry"):
        return _endpoints(state)
    with _locked(d):
        state = read_state(d)
        changed = False
        if not _running(state, "moto"):
            print(f"local: starting the moto server (state in {d})", file=sys.stderr)
            state["moto"] = _start_moto(d)
            changed = True
        if not _running(state, "registry"):
            print(f"local: starting docker-registry (blobs in {d / 'registry'})", file=sys.stderr)
            state["registry"] = _start_registry(d)
            changed = True
        if changed:
            _write_state(d, state)
    return _endpoints(state)


def running_endpoints(cache_root) -> Endpoints | None:
    """The endpoints when both services run, else None (starts nothing)."""
    state = read_state(local_dir(cache_root))
    return _endpoints(state) if _running(state, "moto") and _running(state, "registry") else None


def _endpoints(state: dict) -> Endpoints:
    return Endpoints(moto_url=f"http://127.0.0.1:{state['moto']['port']}",
                     registry=f"127.0.0.1:{state['registry']['port']}")


def stop(cache_root) -> list[str]:
    """Stop the services this cache started (by their recorded pids only)."""
    d = local_dir(cache_root)
    stopped = []
    with _locked(d):
        state = read_state(d)
        for name in ("moto", "registry"):
            s, marker = state.get(name), _markers(name)
            if s and _alive(s["pid"], marker):
                os.kill(s["pid"], signal.SIGTERM)
                for _ in range(50):
                    if not _alive(s["pid"], marker):
                        break
                    time.sleep(0.1)
                else:
                    os.kill(s["pid"], signal.SIGKILL)
                stopped.append(f"{name} (pid {s['pid']}, port {s['port']})")
            state.pop(name, None)
        _write_state(d, state)
    return stopped


def status(cache_root) -> dict:
    d = local_dir(cache_root)
    state = read_state(d)
    return {name: {**s, "running": _running(state, name)} for name, s in state.items()}


def reset(cache_root) -> None:
    """Wipe the emulator's state (stacks, ECR records, buckets); the registry's blobs stay."""
    e = ensure_running(cache_root)
    req = urllib.request.Request(f"{e.moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass
