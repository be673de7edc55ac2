"""engine.warm_client: the docker SDK's client is made in a thread while a build runs (the push after it then
starts without the SDK's ~100 ms import), once per process; what fails there is reported by the push."""
from __future__ import annotations

import threading

import docker
import pytest

from copilot_doit import engine
from copilot_doit.errors import ServiceUnavailable


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(engine, "_client", None)
    monkeypatch.setattr(engine, "_warming", False)
    made = []

    class Fake:
        def ping(self):
            return True

    def from_env(**kw):
        made.append(threading.current_thread().name)
        return Fake()
    monkeypatch.setattr(docker, "from_env", from_env)
    return made


def _join_warm():
    for t in threading.enumerate():
        if t.name == "docker-sdk":
            t.join(10)


def test_the_client_is_made_once_in_its_own_thread_and_the_push_gets_that_one(fresh):
    engine.warm_client()
    engine.warm_client()   # a second build in the same run starts nothing more
    _join_warm()
    assert fresh == ["docker-sdk"]
    made = engine._client
    assert engine.client() is made and fresh == ["docker-sdk"]


def test_a_client_the_warm_up_could_not_make_is_reported_by_the_push(fresh, monkeypatch):
    def refused(**kw):
        fresh.append("refused")
        raise docker.errors.DockerException("connection refused")
    monkeypatch.setattr(docker, "from_env", refused)
    engine.warm_client()
    _join_warm()
    assert fresh == ["refused"] and engine._client is None
    with pytest.raises(ServiceUnavailable, match="not reachable: connection refused"):
        engine.client()


def test_a_build_warms_the_client_before_the_cli_builds(tmp_path, monkeypatch, fresh):
    from copilot_doit.stages import build
    from conftest import scratch_session
    _, s = scratch_session(tmp_path, monkeypatch, "warm", ["aa"])
    seen = []
    monkeypatch.setattr(build, "build_image", lambda *a, **k: seen.append(engine._warming) or {"image_id": "sha256:1"})
    monkeypatch.setattr(build, "status", lambda *a, **k: build.Status(True, "test", build.Key("t", "00" * 16), None, {}))
    monkeypatch.setattr(s, "record", lambda *a, **k: None)
    build.run(s, "aa", "test")
    _join_warm()
    assert seen == [True] and fresh == ["docker-sdk"]
