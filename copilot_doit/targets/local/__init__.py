"""The local target: everything that knows about the emulator lives in this package.

`LocalTarget` is `AwsTarget` pointed at the moto server, with the ECR registry host mapped to the
local docker-registry, pushed digests registered in the emulated ECR, light HTTP live checks, and the
compat step applied to templates after they were linted in full.
"""
from __future__ import annotations

from ...errors import UserError
from ..aws import AwsTarget
from . import compat, lite, services

ACCOUNT = "123456789012"  # moto's default account


class LocalTarget(AwsTarget):
    kind = "local"
    waits_for_services = False  # moto's ECS never runs tasks: a forced deployment cannot settle
    # moto finishes every stack operation at once: one still in progress after a few seconds is stuck
    # (moto leaves CREATE_IN_PROGRESS forever after some API errors), so do not wait half an hour.
    in_progress_wait = 10.0
    stuck_stack_hint = " (the local target's emulator leaves a stack stuck after some errors: `copilot-doit local reset`)"

    def __init__(self, settings, cache_root):
        super().__init__(settings, cache_root)
        self._endpoints = None

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

    def account_id(self) -> str:
        return ACCOUNT

    def push_reference(self, repo_uri: str) -> str:
        # dockerd trusts 127.0.0.0/8 without TLS; the ECR host does not resolve here.
        return f"{self.endpoints.registry}/{repo_uri.split('/', 1)[1]}"

    def registry_auth(self, repo_uri: str):
        return None  # docker-registry runs without auth; moto's ECR token is already expired anyway

    def image_digest_in_registry(self, repo_name: str, digest: str | None = None, tag: str | None = None):
        """Both halves must hold: the blobs in the registry, the image record in the emulated ECR."""
        e = self.endpoints
        in_registry = lite.registry_digest(e.registry, repo_name, digest or tag)
        if in_registry is None:
            return None
        return lite.ecr_image_digest(e.moto_url, self.settings.region, repo_name, digest=in_registry)

    def tag_digest(self, repo_name: str, tag: str):
        """The registry alone: its blobs survive a moto restart, the emulated ECR records do not."""
        return lite.registry_digest(self.endpoints.registry, repo_name, tag)

    def retag(self, repo_name: str, digest: str, tags: list[str]) -> None:
        manifest, media_type = lite.registry_manifest(self.endpoints.registry, repo_name, digest)
        for tag in tags:
            lite.registry_put_manifest(self.endpoints.registry, repo_name, tag, manifest, media_type)
        self.after_push(repo_name, digest, tags)

    def after_push(self, repo_name, digest, tags) -> None:
        """Register the pushed image in moto's ECR under the registry's digest (else moto invents one)."""
        manifest, media_type = lite.registry_manifest(self.endpoints.registry, repo_name, digest)
        ecr = self.client("ecr")
        for tag in tags:
            try:
                ecr.put_image(repositoryName=repo_name, imageManifest=manifest.decode(), imageTag=tag,
                              imageManifestMediaType=media_type, imageDigest=digest)
            except ecr.exceptions.ImageAlreadyExistsException:
                pass  # same digest, same tag: already recorded

    def describe_stacks(self) -> dict:
        return lite.describe_stacks(self.endpoints.moto_url, self.settings.region)

    def deployable(self, body: str, missing_imports=frozenset()):
        """The compat step: the linted template minus what moto does not emulate (see compat.py)."""
        import yaml
        from ...templates import dump
        adapted, notes = compat.adapt(yaml.safe_load(body), missing_imports)
        return dump(adapted), notes

    def imported_alb(self, ref: str, start: bool = True) -> dict:
        if not start and self._endpoints is None and services.running_endpoints(self.cache_root) is None:
            raise UserError(f"http.alb '{ref}' must be looked up in the local target, which is not running",
                            field="http.alb", allowed="deploy once, or package with --upload-assets")
        return super().imported_alb(ref, start)

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


__all__ = ["LocalTarget"]
