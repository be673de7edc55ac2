"""Background services of the local target: a patched moto server and a docker-registry.

Started on first use on free 127.0.0.1 ports, recorded in `<cache>/local/services.json`, reused by later
runs (a pid + cmdline + TCP check, well under a millisecond), stopped by `copilot-doit local stop`.
A service is recorded the moment it is spawned, before it answers, so a run killed while it starts
leaves a recorded process (the next run waits for it, `local stop` stops it), never an orphan; `local
stop` also stops any process still running in the local folder with a service's command line (one
spawned by an older layout, or in the microseconds between spawn and record).
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
import sys
import time
from pathlib import Path

from ...errors import ServiceUnavailable
from ...values import value

STATE_FILE = "services.json"
MOTO_MARKER = "copilot_doit.targets.local.moto_server"
# Command-line markers of moto servers started by earlier layouts of this package: a server started
# before an upgrade is still found (reused, or stopped by `local stop`) instead of being orphaned.
LEGACY_MOTO_MARKERS = ("copilot_doit.local.moto_server",)
MOTO_MARKERS = (MOTO_MARKER, *LEGACY_MOTO_MARKERS)
REGISTRY_MARKERS = ("registry",)
REGISTRY_BINARIES = ("docker-registry", "registry")


@value
class Endpoints:
    moto_url: str        # http://127.0.0.1:PORT
    registry: str        # 127.0.0.1:PORT
    registry_root: str | None = None   # the registry's storage (its filesystem driver's root directory)


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
    import urllib.request  # here: only when a service is started or checked by hand
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


START_TIMEOUT = 60.0


def _wait_ready(url: str, proc, log: Path, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailable(f"{what} exited with code {proc.returncode} on start; see {log}")
        if _http_ok(url):
            return
        time.sleep(0.1)
    proc.kill()
    raise ServiceUnavailable(f"{what} did not answer {url} within {timeout:.0f}s; see {log}")


def _ready_url(name: str, port: int) -> str:
    return f"http://127.0.0.1:{port}/moto-api/data.json" if name == "moto" else f"http://127.0.0.1:{port}/v2/"


def _spawned(d: Path, name: str, proc, port: int, log: Path, **extra) -> dict:
    """Record a service the moment it is spawned (not yet answering): a run killed while it starts leaves
    a process the state file names, which the next run waits for and `local stop` stops."""
    entry = {"pid": proc.pid, "port": port, "started": time.time(), "log": str(log), **extra, "starting": True}
    state = read_state(d)
    state[name] = entry
    _write_state(d, state)
    return entry


def _start_moto(d: Path) -> dict:
    import subprocess  # here: a run that finds its services up never starts one
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
    entry = _spawned(d, "moto", proc, port, log)
    _wait_ready(_ready_url("moto", port), proc, log, "the moto server")
    entry.pop("starting")
    return entry


def _registry_binary() -> str:
    for name in REGISTRY_BINARIES:
        path = shutil.which(name)
        if path:
            return path
    raise ServiceUnavailable("docker-registry is not installed", allowed="apt-get install docker-registry")


# The registry is a Go program with a small heap that allocates on every request: at Go's default GOGC=100
# it collected every few requests, and each HEAD cost ~0.9 ms of its CPU (~0.6 ms with GOGC=400; measured
# with 8 concurrent clients), the largest share of a no-op's live checks on this target (one HEAD per
# workload). GOMEMLIMIT keeps a busy push from letting the larger heap grow without bound. A user's own GOGC
# or GOMEMLIMIT wins.
REGISTRY_GO_ENV = {"GOGC": "400", "GOMEMLIMIT": "512MiB"}


def _start_registry(d: Path) -> dict:
    import subprocess
    binary = _registry_binary()
    port = _free_port()
    root = d / "registry"
    root.mkdir(parents=True, exist_ok=True)
    cfg = d / "registry.yml"
    cfg.write_text(json.dumps({  # JSON is YAML: no templating of a config file
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        # No in-memory blob descriptor cache: with it, blobs wiped from disk under a running registry
        # were still reported present, so a push skipped them and the registry then served nothing.
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }, indent=2))
    log = d / "registry.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(d),
                                env={**REGISTRY_GO_ENV, **os.environ})
    entry = _spawned(d, "registry", proc, port, log, root=str(root))
    _wait_ready(_ready_url("registry", port), proc, log, "docker-registry")
    entry.pop("starting")
    return entry


def _adopt_or_clear(d: Path, state: dict, name: str) -> bool:
    """A recorded service that runs but does not answer yet was spawned by a run killed while it started:
    wait for it (bounded) and keep it; one that never answers is stopped. True when it answers now."""
    s = state.get(name)
    if not s or not _alive(s["pid"], _markers(name)):
        return False
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and _alive(s["pid"], _markers(name)):
        if _http_ok(_ready_url(name, s["port"])):
            s.pop("starting", None)
            return True
        time.sleep(0.1)
    _terminate(s["pid"], _markers(name))
    return False


def ensure_running(cache_root) -> Endpoints:
    d = local_dir(cache_root)
    state = read_state(d)
    if _running(state, "moto") and _running(state, "registry") and not _starting(state):
        return _endpoints(state)
    with _locked(d):
        state = read_state(d)
        changed = False
        for name, start, what in (("moto", _start_moto, f"the moto server (state in {d})"),
                                  ("registry", _start_registry, f"docker-registry (blobs in {d / 'registry'})")):
            if _running(state, name) and not state[name].get("starting"):
                continue
            changed = True
            if _adopt_or_clear(d, state, name):
                print(f"local: {name} (pid {state[name]['pid']}) started by an interrupted run answers now; "
                      "kept", file=sys.stderr)
                continue
            for pid, stray in strays(d, {s["pid"] for s in state.values() if isinstance(s, dict) and "pid" in s}):
                if stray == name:  # spawned by a run killed before it could record it: nobody uses it
                    print(f"local: stopping {name} pid {pid}, left unrecorded by an interrupted start", file=sys.stderr)
                    _terminate(pid, _markers(name))
            print(f"local: starting {what}", file=sys.stderr)
            state[name] = start(d)
            _write_state(d, state)
        if changed:
            _write_state(d, state)
    return _endpoints(state)


def _starting(state: dict) -> bool:
    return any((state.get(name) or {}).get("starting") for name in ("moto", "registry"))


def running_endpoints(cache_root) -> Endpoints | None:
    """The endpoints when both services run, else None (starts nothing)."""
    state = read_state(local_dir(cache_root))
    up = _running(state, "moto") and _running(state, "registry") and not _starting(state)
    return _endpoints(state) if up else None


def _endpoints(state: dict) -> Endpoints:
    return Endpoints(moto_url=f"http://127.0.0.1:{state['moto']['port']}",
                     registry=f"127.0.0.1:{state['registry']['port']}", registry_root=state["registry"].get("root"))


def _terminate(pid: int, markers: tuple[str, ...]) -> None:
    """SIGTERM (and SIGCONT, so a paused service gets it), then SIGKILL after 5 s."""
    try:
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        return
    for _ in range(50):
        if not _alive(pid, markers):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def strays(d: Path, known: set[int] = frozenset()) -> list[tuple[int, str]]:
    """Processes running in the local folder `d` with a service's command line that the state file does
    not name: (pid, service). The services are started with `d` as their working directory."""
    try:
        target = os.path.realpath(d)
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit() or int(entry) in known or int(entry) == os.getpid():
            continue
        pid = int(entry)
        try:
            if os.readlink(f"/proc/{pid}/cwd") != target:
                continue
        except OSError:
            continue
        for name in ("moto", "registry"):
            if _alive(pid, MOTO_MARKERS if name == "moto" else (str(d / "registry.yml"),)):
                found.append((pid, name))
                break
    return found


def stop(cache_root) -> list[str]:
    """Stop the services this cache started: by their recorded pids, and any stray still running in the
    local folder with a service's command line (spawned by a run killed before it recorded it)."""
    d = local_dir(cache_root)
    stopped = []
    with _locked(d):
        state = read_state(d)
        known = set()
        for name in ("moto", "registry"):
            s, marker = state.get(name), _markers(name)
            if s and _alive(s["pid"], marker):
                known.add(s["pid"])
                _terminate(s["pid"], marker)
                stopped.append(f"{name} (pid {s['pid']}, port {s['port']})")
            state.pop(name, None)
        for pid, name in strays(d, known):
            _terminate(pid, _markers(name))
            stopped.append(f"{name} (pid {pid}, not recorded: left by an interrupted start)")
        _write_state(d, state)
    return stopped


def status(cache_root) -> dict:
    d = local_dir(cache_root)
    state = read_state(d)
    return {name: {**s, "running": _running(state, name)} for name, s in state.items()}


def reset(cache_root) -> None:
    """Wipe the emulator's state (stacks, ECR records, buckets); the registry's blobs stay."""
    import urllib.request
    e = ensure_running(cache_root)
    req = urllib.request.Request(f"{e.moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass
