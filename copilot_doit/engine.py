"""The Docker engine: the docker SDK for builds and pushes, a raw socket probe for the no-op path.

`image_id(ref)` answers "is this image in the engine, with which id" with one HTTP request on the
Unix socket (~1 ms, plainhttp.py), without importing the SDK (~190 ms).
"""
from __future__ import annotations

import json
import os
import threading
import urllib.parse

from . import plainhttp
from .audit import log_api
from .errors import ServiceUnavailable

DEFAULT_SOCKET = "/var/run/docker.sock"


def _socket_path() -> str:
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return DEFAULT_SOCKET


def _through_sdk() -> bool:
    """An engine reached over tcp/ssh (DOCKER_HOST): asked through the SDK, not the raw Unix socket."""
    host = os.environ.get("DOCKER_HOST", "")
    return bool(host) and not host.startswith("unix://")


def image_id(ref: str) -> str | None:
    """Id of a local image (by id, name:tag or repo@digest), or None if the engine does not have it."""
    if _through_sdk():
        c = client()  # tcp/ssh engines: go through the SDK
        import docker
        try:
            return c.api.inspect_image(ref)["Id"]
        except docker.errors.ImageNotFound:
            return None
    log_api("docker", "InspectImage", "engine")
    status, body = _unix_get(f"/images/{urllib.parse.quote(ref, safe='')}/json", f"image {ref}")
    if status == 404:
        return None
    if status != 200:
        raise ServiceUnavailable(f"the Docker engine answered HTTP {status} for image {ref}")
    return json.loads(body)["Id"]


def image_ids(reference: str) -> set[str] | None:
    """Ids of the local images tagged with a name that matches `reference` (the engine's `reference` filter,
    a pattern like `copilot-doit/app-*`), in one request; None for an engine without the raw socket (tcp/ssh:
    asked one by one through the SDK instead)."""
    if _through_sdk():
        return None
    log_api("docker", "ListImages", "engine")
    filters = urllib.parse.quote(json.dumps({"reference": [reference]}), safe="")
    status, body = _unix_get(f"/images/json?filters={filters}", f"images {reference}")
    if status != 200:
        raise ServiceUnavailable(f"the Docker engine answered HTTP {status} listing images {reference}")
    return {image["Id"] for image in json.loads(body)}


_client = None
_client_lock = threading.Lock()
_warming = False
_warming_lock = threading.Lock()   # not _client_lock: that one is held for the SDK's whole import


def client():
    global _client
    with _client_lock:   # one client per process, also when warm_client's thread is making it
        if _client is None:
            import docker
            try:
                c = docker.from_env(timeout=600)
                c.ping()
            except docker.errors.DockerException as exc:
                raise ServiceUnavailable(f"the Docker engine is not reachable: {exc}",
                                         allowed="start dockerd, or set DOCKER_HOST") from None
            _client = c
    return _client


def warm_client() -> None:
    """Make the SDK's client (its import is ~100 ms) in a thread while a build runs: the build is the docker
    CLI working and this process waiting on it, so the push after it starts at once. Once per process, from
    a stage's run (not from the checks: doit may fork `-P process` workers after them, and a thread in an
    import must not be forked). A failure is left for the push to report in its words."""
    global _warming
    with _warming_lock:   # parallel builds (-j N) get here together: one thread, as for the CLI's probe
        if _client is not None or _warming:
            return
        _warming = True

    def warm():
        try:
            client()
        except Exception:  # noqa: BLE001 — the push asks again and reports it
            pass
    threading.Thread(target=warm, name="docker-sdk", daemon=True).start()


def _unix_get(path: str, what: str) -> tuple[int, bytes]:
    """One GET on the engine's Unix socket: (status, body). A dead engine is ServiceUnavailable."""
    try:
        r = plainhttp.request("GET", path, unix_socket=_socket_path(), connect_timeout=10, read_timeout=10)
    except OSError as exc:
        raise ServiceUnavailable(f"the Docker engine does not answer on {_socket_path()} ({what}): {exc}",
                                 allowed="start dockerd, or set DOCKER_HOST") from None
    return r.status, r.body


def inspect_image(ref: str) -> dict | None:
    """The engine's JSON for a local image (Id, RepoTags, RepoDigests, Architecture, ...), or None."""
    if _through_sdk():
        import docker
        try:
            return client().api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
    log_api("docker", "InspectImage", "engine")
    status, body = _unix_get(f"/images/{urllib.parse.quote(ref, safe='')}/json", f"inspect image {ref}")
    if status == 404:
        return None
    if status != 200:
        raise ServiceUnavailable(f"the Docker engine answered HTTP {status} for image {ref}")
    return json.loads(body)


def has_network(name: str) -> bool:
    """Whether the engine has a network of that name (`dockerd --bridge=none` has no `bridge`)."""
    if _through_sdk():
        import docker
        try:
            client().api.inspect_network(name)
            return True
        except docker.errors.NotFound:
            return False
    log_api("docker", "InspectNetwork", "engine")
    status, _ = _unix_get(f"/networks/{urllib.parse.quote(name, safe='')}", f"inspect network {name}")
    if status == 404:
        return False
    if status != 200:
        raise ServiceUnavailable(f"the Docker engine answered HTTP {status} for network {name}")
    return True
