"""Read-only calls for the live checks of the local target, over plain HTTP (no boto3, no docker SDK).

A no-op run asks: which stacks exist with which tags (one DescribeStacks), is this digest in ECR (one
DescribeImages) and in the registry (one HEAD). Importing boto3 for that would cost ~0.3 s per run;
moto does not check signatures, so a fixed Authorization header naming the service is enough.
"""
from __future__ import annotations

import json
import os
import random
import socket
import time
import urllib.parse
import xml.etree.ElementTree as ET

from ... import plainhttp
from ...audit import log_api
from ...errors import ServiceUnavailable
from ..aws import merge_listed

MANIFEST_ACCEPT = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
])
_CFN_NS = "{http://cloudformation.amazonaws.com/doc/2010-05-15/}"


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


# The emulator and the registry run on this machine and answer in milliseconds: one that has not answered
# after READ_TIMEOUT is stuck (paused, wedged), and waiting longer or asking again does not help.
# COPILOT_DOIT_LOCAL_TIMEOUT (seconds) changes it, e.g. for the fault tests.
READ_TIMEOUT = _seconds("COPILOT_DOIT_LOCAL_TIMEOUT", 30.0)
CONNECT_TIMEOUT = min(5.0, READ_TIMEOUT)
# botocore's "standard" retry mode, by hand: up to 3 attempts on throttling, 5xx and dropped
# connections, with exponential backoff and full jitter (base 0.1 s, capped at 20 s). A read timeout is
# not retried (see above): the run stops after one READ_TIMEOUT.
MAX_ATTEMPTS = 3


def boto_config() -> dict:
    """botocore `Config` arguments for the local target's boto3 clients: the same bound as the plain-HTTP
    calls (standard retries, but never minutes on a stuck emulator: 3 attempts × READ_TIMEOUT at most)."""
    return {"retries": {"mode": "standard", "max_attempts": MAX_ATTEMPTS}, "connect_timeout": CONNECT_TIMEOUT,
            "read_timeout": READ_TIMEOUT}


RESTART_HINT = ("`copilot-doit local status` names its pid; `copilot-doit local stop`, then deploy again, "
                "restarts the local target")
RETRY_STATUSES = (429, 500, 502, 503, 504)
THROTTLING = (b"Throttling", b"ThrottlingException", b"RequestLimitExceeded", b"TooManyRequestsException",
              b"SlowDown")


class LiteError(ServiceUnavailable):
    """The emulator or the registry did not answer as expected: one line for the user, no traceback."""


def _auth(service: str, region: str) -> str:
    return (f"AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, "
            "SignedHeaders=host, Signature=0")


def _request_once(base: str, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, dict, bytes]:
    u = urllib.parse.urlsplit(base)
    r = plainhttp.request(method, path, host=u.hostname, port=u.port, body=body, headers=headers,
                          connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT)
    return r.status, r.headers, r.body


def _retryable(status: int, body: bytes) -> bool:
    return status in RETRY_STATUSES or (status == 400 and any(t in body for t in THROTTLING))


MOTO = "the local target's moto server"
REGISTRY = "the local target's registry"


def _request(base: str, method: str, path: str, body: bytes | None, headers: dict,
             what: str = MOTO) -> tuple[int, dict, bytes]:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            status, hdrs, data = _request_once(base, method, path, body, headers)
        except socket.timeout:
            raise LiteError(f"{what} ({base}) did not answer within {READ_TIMEOUT:g}s: it is paused or stuck",
                            allowed=RESTART_HINT) from None
        except OSError as exc:   # plainhttp.ProtocolError included
            if attempt == MAX_ATTEMPTS:
                why = str(exc) or type(exc).__name__
                raise LiteError(f"{what} ({base}) does not answer ({why}, {MAX_ATTEMPTS} attempts)",
                                allowed=RESTART_HINT) from None
        else:
            if not _retryable(status, data) or attempt == MAX_ATTEMPTS:
                return status, hdrs, data
        time.sleep(random.uniform(0, min(20.0, 0.1 * 2 ** attempt)))
    raise AssertionError("unreachable")


def describe_stack(moto_url: str, region: str, name: str) -> dict | None:
    """One stack by name (DescribeStacks with StackName), as describe_stacks lists it, or None."""
    return describe_stacks(moto_url, region, name).get(name)


def describe_stacks(moto_url: str, region: str, name: str | None = None,
                    account: str | None = None) -> dict[str, dict]:
    """{stack name: its status, tags, outputs, parameters and last update} of the region (or of the one stack
    `name`). The region's, given `account`: in one answer of the emulator's listing (moto patch 19), else —
    an emulator without it, started by an older copilot-doit — DescribeStacks page by page."""
    if name is None and account is not None:
        listed = _stacks_in_one(moto_url, region, account)
        if listed is not None:
            return listed
    out: dict[str, dict] = {}
    token = None
    while True:
        form = {"Action": "DescribeStacks", "Version": "2010-05-15"}
        if name:
            form["StackName"] = name
        if token:
            form["NextToken"] = token
        log_api("cloudformation", "DescribeStacks", "local", {"StackName": name} if name else None)
        status, _, body = _request(moto_url, "POST", "/", urllib.parse.urlencode(form).encode(), {
            "Content-Type": "application/x-www-form-urlencoded", "Authorization": _auth("cloudformation", region)})
        if name and status == 400 and b"does not exist" in body:
            return out
        if status != 200:
            raise LiteError(f"DescribeStacks failed with HTTP {status}: {body[:200]!r}")
        root = ET.fromstring(body)
        for m in root.iter(f"{_CFN_NS}member"):
            listed = m.findtext(f"{_CFN_NS}StackName")
            if listed is None:
                continue
            merge_listed(out, listed, {
                "status": m.findtext(f"{_CFN_NS}StackStatus"),
                "tags": _pairs(m.find(f"{_CFN_NS}Tags"), "Key", "Value"),
                "outputs": _pairs(m.find(f"{_CFN_NS}Outputs"), "OutputKey", "OutputValue"),
                "parameters": _pairs(m.find(f"{_CFN_NS}Parameters"), "ParameterKey", "ParameterValue"),
                "updated": m.findtext(f"{_CFN_NS}LastUpdatedTime") or m.findtext(f"{_CFN_NS}CreationTime") or "",
            })
        token = root.findtext(f".//{_CFN_NS}NextToken")
        if not token:
            return out


def _stacks_in_one(moto_url: str, region: str, account: str) -> dict[str, dict] | None:
    log_api("cloudformation", "ListAllStacks", "local")
    query = urllib.parse.urlencode({"account": account, "region": region})
    status, _, body = _request(moto_url, "GET", f"/copilot-doit/stacks?{query}", None, {})
    if status != 200:
        return None
    out: dict[str, dict] = {}
    try:
        for row in json.loads(body)["stacks"]:
            if row["name"] is None:
                continue
            merge_listed(out, row["name"], {
                "status": row["status"], "tags": dict(row["tags"]), "outputs": dict(row["outputs"]),
                "parameters": dict(row["parameters"]), "updated": row["updated"] or ""})
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return out


def _pairs(node, k, v) -> dict:
    if node is None:
        return {}
    return {m.findtext(f"{_CFN_NS}{k}"): m.findtext(f"{_CFN_NS}{v}") for m in node.findall(f"{_CFN_NS}member")}


def ecr_image_digest(moto_url: str, region: str, repo: str, digest: str | None = None,
                     tag: str | None = None) -> str | None:
    image_id = {"imageDigest": digest} if digest else {"imageTag": tag}
    log_api("ecr", "DescribeImages", "local")
    status, _, body = _request(moto_url, "POST", "/", json.dumps({"repositoryName": repo, "imageIds": [image_id]}).encode(), {
        "Content-Type": "application/x-amz-json-1.1", "Authorization": _auth("ecr", region),
        "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.DescribeImages"})
    if status != 200:
        return None  # ImageNotFound / RepositoryNotFound come back as HTTP 400
    details = json.loads(body).get("imageDetails") or []
    return details[0]["imageDigest"] if details else None


def ecr_images(moto_url: str, region: str, account: str) -> dict[str, set[str]] | None:
    """Every image digest of the emulated ECR, per repository, in one request (moto patch 16); None from an
    emulator without that patch (started by an older copilot-doit): the caller then asks per image."""
    log_api("ecr", "ListAllImages", "local")
    query = urllib.parse.urlencode({"account": account, "region": region})
    status, _, body = _request(moto_url, "GET", f"/copilot-doit/ecr-images?{query}", None, {})
    if status != 200:
        return None
    try:
        repos = json.loads(body)["repositories"]
        return {name: set(digests) for name, digests in repos.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def registry_digest(registry: str, repo: str, reference: str) -> str | None:
    """Digest the registry serves for a tag or digest (HEAD with the v2/OCI Accept list), or None."""
    log_api("registry", "HeadManifest", "local")
    status, headers, _ = _request(f"http://{registry}", "HEAD", f"/v2/{repo}/manifests/{reference}", None,
                                  {"Accept": MANIFEST_ACCEPT}, what=REGISTRY)
    if status != 200:
        return None
    return headers.get("docker-content-digest")


_HEX = frozenset("0123456789abcdef")


def stored_digest(root: str, repo: str, reference: str) -> str | None:
    """The digest the local registry holds under a tag or digest, read from its storage (the filesystem
    driver's layout: the repository's tag and revision links, the manifest blob's data), or None when the
    files do not show it — then only the registry itself can say (registry_digest). What a HEAD of the
    manifest checks: the repository links that digest and its blob is there."""
    if not repo or ".." in repo.split("/") or repo.startswith("/"):
        return None
    v2 = os.path.join(root, "docker", "registry", "v2")
    manifests = os.path.join(v2, "repositories", repo, "_manifests")
    try:
        if reference.startswith("sha256:"):
            digest = reference
        else:
            if "/" in reference or reference in (".", ".."):
                return None
            with open(os.path.join(manifests, "tags", reference, "current", "link")) as f:
                digest = f.read().strip()
        hexd = digest[len("sha256:"):]
        if not digest.startswith("sha256:") or len(hexd) != 64 or not _HEX.issuperset(hexd):
            return None
        with open(os.path.join(manifests, "revisions", "sha256", hexd, "link")) as f:
            if f.read().strip() != digest:
                return None
        if not os.path.isfile(os.path.join(v2, "blobs", "sha256", hexd[:2], hexd, "data")):
            return None
    except (OSError, UnicodeDecodeError):
        return None
    return digest


def registry_manifest(registry: str, repo: str, reference: str) -> tuple[bytes, str]:
    log_api("registry", "GetManifest", "local")
    status, headers, body = _request(f"http://{registry}", "GET", f"/v2/{repo}/manifests/{reference}", None,
                                     {"Accept": MANIFEST_ACCEPT}, what=REGISTRY)
    if status != 200:
        raise LiteError(f"registry has no manifest {repo}:{reference} (HTTP {status})")
    return body, headers.get("content-type", "application/vnd.docker.distribution.manifest.v2+json")


def registry_put_manifest(registry: str, repo: str, tag: str, manifest: bytes, media_type: str) -> None:
    log_api("registry", "PutManifest", "local")
    status, _, body = _request(f"http://{registry}", "PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                               {"Content-Type": media_type}, what=REGISTRY)
    if status not in (200, 201):
        raise LiteError(f"registry refused tag {repo}:{tag} (HTTP {status}): {body[:200]!r}")


def s3_object_exists(moto_url: str, region: str, bucket: str, key: str) -> bool:
    """HEAD of an object in the emulated S3 (path-style)."""
    log_api("s3", "HeadObject", "local")
    status, _, _ = _request(moto_url, "HEAD", f"/{bucket}/{urllib.parse.quote(key)}", None,
                            {"Authorization": _auth("s3", region)})
    return status == 200
