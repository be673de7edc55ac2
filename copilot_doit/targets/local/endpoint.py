"""`target: aws` pointed at the embedded emulator with `AWS_ENDPOINT_URL` (boto3's standard variable).

Every AWS call goes through the real-AWS target's boto3 code path (the default credential chain, STS for
the account, DescribeStacks pages, Copilot's SSM registry, ECR DescribeImages, Route 53 lookups), so a
workspace set up for AWS can be tried end to end against the emulator. What the emulator cannot do the
way AWS does stays adapted, as for the local target, and is reported the same way:
    - templates go through the compat step after cfn-lint (what moto does not model is dropped);
    - ECR's registry host does not resolve here: images are pushed to the local docker-registry and
      registered in the emulated ECR under the registry's digest.
It applies only when the endpoint is the emulator copilot-doit runs (its recorded moto server), or a proxy
in front of it declared with COPILOT_DOIT_EMULATOR_PROXY=1 (bench/delay_proxy.py adds real-AWS latency that
way); any other endpoint is taken for AWS as it is.
"""
from __future__ import annotations

import os
import urllib.parse

from ..aws import AwsTarget
from . import LocalTarget, services


def _host_port(url: str) -> tuple[str, int | None] | None:
    try:
        u = urllib.parse.urlsplit(url.strip())
        host = (u.hostname or "").lower()
        return ("127.0.0.1" if host in ("localhost", "127.0.0.1", "::1") else host), u.port
    except ValueError:
        return None


def emulator_endpoint(cache_root) -> services.Endpoints | None:
    """The emulator's endpoints when `AWS_ENDPOINT_URL` names the moto server copilot-doit runs (or a proxy
    declared in front of it), else None (no variable, another endpoint, or the emulator not running: nothing
    is started)."""
    url = os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None
    running = services.running_endpoints(cache_root)
    if running is None:
        return None
    if _host_port(url) == _host_port(running.moto_url) or os.environ.get("COPILOT_DOIT_EMULATOR_PROXY") == "1":
        return running
    return None


class EmulatedAwsTarget(LocalTarget):
    """The AWS target's code path against the emulator: only the registry host and the compat step are
    the local target's."""

    kind = "aws"
    concurrent_checks = AwsTarget.concurrent_checks  # the AWS path's checks, at whatever latency is in front

    def __init__(self, settings, cache_root, endpoints: services.Endpoints):
        super().__init__(settings, cache_root)
        self._endpoints = endpoints

    @property
    def endpoints(self) -> services.Endpoints:
        return self._endpoints

    # the AWS path: boto3's credential chain and AWS_ENDPOINT_URL, no plain-HTTP shortcut
    session = AwsTarget.session
    account_id = AwsTarget.account_id
    describe_stacks = AwsTarget.describe_stacks
    describe_stack = AwsTarget.describe_stack
    copilot_app = AwsTarget.copilot_app
    copilot_env = AwsTarget.copilot_env
    use_copilot_region = AwsTarget.use_copilot_region
    register_workload = AwsTarget.register_workload
    hosted_zone_id = AwsTarget.hosted_zone_id
    imported_alb = AwsTarget.imported_alb
    object_exists = AwsTarget.object_exists
    warm_up = AwsTarget.warm_up

    def client_kwargs(self) -> dict:
        return {}  # boto3 reads AWS_ENDPOINT_URL itself

    def image_digest_in_registry(self, repo_name: str, digest: str | None = None, tag: str | None = None):
        """The blobs in the local registry (where the push went), the image in ECR (DescribeImages)."""
        from . import lite
        in_registry = lite.registry_digest(self.endpoints.registry, repo_name, digest or tag)
        if in_registry is None:
            return None
        return AwsTarget.image_digest_in_registry(self, repo_name, digest=in_registry)


def target_for_endpoint(settings, cache_root):
    """An `EmulatedAwsTarget` when AWS_ENDPOINT_URL is the emulator copilot-doit runs, else None."""
    endpoints = emulator_endpoint(cache_root)
    return None if endpoints is None else EmulatedAwsTarget(settings, cache_root, endpoints)
