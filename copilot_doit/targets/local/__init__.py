"""The local target: everything that knows about the emulator lives in this package.

`LocalTarget` is `AwsTarget` pointed at the moto server, with the ECR registry host mapped to the
local docker-registry, pushed digests registered in the emulated ECR, light HTTP live checks, and the
compat step applied to templates after they were linted in full.
"""
from __future__ import annotations

import threading

from ...audit import log_api
from ...errors import UserError
from ..aws import AwsTarget
from . import lite, services

ACCOUNT = "123456789012"  # moto's default account
_UNREAD = object()


class LocalTarget(AwsTarget):
    kind = "local"
    waits_for_services = False  # moto's ECS never runs tasks: a forced deployment cannot settle
    # moto finishes every stack operation at once: one still in progress after a few seconds is stuck
    # (moto leaves CREATE_IN_PROGRESS forever after some API errors), so do not wait half an hour.
    in_progress_wait = 10.0
    stuck_stack_hint = " (the local target's emulator leaves a stack stuck after some errors: `copilot-doit local reset`)"
    # The peers (moto, docker-registry, dockerd) answer in milliseconds and share this machine's cores: past
    # 8 checks at once a 500-workload no-op was no faster (2 threads 4.3 s, 8: 3.9 s, 16: 3.8-4.0 s).
    concurrent_checks = 8

    def __init__(self, settings, cache_root):
        super().__init__(settings, cache_root)
        self._endpoints = None
        self._ecr_lock = threading.Lock()
        self._ecr_snapshot = _UNREAD
        self._registry_asked = threading.Event()   # the registry answered this run once
        self._registry_first = threading.Lock()
        self._registry_first_taken = False         # one check asks first, the others wait for its answer:
        self._registry_first_came = threading.Event()

    def warm_up(self, uploads: bool = True, walk: bool = False) -> None:
        """Nothing to warm: the live checks of the local target are plain HTTP (lite.py), no boto3."""
        return None

    @property
    def endpoints(self) -> services.Endpoints:
        if self._endpoints is None:
            self._endpoints = services.ensure_running(self.cache_root)
        return self._endpoints

    def session(self):
        if self._session is None:
            import boto3
            self._session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                          region_name=self.settings.region)
        return self._session

    def client_kwargs(self) -> dict:
        return {"endpoint_url": self.endpoints.moto_url}

    def client_limits(self) -> dict:
        """The emulator answers in milliseconds: a stuck one fails the run after lite.READ_TIMEOUT per
        attempt (COPILOT_DOIT_LOCAL_TIMEOUT), not after AWS's minutes."""
        return lite.boto_config()

    def account_id(self) -> str:
        return ACCOUNT

    def copilot_app(self, app: str):
        return None  # no Copilot registry here: deployed standalone, nothing read or written, no message

    def copilot_env(self, app: str, env: str):
        return None

    def use_copilot_region(self, app: str) -> None:
        self.app = app  # the region is copilot-doit.yml's: there is no registry here

    def register_workload(self, app: str, name: str, wtype: str) -> str:
        return "standalone"

    def push_reference(self, repo_uri: str) -> str:
        # dockerd trusts 127.0.0.0/8 without TLS; the ECR host does not resolve here.
        return f"{self.endpoints.registry}/{repo_uri.split('/', 1)[1]}"

    def registry_auth(self, repo_uri: str):
        return None  # docker-registry runs without auth; moto's ECR token is already expired anyway

    def image_digest_in_registry(self, repo_name: str, digest: str | None = None, tag: str | None = None):
        """Both halves must hold: the blobs in the registry, the image record in the emulated ECR."""
        in_registry = self._registry_digest(repo_name, digest or tag)
        if in_registry is None:
            return None
        known = self._ecr_images()
        if known is not None and in_registry in known.get(repo_name, ()):
            return in_registry
        # Not among the images read at the start of the run (or no listing): asked now, so an image another
        # process pushed since — a `-P process` worker, a concurrent run — is seen; "absent" is never stale.
        return lite.ecr_image_digest(self.endpoints.moto_url, self.settings.region, repo_name, digest=in_registry)

    def _registry_digest(self, repo_name: str, reference: str) -> str | None:
        """The registry's digest for a tag or digest. The run's first lookup asks the registry (a paused or
        stuck one fails the run there, in its words); later ones read its storage (lite.stored_digest) and
        ask it only what the files do not show, so an absent image is always the registry's answer. A HEAD
        costs the registry ~0.8 ms of CPU: 50 of them beside a 50-workload deploy's one build, 500 in a
        500-workload no-op."""
        e = self.endpoints
        if not self._registry_asked.is_set():
            # One check asks first; the concurrent ones wait for its answer (one HEAD per run, not one per
            # thread that got there before the answer came). When it failed (a stuck registry: the error is
            # its check's, which may be a background one), each asks again, at once, not one after another.
            with self._registry_first:
                mine, self._registry_first_taken = not self._registry_first_taken, True
            if not mine:
                self._registry_first_came.wait()
            if mine or not self._registry_asked.is_set():
                try:
                    found = lite.registry_digest(e.registry, repo_name, reference)
                    self._registry_asked.set()
                    return found
                finally:
                    self._registry_first_came.set()
        if e.registry_root:
            found = lite.stored_digest(e.registry_root, repo_name, reference)
            if found is not None:
                # audited like the HEAD it stands for: each lookup leaves one line, whichever way it went
                log_api("registry", "LookupStorage", "local")
                return found
        return lite.registry_digest(e.registry, repo_name, reference)

    def _ecr_images(self) -> dict[str, set[str]] | None:
        """The emulated ECR's images, read once per run by the first check that needs them (the concurrent
        checks wait for that one answer: one request instead of one DescribeImages per workload), and read
        again after this run pushed or retagged something (after_push drops it). Only its "present" answers
        are used: an image missing from it is asked for by itself (image_digest_in_registry)."""
        with self._ecr_lock:
            if self._ecr_snapshot is _UNREAD:
                self._ecr_snapshot = lite.ecr_images(self.endpoints.moto_url, self.settings.region, ACCOUNT)
            return self._ecr_snapshot

    def tag_digest(self, repo_name: str, tag: str):
        """The registry alone: its blobs survive a moto restart, the emulated ECR records do not."""
        return self._registry_digest(repo_name, tag)

    def retag(self, repo_name: str, digest: str, tags: list[str]) -> None:
        manifest, media_type = lite.registry_manifest(self.endpoints.registry, repo_name, digest)
        for tag in tags:
            lite.registry_put_manifest(self.endpoints.registry, repo_name, tag, manifest, media_type)
        self._record_in_ecr(repo_name, digest, tags, manifest, media_type)

    def after_push(self, repo_name, digest, tags) -> None:
        """Register the pushed image in moto's ECR under the registry's digest (else moto invents one)."""
        manifest, media_type = lite.registry_manifest(self.endpoints.registry, repo_name, digest)
        self._record_in_ecr(repo_name, digest, tags, manifest, media_type)

    def _record_in_ecr(self, repo_name, digest, tags, manifest: bytes, media_type: str) -> None:
        """The emulated ECR's records of `tags` on `digest`, from the registry's manifest of it (read once by
        the caller: a retag has it already)."""
        ecr = self.client("ecr")
        try:
            for tag in tags:
                try:
                    ecr.put_image(repositoryName=repo_name, imageManifest=manifest.decode(), imageTag=tag,
                                  imageManifestMediaType=media_type, imageDigest=digest)
                except ecr.exceptions.ImageAlreadyExistsException:
                    pass  # same digest, same tag: already recorded
        finally:  # after the records changed: a snapshot read meanwhile by a concurrent check is dropped too
            with self._ecr_lock:
                self._ecr_snapshot = _UNREAD

    def describe_stacks(self) -> dict:
        return lite.describe_stacks(self.endpoints.moto_url, self.settings.region, account=ACCOUNT)

    def describe_stack(self, name: str) -> dict | None:
        return lite.describe_stack(self.endpoints.moto_url, self.settings.region, name)

    def deployable(self, body: str, missing_imports=frozenset()):
        """The compat step: the linted template minus what moto does not emulate (see compat.py)."""
        import yaml
        from ...templates import dump
        from . import compat  # here: only a deploy adapts a template
        adapted, notes = compat.adapt(yaml.safe_load(body), missing_imports, hosted_zones=self.hosted_zones,
                                      certificates=self.certificates)
        notes += name_servers_stand_in(adapted)
        return dump(adapted), notes

    def hosted_zones(self) -> set[str]:
        """The hosted zones the emulator holds (ids and names), for the compat step's Route 53 records."""
        r53 = self.client("route53")
        return {z for page in r53.get_paginator("list_hosted_zones").paginate() for h in page["HostedZones"]
                for z in (h["Id"].rsplit("/", 1)[-1], h["Name"])}

    def certificates(self) -> set[str]:
        """The certificate ARNs the emulator's ACM holds, for the compat step's HTTPS listeners."""
        acm = self.client("acm")
        return {c["CertificateArn"] for page in acm.get_paginator("list_certificates").paginate()
                for c in page["CertificateSummaryList"]}

    def imported_alb(self, ref: str, start: bool = True) -> dict:
        if not start and self._endpoints is None and services.running_endpoints(self.cache_root) is None:
            raise UserError(f"http.alb '{ref}' must be looked up in the local target, which is not running",
                            field="http.alb", allowed="deploy once, or package with --upload-assets")
        return super().imported_alb(ref, start)

    def hosted_zone_id(self, name: str, start: bool = True) -> str:
        """The emulator's account owns no domain: the zones of the application domain (`<app>.<domain>`,
        `<domain>`) are created in the moto server when absent — its stand-in for a domain you own — so
        the env stack can delegate to them and write records in them."""
        if not start and self._endpoints is None and services.running_endpoints(self.cache_root) is None:
            raise UserError(f"the hosted zone '{name}' of the application domain must be looked up in the local "
                            "target, which is not running", field="application.domain",
                            allowed="deploy once (the emulator then runs until `copilot-doit local stop`), or "
                                    "package a service with --upload-assets")
        r53 = self.client("route53")
        want = name.rstrip(".") + "."
        for z in r53.list_hosted_zones_by_name(DNSName=want).get("HostedZones") or []:
            if z.get("Name") == want and not (z.get("Config") or {}).get("PrivateZone"):
                return z["Id"].rsplit("/", 1)[-1]
        zone = r53.create_hosted_zone(Name=want, CallerReference=f"copilot-doit-{want}",
                                      HostedZoneConfig={"Comment": "copilot-doit: stand-in for the application "
                                                                   "domain's zone", "PrivateZone": False})
        return zone["HostedZone"]["Id"].rsplit("/", 1)[-1]

    def object_exists(self, bucket: str, key: str) -> bool:
        return lite.s3_object_exists(self.endpoints.moto_url, self.settings.region, bucket, key)

    def object_url_if_known(self, bucket: str, key: str) -> str | None:
        """The URL while the emulator runs (its port is part of it); None rather than starting it."""
        if self._endpoints is None:
            self._endpoints = services.running_endpoints(self.cache_root)
            if self._endpoints is None:
                return None
        return self.object_url(bucket, key)

    def object_url(self, bucket: str, key: str) -> str:
        # moto resolves nested-stack TemplateURLs path-style only when the host says "localhost"
        # (research/feasibility.md §1.b.5); the port changes when moto restarts, and so does this URL.
        return f"{self.endpoints.moto_url.replace('127.0.0.1', 'localhost')}/{bucket}/{key}"


def name_servers_stand_in(template: dict) -> list[str]:
    """moto 5.2.1 cannot resolve `Fn::GetAtt [<hosted zone>, NameServers]` (its FakeZone has no CloudFormation
    attributes: the whole stack fails); the application domain's NS delegation record needs it. Every zone
    moto creates without a delegation set gets the same four name servers, so the stand-in is that list."""
    zones = {n for n, r in (template.get("Resources") or {}).items() if r.get("Type") == "AWS::Route53::HostedZone"}
    notes: list[str] = []

    def walk(value, path):
        if isinstance(value, dict):
            att = value.get("Fn::GetAtt")
            if len(value) == 1 and isinstance(att, list) and att[0] in zones and att[1:] == ["NameServers"]:
                notes.append(f"stood in for {path} (Fn::GetAtt {att[0]}.NameServers): the emulator's name servers")
                from moto.route53.models import DelegationSet  # only here: moto is heavy to import
                return list(DelegationSet("", None, None).name_servers)
            return {k: walk(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    if zones:
        for name, r in (template.get("Resources") or {}).items():
            if "Properties" in r:
                r["Properties"] = walk(r["Properties"], f"{name}.Properties")
    return notes


__all__ = ["LocalTarget"]
