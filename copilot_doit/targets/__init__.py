"""Where an environment deploys: the `Target` face every stage uses, and `target_for(settings)`.

    aws.py      real AWS through boto3's default credential chain (`AwsTarget`)
    local/      the embedded moto server + docker-registry (`LocalTarget`): the only code that knows
                the emulator (services, moto patches, compat step, plain-HTTP fast path); also
                `target: aws` with AWS_ENDPOINT_URL at that emulator (`local/endpoint.py`)

Stages talk to a target only through the methods below, so they never ask which kind they have.
The implementations are imported on first use: the face itself costs nothing on the no-op path.
"""
from __future__ import annotations

import os
from typing import Protocol, runtime_checkable


@runtime_checkable
class Target(Protocol):
    """One environment's AWS account and region as the stages see it."""

    kind: str                   # "aws" | "local": shown to the user, never branched on by stages
    waits_for_services: bool    # ECS really runs tasks there: wait for a forced deployment to settle
    in_progress_wait: float     # seconds to wait for a stack another run is deploying
    stuck_stack_hint: str       # what to add when a stack stays in progress
    concurrent_checks: int      # how many workloads' live checks run at once (stages.prefetch)
    settings: object            # workspace.EnvSettings

    # clients and identity
    def client(self, service: str): ...
    def account_id(self) -> str: ...

    # the image registry (ECR, or the local docker-registry mapped to ECR's host)
    def repository_uri(self, name: str) -> str: ...
    def ensure_repository(self, name: str, tags: dict) -> str: ...
    def push_reference(self, repo_uri: str) -> str: ...
    def registry_auth(self, repo_uri: str) -> dict | None: ...
    def image_digest_in_registry(self, repo_name: str, digest: str | None = None,
                                 tag: str | None = None) -> str | None: ...
    def tag_digest(self, repo_name: str, tag: str) -> str | None: ...
    def retag(self, repo_name: str, digest: str, tags: list[str]) -> None: ...
    def after_push(self, repo_name: str, digest: str, tags: list[str]) -> None: ...

    def imported_alb(self, ref: str, start: bool = True) -> dict: ...  # `http.alb` looked up
    def hosted_zone_id(self, name: str, start: bool = True) -> str: ...  # the public zone `name` (app domain)

    # Copilot's application registry in SSM (copilot_doit/registry.py); the local target has none
    def copilot_app(self, app: str): ...                        # registry.App | None, read once per run
    def copilot_env(self, app: str, env: str): ...              # registry.Env | None, read once per run
    def use_copilot_region(self, app: str) -> None: ...         # bind the app; region from SSM when unset
    def registry_region(self) -> str: ...                       # the app's home region (Copilot's SSM)
    def registry_client(self): ...                              # SSM there, with the app account's credentials
    def register_workload(self, app: str, name: str, wtype: str) -> str: ...  # "created" | "unchanged" | "standalone"

    # stacks
    def describe_stacks(self) -> dict[str, dict]: ...           # every stack of the region, by name
    def describe_stack(self, name: str) -> dict | None: ...     # one, as describe_stacks lists it
    def deployable(self, body: str, missing_imports: set[str] = frozenset()) -> tuple[str, list[str]]: ...

    # the app's artifact bucket (addons templates, env files)
    def artifact_bucket(self, app: str) -> str: ...
    def ensure_bucket(self, bucket: str, tags: dict) -> None: ...
    def upload(self, bucket: str, key: str, body: bytes) -> None: ...
    def object_exists(self, bucket: str, key: str) -> bool: ...
    def object_url(self, bucket: str, key: str) -> str: ...
    def object_url_if_known(self, bucket: str, key: str) -> str | None: ...  # starts nothing

    # the clients the live checks will use, made in a background thread the caller joins (None: nothing to do);
    # `uploads`: the checks will look for uploaded artifacts (S3) too; `walk`: the first read of the stacks
    # will be the region's walk (describe_stacks), which may start here
    def warm_up(self, uploads: bool = True, walk: bool = False): ...

    # a stage changed a stack of this environment: whatever was read ahead of that is stale
    def stacks_changed(self) -> None: ...

    def close(self) -> None: ...


def target_for(settings, cache_root, app: str | None = None) -> Target:
    """The target of one environment's settings (`target: local` or `aws`, the default). With `app`, bound
    to that application (`use_copilot_region`: for an AWS environment without `region:` in copilot-doit.yml,
    Copilot's SSM entry gives its region) before anything reads its region."""
    t = _new_target(settings, cache_root)
    if app:
        t.use_copilot_region(app)
    return t


def _new_target(settings, cache_root) -> Target:
    if settings.target == "local":
        from .local import LocalTarget
        return LocalTarget(settings, cache_root)
    if os.environ.get("AWS_ENDPOINT_URL"):  # the emulator copilot-doit runs, reached on the AWS code path?
        from .local.endpoint import target_for_endpoint
        emulated = target_for_endpoint(settings, cache_root)
        if emulated is not None:
            return emulated
    from .aws import AwsTarget
    return AwsTarget(settings, cache_root)


__all__ = ["Target", "target_for"]
