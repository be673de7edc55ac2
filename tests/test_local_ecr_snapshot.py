"""The local target's ECR half of "is this image in the registry": one read of the emulated ECR per run
(moto patch 16) instead of one DescribeImages per workload, dropped when this run pushes."""
from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid

import pytest

pytestmark = pytest.mark.e2e


def _registry_image(registry: str, repo: str, tag: str) -> str:
    """A one-blob image (config only) in the local registry; returns its manifest digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex,
                         "rootfs": {"type": "layers", "diff_ids": []}, "config": {}}).encode()
    blob = "sha256:" + hashlib.sha256(config).hexdigest()
    start = urllib.request.urlopen(urllib.request.Request(f"http://{registry}/v2/{repo}/blobs/uploads/", method="POST"))
    location = start.headers["Location"]
    location = location if location.startswith("http") else f"http://{registry}{location}"
    sep = "&" if "?" in location else "?"
    urllib.request.urlopen(urllib.request.Request(f"{location}{sep}digest={blob}", data=config, method="PUT",
                                                  headers={"Content-Type": "application/octet-stream"}))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                      "size": len(config), "digest": blob}, "layers": []}).encode()
    urllib.request.urlopen(urllib.request.Request(
        f"http://{registry}/v2/{repo}/manifests/{tag}", data=manifest, method="PUT",
        headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"}))
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


@pytest.fixture
def target(services_up, tmp_path):
    from copilot_doit.targets.local import LocalTarget
    from copilot_doit.workspace import EnvSettings
    return LocalTarget(EnvSettings(name="test", target="local", region="us-east-1"), tmp_path)


def _calls(log) -> list[str]:
    return [f"{r['service']}:{r['operation']}" for r in map(json.loads, log.read_text().splitlines())] if log.exists() else []


def test_one_read_of_the_emulated_ecr_answers_every_workload(target, services_up, tmp_path, monkeypatch):
    registry = services_up.registry
    repos = [f"snap{uuid.uuid4().hex[:8]}/w{i}" for i in range(3)]
    digests = {}
    for repo in repos:
        target.ensure_repository(repo, {})
        digests[repo] = _registry_image(registry, repo, "v1")
    for repo in repos[:2]:
        target.after_push(repo, digests[repo], ["v1"])   # the third is in the registry only
    log = tmp_path / "api.log"
    monkeypatch.setenv("COPILOT_DOIT_API_LOG", str(log))
    found = {repo: target.image_digest_in_registry(repo, digest=digests[repo]) for repo in repos}
    assert found == {repos[0]: digests[repos[0]], repos[1]: digests[repos[1]], repos[2]: None}, \
        "both halves must hold: the registry's blobs and the emulated ECR's record"
    calls = _calls(log)
    assert calls.count("ecr:ListAllImages") == 1, calls
    assert calls.count("ecr:DescribeImages") == 1, calls     # only the one the listing lacks, asked itself
    # the registry asked once (it answers); the other two read from its storage (test_local_registry_storage.py)
    assert calls.count("registry:HeadManifest") == 1, calls

    # a push in this run drops what was read: the image it registered is found at once
    target.after_push(repos[2], digests[repos[2]], ["v1"])
    assert target.image_digest_in_registry(repos[2], digest=digests[repos[2]]) == digests[repos[2]]
    assert _calls(log).count("ecr:ListAllImages") == 2


def test_an_image_pushed_by_another_process_after_the_read_is_found(target, services_up):
    """`doit -P process`: a worker read the listing before another worker pushed; "absent" is asked again."""
    from copilot_doit.targets.local import LocalTarget
    from copilot_doit.workspace import EnvSettings
    repo = f"snap{uuid.uuid4().hex[:8]}/late"
    target.ensure_repository(repo, {})
    assert target._ecr_images() is not None                     # read before the push
    other = LocalTarget(EnvSettings(name="test", target="local", region="us-east-1"), target.cache_root)
    digest = _registry_image(services_up.registry, repo, "v1")
    other.after_push(repo, digest, ["v1"])                      # the other worker's push
    assert target.image_digest_in_registry(repo, digest=digest) == digest


def test_an_emulator_without_the_listing_is_asked_per_image(target, services_up, tmp_path, monkeypatch):
    """A moto server started by an older copilot-doit (no patch 16) answers 404: DescribeImages per image."""
    from copilot_doit.targets.local import lite
    repo = f"snap{uuid.uuid4().hex[:8]}/old"
    target.ensure_repository(repo, {})
    digest = _registry_image(services_up.registry, repo, "v1")
    target.after_push(repo, digest, ["v1"])
    real_request = lite._request

    def older_emulator(base, method, path, body, headers, what=lite.MOTO):
        if path.startswith("/copilot-doit/"):
            return 404, {}, b"<h1>Not Found</h1>"
        return real_request(base, method, path, body, headers, what)
    monkeypatch.setattr(lite, "_request", older_emulator)
    log = tmp_path / "api.log"
    monkeypatch.setenv("COPILOT_DOIT_API_LOG", str(log))
    assert target.image_digest_in_registry(repo, digest=digest) == digest
    assert target.image_digest_in_registry(repo, digest="sha256:" + "1" * 64) is None
    assert _calls(log).count("ecr:DescribeImages") == 1   # the unknown digest stops at the registry
