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
                   "UpdateService": ("forceNewDeployment",), "DescribeStacks": ("StackName",)}


def _listed(s: dict) -> dict:
    """One stack of a DescribeStacks answer as the stages read it."""
    return {"status": s["StackStatus"],
            "tags": {t["Key"]: t["Value"] for t in s.get("Tags") or []},
            "outputs": {o["OutputKey"]: o.get("OutputValue") for o in s.get("Outputs") or []},
            "parameters": {p["ParameterKey"]: p.get("ParameterValue") for p in s.get("Parameters") or []},
            "updated": str(s.get("LastUpdatedTime") or s.get("CreationTime") or "")}


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
    # How many workloads' live checks run at once. At AWS's latency (20-100 ms a round trip) each check
    # mostly waits, so more in flight means fewer round trips one after another: with 8, the 50 ECR
    # DescribeImages of a 50-workload no-op were 7 rounds (0.6 s behind bench/delay_proxy.py's 50 ms); with
    # 32, two. botocore's connection pool is sized to match (client_config), so no connection is opened and
    # thrown away per call. Throttling, if ECR answers it, is retried by botocore's standard mode.
    concurrent_checks = 32

    def __init__(self, settings: EnvSettings, cache_root):
        self.settings = settings
        self.cache_root = cache_root
        self._clients: dict = {}
        self._lock = threading.RLock()  # client() -> session() -> the registry read
        self._session = None
        self._base_session = None
        self._registry_client = None
        self._home_region = None
        self._configured_region: tuple | None = None  # (the profile's region or "",) once asked
        self._account = None
        self._account_lock = threading.RLock()
        self._base_sts = None          # STS of the default chain: who the credentials are
        self._base_caller = None
        self._base_caller_lock = threading.Lock()
        self._registry: dict = {}  # Copilot's SSM entries read (or written) this run
        self._registry_lock = threading.Lock()
        self._early_walk: dict | None = None   # warm_up's DescribeStacks walk, until describe_stacks takes it
        self._stacks_read = False               # describe_stacks was called: no early walk after that
        self.app = ""              # set by use_copilot_region: the application this run deploys

    # --- clients ------------------------------------------------------------------------------------
    def base_session(self):
        """boto3's default credential chain (the environment's profile): the application's account, where
        Copilot's registry lives."""
        if self._base_session is None:
            import boto3
            self._base_session = boto3.Session(profile_name=self.settings.profile, region_name=self.settings.region)
        return self._base_session

    def session(self):
        """The environment's account: the default chain, or, for an environment Copilot registered in
        another account, its `managerRoleARN` assumed through botocore's own assume-role credential
        provider (refreshed by botocore; nothing cached by copilot-doit)."""
        if self._session is None:
            role = self._manager_role()
            self._session = self.base_session() if role is None else self._assumed(role)
        return self._session

    def _manager_role(self) -> str | None:
        """Copilot's manager role of this environment when its SSM entry puts it in another account than
        the default credentials' one (Copilot: `env init` in another account), else None."""
        if not self.app:
            return None
        entry = self.copilot_env(self.app, self.settings.name)
        if entry is None or not entry.account_id or not entry.manager_role_arn:
            return None
        if entry.account_id == self._base_account():
            return None
        return entry.manager_role_arn

    def _assumed(self, role_arn: str):
        import boto3
        import botocore.session
        from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials
        base = self.base_session()._session
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=base.create_client, source_credentials=base.get_credentials(), role_arn=role_arn,
            extra_args={"RoleSessionName": f"copilot-doit-{self.settings.name}"[:64]})
        assumed = botocore.session.Session()
        assumed._credentials = DeferredRefreshableCredentials(method="assume-role",
                                                              refresh_using=fetcher.fetch_credentials)
        print(f"environment {self.settings.name}: using Copilot's environment manager role {role_arn}")
        return boto3.Session(botocore_session=assumed, region_name=self.settings.region)

    def registry_region(self) -> str:
        """Where Copilot keeps the application's SSM registry: `application.region` in copilot-doit.yml,
        else the default profile's region (Copilot's own choice: the region `app init` ran in), else the
        environment's region."""
        if self.settings.registry_region:
            return self.settings.registry_region
        if self._home_region is None:
            self._home_region = self._profile_region() or self.settings.region
        return self._home_region

    def _profile_region(self) -> str | None:
        """The region the profile (or AWS_REGION / AWS_DEFAULT_REGION) configures, None when none does;
        read once (a boto3.Session each time)."""
        if self._configured_region is None:
            import boto3
            self._configured_region = (boto3.Session(profile_name=self.settings.profile).region_name or "",)
        return self._configured_region[0] or None

    def registry_client(self):
        """SSM of the application's home region, with the default credentials (the app's account)."""
        with self._lock:
            if self._registry_client is None:
                self._registry_client = self._new_client(self.base_session(), "ssm", region_name=self.registry_region())
            return self._registry_client

    def use_copilot_region(self, app: str) -> None:
        """Bind this target to its application; when copilot-doit.yml names no region for the environment,
        the region of Copilot's SSM entry for it (if any) is the environment's region. Called once, before
        any stage reads the region."""
        self.app = app
        if self.settings.region_set:
            return
        # Without `region:` in copilot-doit.yml: Copilot's entry, else the profile's (or AWS_REGION's)
        # region, as boto3 would choose, else us-east-1.
        default = self._profile_region() or self.settings.region
        entry = self.copilot_env(app, self.settings.name)
        region = entry.region if entry is not None and entry.region else default
        if region != default:
            print(f"environment {self.settings.name}: region {region} from Copilot's SSM entry "
                  f"(set `region:` in copilot-doit.yml to override)")
        if region != self.settings.region:
            from ..values import replace
            self.settings = replace(self.settings, region=region)
            self._base_session = self._session = None
            self._registry_client = self._base_sts = None   # the caller's account stays: it has no region
            self._clients.clear()

    def client_kwargs(self) -> dict:
        return {}

    def client_config(self) -> dict:
        """botocore `Config` arguments of this target's clients: its retry and wait bounds, and a connection
        per concurrent check (+ the environment's own)."""
        return {**self.client_limits(), "max_pool_connections": self.concurrent_checks + 2}

    def client_limits(self) -> dict:
        """Retries and waits: standard retries, bounded waits."""
        return {"retries": {"mode": "standard", "max_attempts": 5}, "connect_timeout": 5, "read_timeout": 60}

    # The clients a run's live checks use. ECR first: every workload's check waits for its answers (one
    # DescribeImages each), while the one DescribeStacks walk runs beside them. S3 only when a selected
    # workload's record lists uploads to check (its addons or env file): its model and client are ~40 ms of
    # CPU that a no-op without them would spend for nothing.
    CHECK_SERVICES = ("ecr", "cloudformation")
    UPLOAD_SERVICES = ("s3",)

    def warm_up(self, uploads: bool = True, walk: bool = False) -> threading.Thread:
        """Start making the checks' clients, one after another in one thread, while the first checks wait on
        the network: botocore loads each service's model when its first client is made (20-100 ms each here,
        ~0.2 s for these), and a boto3 session is not thread-safe, so clients are made one at a time under
        the target's lock anyway. The caller's account (GetCallerIdentity) is asked in a second thread while
        this one reads Copilot's SSM entry: the two answers do not depend on each other, and every check
        waits for both (the account names the ECR repositories). `walk`: the run's first read of the stacks
        is the region's DescribeStacks walk, started here too (_start_early_walk). The caller joins the
        thread (stages.prefetch) before anything can fork. A failure is left to the check that needs the
        client or the account, which reports it in its words."""
        def ask_account() -> None:
            try:
                self._base_account()
            except Exception:  # noqa: BLE001 — asked again, and reported, by the check that needs it
                pass

        def make() -> None:
            asking = walking = None
            try:
                with self._lock:   # both before a check takes the lock to read Copilot's SSM entry (session)
                    self._base_sts_client()
                    walking = self._start_early_walk() if walk else None
                asking = threading.Thread(target=ask_account, name=f"caller-{self.settings.name}", daemon=True)
                asking.start()
                for service in self.CHECK_SERVICES + (self.UPLOAD_SERVICES if uploads else ()):
                    if not (walking is not None and service == "cloudformation"):   # describe_stacks adopts the walk's
                        self.client(service)
            except Exception:  # noqa: BLE001 — reported by the check that needs this client
                pass
            finally:
                for thread in (asking, walking):
                    if thread is not None:
                        thread.join()
        thread = threading.Thread(target=make, name=f"clients-{self.settings.name}", daemon=True)
        thread.start()
        return thread

    def _start_early_walk(self) -> threading.Thread | None:
        """Start the region's DescribeStacks walk with the default chain's credentials, before Copilot's SSM
        entry says whether this environment is reached through its manager role, and before the checks'
        other clients are made: the walk (a page per round trip, one after another) was the last answer of
        a no-op, and started only once the SSM read and ECR's client were done (~0.15 s at 50 ms a round
        trip). describe_stacks takes its answer only when the environment's session turns out to be that
        same default-chain session in the same region, and only after the account check; otherwise it is
        dropped (a read, nothing changed) and the walk made again."""
        with self._lock:   # a boto3 session makes one client at a time
            if self._stacks_read:
                return None    # describe_stacks came first: it walked itself
            session = self.base_session()
            cfn = self._new_client(session, "cloudformation")
        early: dict = {"session": session, "region": self.settings.region, "client": cfn}

        def walk() -> None:
            try:
                early["stacks"] = self._walk(cfn)
            except Exception as exc:  # noqa: BLE001 — describe_stacks walks again and reports it in its words
                early["error"] = exc
        early["thread"] = threading.Thread(target=walk, name=f"walk-{self.settings.name}", daemon=True)
        self._early_walk = early
        early["thread"].start()
        return early["thread"]

    def _base_sts_client(self):
        if self._base_sts is None:
            with self._lock:
                if self._base_sts is None:
                    self._base_sts = self._new_client(self.base_session(), "sts")
        return self._base_sts

    def _base_account(self) -> str:
        """The default chain's account, asked once per run (a failure is not remembered: asked again)."""
        sts = self._base_sts_client()   # first: the caller lock is a leaf, nothing is locked inside it
        with self._base_caller_lock:
            if self._base_caller is None:
                self._base_caller = self._caller_account(sts)
            return self._base_caller

    def client(self, service: str):
        made = self._clients.get(service)   # made already: no waiting behind another client being made
        if made is not None:
            return made
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._new_client(self.session(), service)
            return self._clients[service]

    def _new_client(self, session, service: str, **kwargs):
        """A client of this target's configuration (bounded retries and waits, the endpoint, the API log)
        on `session`: the environment's (client) or the default chain's (the registry, the caller check)."""
        from botocore.config import Config
        c = session.client(service, config=Config(**self.client_config()), **self.client_kwargs(), **kwargs)
        if os.environ.get("COPILOT_DOIT_API_LOG"):
            c.meta.events.register("before-parameter-build.*.*", self._audit)
        return c

    def _audit(self, params, model, **_):
        op = model.name
        keep = {k: params[k] for k in _AUDITED_PARAMS.get(op, ()) if k in params}
        log_api(model.service_model.service_name, op, self.kind, keep)

    def _caller_account(self, sts) -> str:
        try:
            return sts.get_caller_identity()["Account"]
        except Exception as exc:  # no credentials, no network, a role that may not be assumed: one message
            raise ServiceUnavailable(f"cannot reach AWS for environment '{self.settings.name}': {exc}",
                                     allowed="configure credentials (AWS_PROFILE, ~/.aws) or set target: local") from None

    def account_id(self) -> str:
        """The environment's account, checked before anything changes against copilot-doit.yml's `account`
        and, for an environment Copilot registered, the `accountID` of its SSM entry."""
        # The concurrent status checks all ask at once: one GetCallerIdentity per run. A lock of its own: the
        # client lock must not wait for STS.
        with self._account_lock:
            return self._account_id()

    def _account_id(self) -> str:
        if self._account is None:
            from .. import registry
            # Without Copilot's manager role the environment's session is the default chain's: its caller
            # account is already asked (warm_up), not asked again through another client.
            with self._lock:
                session = self.session()
            account = (self._base_account() if session is self._base_session
                       else self._caller_account(self.client("sts")))
            entry = self.copilot_env(self.app, self.settings.name) if self.app else None
            if self.settings.account and self.settings.account != account:
                raise UserError(f"credentials are for account {account}, but environment "
                                f"'{self.settings.name}' expects {self.settings.account}", field="account")
            if entry is not None and entry.account_id and entry.account_id != account:
                raise UserError(f"credentials are for account {account}, but Copilot registered environment "
                                f"'{self.settings.name}' in account {entry.account_id} "
                                f"(SSM {registry.env_path(self.app, self.settings.name)})", field="account",
                                allowed="credentials of that account, or of the application's account with "
                                        "the environment's managerRoleARN in Copilot's entry")
            self._account = account
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
        with self._lock:
            self._stacks_read = True
            early, self._early_walk = self._early_walk, None   # the first read only: later ones read anew
            session = self.session() if early is not None else None
        if early is not None and session is early["session"] and self.settings.region == early["region"]:
            early["thread"].join()
            if "stacks" in early:
                with self._lock:
                    self._clients.setdefault("cloudformation", early["client"])
                return early["stacks"]
        return self._walk(self.client("cloudformation"))

    def stacks_changed(self) -> None:
        """A stage changed a stack of this environment (Session.changed): a walk started before is stale."""
        with self._lock:
            self._stacks_read = True
            self._early_walk = None

    @staticmethod
    def _walk(cfn) -> dict[str, dict]:
        out: dict = {}
        for page in cfn.get_paginator("describe_stacks").paginate():
            for s in page["Stacks"]:
                merge_listed(out, s["StackName"], _listed(s))
        return out

    def describe_stack(self, name: str) -> dict | None:
        """One stack by name, as describe_stacks lists it, or None when there is none."""
        self.account_id()  # the first read of every run: wrong credentials stop it before any change
        cfn = self.client("cloudformation")
        try:
            found = cfn.describe_stacks(StackName=name)["Stacks"]
        except cfn.exceptions.ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        out: dict = {}
        for s in found:
            merge_listed(out, s["StackName"], _listed(s))
        return out.get(name)

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
        """One answer per key for this target's life (one run): the registry is read once, not per stage.
        A lock of its own: a remembered answer is not kept waiting behind a client being made."""
        with self._registry_lock:
            if key in self._registry:
                return self._registry[key]
        value = fn()
        with self._registry_lock:
            return self._registry.setdefault(key, value)

    def _ssm_read(self, what: str, fn):
        try:
            return fn(self.registry_client())
        except UserError:  # registry.RegistryConflict, a malformed entry: already one clear message
            raise
        except Exception as exc:  # no credentials, no network, no permission: one clear message
            raise ServiceUnavailable(f"cannot use {what} in Copilot's SSM store for environment "
                                     f"'{self.settings.name}' ({self.registry_region()}): {exc}",
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
        if self.copilot_app(app) is None:  # no application (or not readable: said once): no environment
            return None
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

