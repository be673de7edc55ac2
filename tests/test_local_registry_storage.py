"""The local target's registry lookups: the run's first one asks the registry (a paused one fails there), the
later ones read the registry's storage and ask the registry only what its files do not show, so "absent" is
always the registry's own answer — what a HEAD of the manifest would have said, without its CPU."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from test_local_ecr_snapshot import _calls, _registry_image, target  # noqa: F401 — `target` is a fixture

pytestmark = pytest.mark.e2e


def test_the_storage_shows_what_a_head_of_the_manifest_says(services_up):
    from copilot_doit.targets.local import lite
    root, registry = services_up.registry_root, services_up.registry
    assert root and os.path.isdir(root), services_up
    repo = f"store{uuid.uuid4().hex[:8]}/web"
    digest = _registry_image(registry, repo, "v1")
    other = _registry_image(registry, repo, "v2")
    cases = [(repo, digest), (repo, "v1"), (repo, other), (repo, "v2"), (repo, "v3"), (repo, "sha256:" + "2" * 64),
             (f"store{uuid.uuid4().hex[:8]}/none", "v1"), (repo, "sha256:" + digest[7:15])]
    for name, reference in cases:
        assert lite.stored_digest(root, name, reference) == lite.registry_digest(registry, name, reference), \
            (name, reference)
    assert lite.stored_digest(root, repo, "v1") == digest and lite.stored_digest(root, repo, "v2") == other
    # names that would leave the storage are not read
    assert lite.stored_digest(root, f"../{repo}", "v1") is None and lite.stored_digest(root, repo, "../v1") is None


def test_a_manifest_whose_blob_is_gone_is_left_to_the_registry(services_up):
    from copilot_doit.targets.local import lite
    root = services_up.registry_root
    repo = f"store{uuid.uuid4().hex[:8]}/web"
    digest = _registry_image(services_up.registry, repo, "v1")
    data = os.path.join(root, "docker", "registry", "v2", "blobs", "sha256", digest[7:9], digest[7:], "data")
    moved = data + ".away"
    os.rename(data, moved)
    try:
        assert lite.stored_digest(root, repo, digest) is None and lite.stored_digest(root, repo, "v1") is None
    finally:
        os.rename(moved, data)
    assert lite.stored_digest(root, repo, "v1") == digest


def test_the_first_lookup_asks_the_registry_later_ones_read_its_storage(target, services_up, tmp_path, monkeypatch):
    repo = f"store{uuid.uuid4().hex[:8]}/web"
    digests = [_registry_image(services_up.registry, repo, f"v{i}") for i in range(3)]
    log = tmp_path / "api.log"
    monkeypatch.setenv("COPILOT_DOIT_API_LOG", str(log))
    assert [target.tag_digest(repo, f"v{i}") for i in range(3)] == digests
    assert _calls(log).count("registry:HeadManifest") == 1             # the first only
    assert target.tag_digest(repo, "v9") is None                        # absent: the registry says so itself
    assert _calls(log).count("registry:HeadManifest") == 2


def test_concurrent_first_lookups_ask_the_registry_once(target, services_up, tmp_path, monkeypatch):
    """The checks of a run look up at once: one of them asks the registry, the others wait for its answer and
    read the storage (before: every thread that came before the first answer sent its own HEAD — a count
    that varied from run to run, CI stop 29)."""
    from concurrent.futures import ThreadPoolExecutor
    from copilot_doit.targets.local import lite
    repo = f"store{uuid.uuid4().hex[:8]}/web"
    digests = [_registry_image(services_up.registry, repo, f"v{i}") for i in range(8)]
    log = tmp_path / "api.log"
    monkeypatch.setenv("COPILOT_DOIT_API_LOG", str(log))
    slow_head = lite.registry_digest

    def registry_digest(*args, **kwargs):   # the first answer comes back after all 8 have asked
        time.sleep(0.3)
        return slow_head(*args, **kwargs)

    monkeypatch.setattr(lite, "registry_digest", registry_digest)
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda i: target.tag_digest(repo, f"v{i}"), range(8)))
    assert found == digests
    assert _calls(log).count("registry:HeadManifest") == 1


def test_a_failed_first_lookup_leaves_the_next_ones_to_ask_the_registry(target, services_up, monkeypatch):
    """A registry that does not answer fails the check that asked first, in its words — which may be a check
    run in the background, its error dropped: the next lookups ask the registry again (and fail the same way)
    instead of taking the storage's word for an image (CI of 1042d15: a no-op with the registry paused said
    "already in registry"); the concurrent ones that waited for the first answer ask at once."""
    from concurrent.futures import ThreadPoolExecutor
    from copilot_doit.targets.local import lite
    repo = f"store{uuid.uuid4().hex[:8]}/web"
    digest = _registry_image(services_up.registry, repo, "v1")
    real, asked = lite.registry_digest, []

    def paused(registry, name, reference):
        asked.append(reference)
        time.sleep(0.2)
        raise lite.LiteError("the local registry did not answer")

    monkeypatch.setattr(lite, "registry_digest", paused)

    def lookup(i):
        try:
            return target.tag_digest(repo, "v1")
        except lite.LiteError as exc:
            return str(exc)

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lookup, range(4))) == ["the local registry did not answer"] * 4
    assert asked == ["v1"] * 4
    with pytest.raises(lite.LiteError):
        target.tag_digest(repo, "v1")
    monkeypatch.setattr(lite, "registry_digest", real)
    assert target.tag_digest(repo, "v1") == digest      # answered: the storage is read from here on
    monkeypatch.setattr(lite, "registry_digest", paused)
    assert target.tag_digest(repo, "v1") == digest and len(asked) == 5


def test_a_wiped_storage_is_asked_of_the_registry(services_up, tmp_path, monkeypatch):
    """Its files gone under the running registry (test_e2e_faults has the whole deploy): nothing is found in
    the storage, and the registry's own answer is the one given, each time."""
    from copilot_doit.targets.local import LocalTarget, lite, services
    from copilot_doit.workspace import EnvSettings
    wiped = tmp_path / "registry"
    wiped.mkdir()
    repo = f"store{uuid.uuid4().hex[:8]}/web"
    digest = _registry_image(services_up.registry, repo, "v1")
    assert lite.stored_digest(str(wiped), repo, digest) is None
    t = LocalTarget(EnvSettings(name="test", target="local", region="us-east-1"), tmp_path)
    t._endpoints = services.Endpoints(moto_url=services_up.moto_url, registry=services_up.registry,
                                      registry_root=str(wiped))
    log = tmp_path / "api.log"
    monkeypatch.setenv("COPILOT_DOIT_API_LOG", str(log))
    assert [t.tag_digest(repo, "v1") for _ in range(3)] == [digest] * 3
    assert _calls(log).count("registry:HeadManifest") == 3            # each asked of the registry
