"""The local target starts docker-registry with a lazier Go collector (services.REGISTRY_GO_ENV): at Go's
default it collected every few requests, ~0.9 ms of its CPU per HEAD against ~0.6 ms. A user's own GOGC or
GOMEMLIMIT wins."""
from __future__ import annotations

import os
import shutil
import signal

import pytest

from conftest import missing
from copilot_doit.targets.local import services


def _environ(pid: int) -> dict[str, str]:
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.parametrize("user_gogc", [None, "150"])
def test_the_registry_runs_with_a_lazier_go_collector(tmp_path, monkeypatch, user_gogc):
    if not (shutil.which("docker-registry") or shutil.which("registry")):
        missing("docker-registry is not installed")
    if user_gogc is None:
        monkeypatch.delenv("GOGC", raising=False)
    else:
        monkeypatch.setenv("GOGC", user_gogc)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    entry = services._start_registry(tmp_path)
    try:
        env = _environ(entry["pid"])
        assert env.get("GOGC") == (user_gogc or services.REGISTRY_GO_ENV["GOGC"]), env.get("GOGC")
        assert env.get("GOMEMLIMIT") == services.REGISTRY_GO_ENV["GOMEMLIMIT"]
    finally:
        os.kill(entry["pid"], signal.SIGKILL)
        try:
            os.waitpid(entry["pid"], 0)   # this process's child (Popen): reaped, not left a zombie
        except ChildProcessError:
            pass
