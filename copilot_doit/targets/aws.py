"""Real AWS: one environment's region/profile/account through boto3's default credential chain.

`AwsTarget` implements the `Target` face (see `targets/__init__.py`). The local target subclasses it
(`targets/local/`); this module knows nothing about the emulator. boto3 is imported inside methods:
the no-op path of the local target never loads it.
"""
from __future__ import annotations

import base64
import os
import threading

from ..audit import log_api
from ..errors import ServiceUnavailable, UserError
from ..workspace import EnvSettings

_AUDITED_PARAMS = {"ExecuteChangeSet": ("DisableRollback",), "CreateChangeSet": ("ChangeSetType", "Tags", "TemplateURL"),
                   "UpdateService": ("forceNewDeployment",)}


def merge_listed(listing: dict, name: str, entry: dict) -> None:
    """Add one stack of a DescribeStacks listing. Deleted stacks are left out; a name listed twice (an
    emulator may keep a second stack of one name) keeps the entry that is not `*_COMPLETE`, so the live
    check fails and the deploy cleans up, rather than judging by whichever came last."""
    if entry["status"] == "DELETE_COMPLETE":
        return
    if name in listing and not str(listing[name]["status"]).endswith("_COMPLETE"):
        return
    listing[name] = entry


class AwsTarget:
    """Real AWS for one environment's settings (region, profile, expected account)."""

    kind = "aws"
    waits_for_services = True  # ECS really runs tasks: wait for a forced deployment to settle
    in_progress_wait = 1800.0  # seconds to wait for a stack another run is deploying
    stuck_stack_hint = ""

    def __init__(self, settings: EnvSettings, cache_root):
        self.settings = settings
        self.cache_root = cache_root
        self._clients: dict = {}
        self._lock = threading.Lock()
        self._session = None
        self._account = None
        self._registry: dict = {}  # Copilot's SSM entries read (or written) this run

    # --- clients ------------------------------------------------------------------------------------
    def session(self):
        if self._session is None:
            import boto3
            self._session = boto3.Session(profile_name=self.settings.profile, region_name=self.settings.region)
        return self._session

    def client_kwargs(self) -> dict:
        return {}

    def client_config(self) -> dict:
        """botocore `Config` arguments of this target's clients: standard retries, bounded waits."""
        return {"retries": {"mode": "standard", "max_attempts": 5}, "connect_timeout": 5, "read_timeout": 60}

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                from botocore.config import Config
                c = self.session().client(service, config=Config(**self.client_config()), **self.client_kwargs())
                if os.environ.get("COPILOT_DOIT_API_LOG"):
                    c.meta.events.register("before-parameter-build.*.*", self._audit)
                self._clients[service] = c
            return self._clients[service]

    def _audit(self, params, model, **_):
        op = model.name
        keep = {k: params[k] for k in _AUDITED_PARAMS.get(op, ()) if k in params}
        log_api(model.service_model.service_name, op, self.kind, keep)

    def account_id(self) -> str:
        if self._account is None:
            try:
                self._account = self.client("sts").get_caller_identity()["Account"]
            except Exception as exc:  # no credentials, no network: one clear message
                raise ServiceUnavailable(f"cannot reach AWS for environment '{self.settings.name}': {exc}",
                                         allowed="configure credentials (AWS_PROFILE, ~/.aws) or set target: local") from None
            if self.settings.account and self.settings.account != self._account:
                raise UserError(f"credentials are for account {self._account}, but environment "
                                f"'{self.settings.name}' expects {self.settings.account}", field="account")
        return self._account

    # --- registry -----------------------------------------------------------------------------------
    def ensure_repository(self, name: str, tags: dict) -> str:
        ecr = self.client("ecr")
        try:
            repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        except ecr.exceptions.RepositoryNotFoundException:
            try:
                repo = ecr.create_repository(repositoryName=name,
                                             tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                                             imageScanningConfiguration={"scanOnPush": True})["repository"]
            except ecr.exceptions.RepositoryAlreadyExistsException:  # another run created it just now
                repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        return repo["repositoryUri"]

    def repository_uri(self, name: str) -> str:
        """The URI without calling AWS: `<account>.dkr.ecr.<region>.amazonaws.com/<name>`."""
        return f"{self.account_id()}.dkr.ecr.{self.settings.region}.amazonaws.com/{name}"

    def push_reference(self, repo_uri: str) -> str:
        """Where docker pushes for this repository (the local target maps the ECR host)."""
        return repo_uri

    def registry_auth(self, repo_uri: str) -> dict | None:
        token = self.client("ecr").get_authorization_token()["authorizationData"][0]
        user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
        return {"username": user, "password": password}

    def image_digest_in_registry(self, repo_name: str, digest: str | None = None, tag: str | None = None) -> str | None:
        """The digest ECR holds for this digest or tag, or None."""
        ecr = self.client("ecr")
        image_id = {"imageDigest": digest} if digest else {"imageTag": tag}
        try:
            details = ecr.describe_images(repositoryName=repo_name, imageIds=[image_id])["imageDetails"]
        except (ecr.exceptions.ImageNotFoundException, ecr.exceptions.RepositoryNotFoundException):
            return None
        return details[0]["imageDigest"] if details else None

    def tag_digest(self, repo_name: str, tag: str) -> str | None:
        """Digest a tag points at in the registry, or None (one ECR DescribeImages)."""
        return self.image_digest_in_registry(repo_name, tag=tag)

    def retag(self, repo_name: str, digest: str, tags: list[str]) -> None:
        ecr = self.client("ecr")
        image = ecr.batch_get_image(repositoryName=repo_name, imageIds=[{"imageDigest": digest}])["images"][0]
        for tag in tags:
            try:
                ecr.put_image(repositoryName=repo_name, imageManifest=image["imageManifest"], imageTag=tag,
                              imageManifestMediaType=image.get("imageManifestMediaType"), imageDigest=digest)
            except ecr.exceptions.ImageAlreadyExistsException:
                pass

    def after_push(self, repo_name: str, digest: str, tags: list[str]) -> None:
        """Real ECR learns about the image from the push itself."""

    # --- stacks -------------------------------------------------------------------------------------
    def describe_stacks(self) -> dict[str, dict]:
        """All stacks of the region in one paginated call: name -> {status, tags, outputs, updated}."""
        self.account_id()  # the first read of every run: wrong credentials stop it before any change
        cfn = self.client("cloudformation")
        out = {}
        for page in cfn.get_paginator("describe_stacks").paginate():
            for s in page["Stacks"]:
                merge_listed(out, s["StackName"], {
                    "status": s["StackStatus"],
                    "tags": {t["Key"]: t["Value"] for t in s.get("Tags") or []},
                    "outputs": {o["OutputKey"]: o.get("OutputValue") for o in s.get("Outputs") or []},
                    "parameters": {p["ParameterKey"]: p.get("ParameterValue") for p in s.get("Parameters") or []},
                    "updated": str(s.get("LastUpdatedTime") or s.get("CreationTime") or ""),
                })
        return out

    def deployable(self, body: str, missing_imports: set[str] = frozenset()) -> tuple[str, list[str]]:
        """(the template body this target runs, notes on what was adapted). Real AWS runs the linted
        template exactly as rendered."""
        return body, []

    # --- the app's artifact bucket (addons templates, env files), content-addressed keys -----------------
    def artifact_bucket(self, app: str) -> str:
        return f"copilot-doit-{app}-{self.account_id()}-{self.settings.region}"[:63].rstrip("-")

    def ensure_bucket(self, bucket: str, tags: dict) -> None:
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=self.account_id())
            return
        except s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
        kwargs = {} if self.settings.region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": self.settings.region}}
        s3.create_bucket(Bucket=bucket, **kwargs)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})

    def upload(self, bucket: str, key: str, body: bytes) -> None:
        """Content-addressed keys: an object already there holds these bytes, so it is not written again."""
        s3 = self.client("s3")
        try:
            s3.head_object(Bucket=bucket, Key=key, ExpectedBucketOwner=self.account_id())
            return
        except s3.exceptions.ClientError:
            pass
        s3.put_object(Bucket=bucket, Key=key, Body=body, ExpectedBucketOwner=self.account_id())

    def imported_alb(self, ref: str, start: bool = True) -> dict:
        """What a workload's `http.alb` (an ARN or a name) renders from: its listeners, DNS name, hosted
        zone, full name and security groups (ELBv2 DescribeLoadBalancers + DescribeListeners)."""
        elbv2 = self.client("elbv2")
        try:
            by = {"LoadBalancerArns": [ref]} if ref.startswith("arn:") else {"Names": [ref]}
            lbs = elbv2.describe_load_balancers(**by)["LoadBalancers"]
        except elbv2.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("LoadBalancerNotFound", "ValidationError"):
                raise
            lbs = []
        if not lbs:
            raise UserError(f"no load balancer '{ref}' in {self.settings.region} for environment "
                            f"'{self.settings.name}'", field="http.alb",
                            allowed="the ARN or name of an existing Application Load Balancer")
        lb = lbs[0]
        if lb.get("Type") != "application":
            raise UserError(f"'{ref}' is a {lb.get('Type')} load balancer", field="http.alb",
                            allowed="an Application Load Balancer")
        listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
        by_protocol = {}
        for li in sorted(listeners, key=lambda li: li.get("Port", 0)):
            by_protocol.setdefault(li.get("Protocol"), li["ListenerArn"])
        return {"listener_arn": by_protocol.get("HTTP", ""), "https_listener_arn": by_protocol.get("HTTPS"),
                "dns_name": lb.get("DNSName", ""), "hosted_zone_id": lb.get("CanonicalHostedZoneId", ""),
                "full_name": lb["LoadBalancerArn"].split(":loadbalancer/", 1)[-1],
                "security_groups": sorted(lb.get("SecurityGroups") or [])}

    def hosted_zone_id(self, name: str, start: bool = True) -> str:
        """The id of the public hosted zone named exactly `name` (Route 53 ListHostedZonesByName): the
        application domain's zones `<app>.<domain>` and `<domain>`, which Copilot's `app init --domain`
        creates or finds, and which the env stack delegates to and validates certificates in."""
        r53 = self.client("route53")
        want = name.rstrip(".") + "."
        try:
            zones = r53.list_hosted_zones_by_name(DNSName=want, MaxItems="10").get("HostedZones") or []
        except Exception as exc:  # no credentials, no network, no permission: one clear message
            raise ServiceUnavailable(f"cannot look up the hosted zone '{name}' of the application domain for "
                                     f"environment '{self.settings.name}': {exc}",
                                     allowed="credentials that may call route53:ListHostedZonesByName (AWS_PROFILE, "
                                             "~/.aws), or set target: local") from None
        for z in zones:
            if z.get("Name") == want and not (z.get("Config") or {}).get("PrivateZone"):
                return z["Id"].rsplit("/", 1)[-1]
        raise UserError(f"no public Route 53 hosted zone '{name}' in the account of environment "
                        f"'{self.settings.name}' for the application domain", field="application.domain",
                        file="copilot-doit.yml",
                        allowed="a domain whose zones exist in this account: Copilot creates "
                                "<app>.<domain> with `copilot app init --domain <domain>`, next to the "
                                "domain's own zone")

    # --- Copilot's application registry (SSM, copilot_doit/registry.py) ----------------------------------
    def _registry_memo(self, key, fn):
        """One answer per key for this target's life (one run): the registry is read once, not per stage."""
        with self._lock:
            if key in self._registry:
                return self._registry[key]
        value = fn()
        with self._lock:
            return self._registry.setdefault(key, value)

    def _ssm_read(self, what: str, fn):
        try:
            return fn(self.client("ssm"))
        except UserError:  # registry.RegistryConflict, a malformed entry: already one clear message
            raise
        except Exception as exc:  # no credentials, no network, no permission: one clear message
            raise ServiceUnavailable(f"cannot use {what} in Copilot's SSM store for environment "
                                     f"'{self.settings.name}' ({self.settings.region}): {exc}",
                                     allowed="credentials that may call ssm:GetParameter (and, to register a "
                                             "workload, ssm:PutParameter and ssm:AddTagsToResource) on "
                                             "/copilot/applications/*, or set target: local") from None

    def copilot_app(self, app: str):
        """Copilot's `/copilot/applications/<app>` (registry.App), or None when Copilot has no such
        application in this environment's account and region (or the credentials may not read it: said
        once, standalone as before). One GetParameter per run."""
        from .. import registry
        return self._registry_memo(("app", app), lambda: self._ssm_read(
            f"application {app}", lambda ssm: registry.read_app_or_unreadable(ssm, app)))

    def copilot_env(self, app: str, env: str):
        """Copilot's `/copilot/applications/<app>/environments/<env>` (registry.Env: region, account id,
        execution and manager role ARNs, the legacy prod flag), or None. One GetParameter per run."""
        from .. import registry
        return self._registry_memo(("env", app, env), lambda: self._ssm_read(
            f"environment {env} of application {app}", lambda ssm: registry.read_env(ssm, app, env)))

    def register_workload(self, app: str, name: str, wtype: str) -> str:
        """After a deploy: register the workload in Copilot's application as `svc init` / `job init` do
        (registry.register_workload: read first, no write when equal, a different type is an error).
        Without the application in SSM, say once per run that the deploy is standalone. Returns
        "created", "unchanged" or "standalone"."""
        from .. import registry
        app_entry = self.copilot_app(app)
        if app_entry is None:
            registry.say_standalone_once(app)
            return "standalone"
        return self._registry_memo(("workload", app, name, wtype), lambda: self._ssm_read(
            f"workload {name} of application {app}",
            lambda ssm: registry.register_workload(ssm, app, name, wtype, app_entry=app_entry)))

    def object_exists(self, bucket: str, key: str) -> bool:
        """One HEAD: does the artifact a record claims to have uploaded still exist?"""
        s3 = self.client("s3")
        try:
            s3.head_object(Bucket=bucket, Key=key, ExpectedBucketOwner=self.account_id())
            return True
        except s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                return False
            raise

    def object_url(self, bucket: str, key: str) -> str:
        """HTTPS URL CloudFormation reads a nested template from."""
        return f"https://{bucket}.s3.{self.settings.region}.amazonaws.com/{key}"

    def object_url_if_known(self, bucket: str, key: str) -> str | None:
        return self.object_url(bucket, key)

    def close(self) -> None:
        pass

