"""The real-AWS target's boto3 code paths (describe, ECR by tag/digest, retag, bucket, upload), run
against the moto server as a stand-in endpoint: the same calls the tool makes on AWS."""
from __future__ import annotations

import json
import uuid

import pytest

from copilot_doit.errors import UserError
from copilot_doit.targets.aws import AwsTarget as Target
from copilot_doit.workspace import EnvSettings

pytestmark = pytest.mark.e2e


class EndpointTarget(Target):
    """aws.Target with only the endpoint swapped: every method under test is the AWS one."""

    def __init__(self, url):
        super().__init__(EnvSettings(name="t", target="aws", region="us-east-1", account="123456789012"), "unused")
        self.url = url

    def base_session(self):
        import boto3
        if self._base_session is None:
            self._base_session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                               region_name=self.settings.region)
        return self._base_session

    def client_kwargs(self):
        return {"endpoint_url": self.url}


@pytest.fixture
def target(services_up):
    return EndpointTarget(services_up.moto_url)


def test_account_check_and_repository(target):
    assert target.account_id() == "123456789012"
    name = f"t{uuid.uuid4().hex[:8]}/svc"
    uri = target.ensure_repository(name, {"copilot-application": "t"})
    assert uri == target.repository_uri(name) == f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}"
    assert target.ensure_repository(name, {}) == uri          # idempotent
    assert target.image_digest_in_registry(name, tag="nope") is None


def test_retag_by_manifest_and_lookups_by_tag_and_digest(target):
    name = f"t{uuid.uuid4().hex[:8]}/svc"
    target.ensure_repository(name, {})
    ecr = target.client("ecr")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                                      "digest": "sha256:" + "1" * 64}, "layers": []})
    digest = "sha256:" + "2" * 64
    ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag="ck-abc", imageDigest=digest,
                  imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json")
    assert target.tag_digest(name, "ck-abc") == digest
    target.retag(name, digest, ["v1", "latest"])
    assert target.tag_digest(name, "v1") == digest and target.tag_digest(name, "latest") == digest
    assert target.image_digest_in_registry(name, digest=digest) == digest
    target.retag(name, digest, ["v1"])                         # already there: no error


def test_bucket_upload_and_stacks_listing(target):
    bucket = target.artifact_bucket(f"a{uuid.uuid4().hex[:6]}")
    assert bucket.startswith("copilot-doit-") and len(bucket) <= 63
    target.ensure_bucket(bucket, {"copilot-application": "a"})
    target.ensure_bucket(bucket, {"copilot-application": "a"})  # exists: fine
    target.upload(bucket, "manual/k.yml", b"body")
    target.upload(bucket, "manual/k.yml", b"body")              # content-addressed: not written again
    assert target.client("s3").get_object(Bucket=bucket, Key="manual/k.yml")["Body"].read() == b"body"
    assert target.object_url(bucket, "k") == f"https://{bucket}.s3.us-east-1.amazonaws.com/k"
    stack = f"s{uuid.uuid4().hex[:8]}"
    target.client("cloudformation").create_stack(
        StackName=stack, Tags=[{"Key": "k", "Value": "v"}],
        TemplateBody=json.dumps({"Resources": {"L": {"Type": "AWS::Logs::LogGroup"}},
                                 "Outputs": {"O": {"Value": {"Ref": "L"}}}}))
    listing = target.describe_stacks()
    assert listing[stack]["status"] == "CREATE_COMPLETE" and listing[stack]["tags"] == {"k": "v"}
    assert "O" in listing[stack]["outputs"]


def test_wrong_account_is_refused_before_anything_changes(services_up):
    t = EndpointTarget(services_up.moto_url)
    t.settings = EnvSettings(name="prod", target="aws", region="us-east-1", account="999999999999")
    with pytest.raises(UserError, match="credentials are for account 123456789012, but environment 'prod' expects 999999999999"):
        t.account_id()


# --- Copilot's application registry through the target (registry.py; the local target has none) ----------
def _ssm_calls(t) -> list[str]:
    calls: list[str] = []
    t.registry_client().meta.events.register("before-call.ssm.*", lambda model, **_: calls.append(model.name))
    return calls


def _copilot_app(t, app: str, domain: str = "") -> None:
    t.registry_client().put_parameter(
        Name=f"/copilot/applications/{app}", Type="String", Tags=[{"Key": "copilot-application", "Value": app}],
        Value=f'{{"name":"{app}","account":"123456789012","domain":"{domain}","domainHostedZoneID":"","version":"1.0"}}')


def test_copilot_app_and_env_are_read_once_per_run(target):
    app = f"r{uuid.uuid4().hex[:8]}"
    calls = _ssm_calls(target)
    assert target.copilot_app(app) is None
    _copilot_app(target, app, "example.com")
    assert target.copilot_app(app) is None          # memoised for the run: one GetParameter
    assert calls == ["GetParameter", "PutParameter"]
    fresh = EndpointTarget(target.url)               # the next run sees it
    assert fresh.copilot_app(app).domain == "example.com"
    fresh.client("ssm").put_parameter(
        Name=f"/copilot/applications/{app}/environments/t", Type="String",
        Value=f'{{"app":"{app}","name":"t","region":"eu-west-1","accountID":"123456789012","registryURL":"",'
              '"executionRoleARN":"arn:aws:iam::123456789012:role/x","managerRoleARN":"arn:aws:iam::123456789012:role/m"}')
    e = fresh.copilot_env(app, "t")
    assert (e.region, e.execution_role_arn, e.manager_role_arn) == (
        "eu-west-1", "arn:aws:iam::123456789012:role/x", "arn:aws:iam::123456789012:role/m")
    assert fresh.copilot_env(app, "t") is e


def test_register_workload_through_the_target(target, capsys):
    app = f"r{uuid.uuid4().hex[:8]}"
    assert target.register_workload(app, "api", "Backend Service") == "standalone"
    assert target.register_workload(app, "web", "Load Balanced Web Service") == "standalone"
    out = capsys.readouterr().out
    assert out.count("is not registered in Copilot's SSM store: deploying standalone") == 1
    t = EndpointTarget(target.url)
    _copilot_app(t, app)
    assert t.register_workload(app, "api", "Backend Service") == "created"
    assert t.register_workload(app, "api", "Backend Service") == "created"   # memoised: no second read
    assert EndpointTarget(target.url).register_workload(app, "api", "Backend Service") == "unchanged"
    assert json.loads(t.client("ssm").get_parameter(Name=f"/copilot/applications/{app}/components/api")
                      ["Parameter"]["Value"]) == {"app": app, "name": "api", "type": "Backend Service"}


def test_the_local_target_has_no_registry_and_loads_no_boto3():
    import subprocess
    import sys
    code = ("import sys; from copilot_doit.targets import target_for; from copilot_doit.workspace import EnvSettings;"
            "t = target_for(EnvSettings(name='x', target='local'), '/nonexistent');"
            "assert t.copilot_app('a') is None and t.copilot_env('a', 'x') is None;"
            "assert t.register_workload('a', 'n', 'Backend Service') == 'standalone';"
            "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 loaded'")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "", p.stderr


class _Session:
    """What domain.app_domain uses of a Session."""

    def __init__(self, t, app, cache_root, domain=None):
        from types import SimpleNamespace
        self.ws = SimpleNamespace(app=app, domain=domain)
        self.cache_root = cache_root
        self.facts: dict = {}
        self._t = t

    def target(self, env):
        return self._t

    def once(self, key, fn):
        if key not in self.facts:
            self.facts[key] = fn()
        return self.facts[key]


def test_the_app_domain_comes_from_ssm_once_and_copilot_doit_yml_overrides(target, tmp_path):
    from copilot_doit import domain
    app = f"r{uuid.uuid4().hex[:8]}"
    t = EndpointTarget(target.url)
    calls = _ssm_calls(t)
    assert domain.app_domain(_Session(t, app, tmp_path), "t") is None      # no app: standalone
    assert not (tmp_path / domain.APP_DOMAINS).exists()                  # and not remembered
    _copilot_app(t, app, "example.com")
    t = EndpointTarget(target.url)
    calls = _ssm_calls(t)
    assert domain.app_domain(_Session(t, app, tmp_path), "t") == "example.com"
    assert calls == ["GetParameter"]
    memo = json.loads((tmp_path / domain.APP_DOMAINS).read_text())["apps"]
    assert memo == {f"123456789012/us-east-1/{app}": {"domain": "example.com", "account": "123456789012"}}
    t = EndpointTarget(target.url)                                        # a later run: from the cache folder
    calls = _ssm_calls(t)
    assert domain.app_domain(_Session(t, app, tmp_path), "t") == "example.com" and calls == []
    assert domain.app_domain(_Session(t, app, tmp_path, domain="other.org"), "t") == "other.org"
    assert calls == []


def test_credentials_that_may_not_read_ssm_deploy_standalone_with_a_warning(capsys):
    """An identity without ssm:GetParameter keeps today's standalone behaviour, said once (stderr)."""
    import botocore.exceptions

    class Denied:
        class exceptions:
            ClientError = botocore.exceptions.ClientError
            ParameterNotFound = type("ParameterNotFound", (Exception,), {})

        def get_parameter(self, **_):
            raise botocore.exceptions.ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}},
                                                  "GetParameter")

    t = EndpointTarget("http://127.0.0.1:9")
    t.registry_client = lambda: Denied()
    app = f"r{uuid.uuid4().hex[:8]}"
    assert t.copilot_app(app) is None
    assert t.register_workload(app, "api", "Backend Service") == "standalone"
    err = capsys.readouterr().err
    assert err.count(f"cannot read application {app} from Copilot's SSM store (AccessDeniedException)") == 1


def test_a_domain_of_another_account_is_not_rendered(target, tmp_path, capsys):
    from copilot_doit import domain
    app = f"r{uuid.uuid4().hex[:8]}"
    target.client("ssm").put_parameter(
        Name=f"/copilot/applications/{app}", Type="String",
        Value=f'{{"name":"{app}","account":"999999999999","domain":"example.com","domainHostedZoneID":"","version":"1.0"}}')
    assert domain.app_domain(_Session(EndpointTarget(target.url), app, tmp_path), "t") is None
    assert "belongs to account 999999999999, environment t is in 123456789012" in capsys.readouterr().err


def test_a_run_on_the_aws_target_renders_the_domain_of_copilots_application(services_up, tmp_path, monkeypatch):
    """The whole wiring: an environment with `target: aws` (boto3's AWS_ENDPOINT_URL at the moto server),
    no `application.domain` in copilot-doit.yml, Copilot's application in SSM with a domain: the env
    stack's key and rendering get that domain and the app zone's id."""
    import textwrap
    from copilot_doit import domain
    from copilot_doit.session import Options, Session
    from copilot_doit.stages import env as env_stage
    app = f"r{uuid.uuid4().hex[:8]}"
    dom = f"{app}.org"
    ws = tmp_path / "copilot"
    (ws / "web").mkdir(parents=True)
    (ws / "environments" / "test").mkdir(parents=True)
    (ws / ".workspace").write_text(f"application: {app}\n")
    (ws / "copilot-doit.yml").write_text(
        'environments:\n  test: {target: aws, region: us-east-1, account: "123456789012"}\n')
    (ws / "environments/test/manifest.yml").write_text("name: test\ntype: Environment\n")
    (ws / "web/manifest.yml").write_text(textwrap.dedent("""\
        name: web
        type: Load Balanced Web Service
        image: {location: public.ecr.aws/nginx/nginx:latest, port: 80}
        http: {path: /}
        """))
    for k, v in {"AWS_ENDPOINT_URL": services_up.moto_url, "AWS_ACCESS_KEY_ID": "testing",
                 "AWS_SECRET_ACCESS_KEY": "testing", "COPILOT_DOIT_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("COPILOT_DOIT_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    t = EndpointTarget(services_up.moto_url)
    _copilot_app(t, app, dom)
    zone = t.client("route53").create_hosted_zone(Name=f"{app}.{dom}", CallerReference=app)["HostedZone"]["Id"]
    s = Session(Options(names=["web"], envs=["test"]))
    assert s.ws.domain is None
    d = domain.facts(s, "test")
    assert d["name"] == dom and d["zone_ids"] == {"app": zone.rsplit("/", 1)[-1]}
    _, ins = env_stage.inputs(s, "test")
    assert ins["domain"]["name"] == dom
    assert json.loads((tmp_path / "cache" / domain.APP_DOMAINS).read_text())["apps"] == {
        f"123456789012/us-east-1/{app}": {"domain": dom, "account": "123456789012"}}


def test_an_environment_in_another_account_is_reached_through_copilots_manager_role(target, monkeypatch, capsys):
    """Copilot registered the environment in account 210987654321 with its manager role: the default
    credentials (account 123456789012, the application's) assume that role through botocore's assume-role
    provider, and the account check then sees the environment's account."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", target.url)  # botocore's STS client for AssumeRole reads it
    app = f"r{uuid.uuid4().hex[:8]}"
    _copilot_app(target, app)
    role = "arn:aws:iam::210987654321:role/x-test-EnvManagerRole"
    target.registry_client().put_parameter(
        Name=f"/copilot/applications/{app}/environments/t", Type="String",
        Value=f'{{"app":"{app}","name":"t","region":"us-east-1","accountID":"210987654321","registryURL":"",'
              f'"executionRoleARN":"arn:aws:iam::210987654321:role/x-test-CFNExecutionRole","managerRoleARN":"{role}"}}')
    t = EndpointTarget(target.url)
    t.settings = EnvSettings(name="t", target="aws", region="us-east-1")
    t.use_copilot_region(app)
    assert t.account_id() == "210987654321"
    assert f"environment t: using Copilot's environment manager role {role}" in capsys.readouterr().out
    arn = t.client("sts").get_caller_identity()["Arn"]
    assert arn.startswith("arn:aws:sts::210987654321:assumed-role/x-test-EnvManagerRole/copilot-doit-t"), arn
    # The application's own account stays the default chain's: the registry is read there.
    assert t.base_session().client("sts", endpoint_url=target.url).get_caller_identity()["Account"] == "123456789012"


def test_the_same_account_needs_no_role(target, capsys):
    app = f"r{uuid.uuid4().hex[:8]}"
    _copilot_app(target, app)
    target.registry_client().put_parameter(
        Name=f"/copilot/applications/{app}/environments/t", Type="String",
        Value=f'{{"app":"{app}","name":"t","region":"us-east-1","accountID":"123456789012","registryURL":"",'
              '"executionRoleARN":"arn:aws:iam::123456789012:role/e","managerRoleARN":"arn:aws:iam::123456789012:role/m"}')
    t = EndpointTarget(target.url)
    t.use_copilot_region(app)
    assert t.account_id() == "123456789012" and t.session() is t.base_session()
    assert "manager role" not in capsys.readouterr().out


def test_the_registry_and_caller_checks_are_in_the_api_log(target, monkeypatch, tmp_path):
    """Copilot's registry is written through its own client (the app's home region, the default credentials):
    its calls are audited like every other client's, so a test's `mutating()` sees an SSM write."""
    log = tmp_path / "api.jsonl"
    monkeypatch.setenv("COPILOT_DOIT_API_LOG", str(log))
    app = f"r{uuid.uuid4().hex[:8]}"
    t = EndpointTarget(target.url)
    _copilot_app(t, app)
    assert t.register_workload(app, "api", "Backend Service") == "created"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"service": "ssm", "operation": "PutParameter", "target": "aws", "mutating": True} in calls, calls


def test_concurrent_checks_ask_for_the_account_once(target, monkeypatch, tmp_path):
    """The status checks run in threads (stages.prefetch) and all need the account: one GetCallerIdentity."""
    import threading
    log = tmp_path / "api.jsonl"
    monkeypatch.setenv("COPILOT_DOIT_API_LOG", str(log))
    t = EndpointTarget(target.url)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(t.account_id())) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert answers == ["123456789012"] * 6
    calls = [json.loads(line)["operation"] for line in log.read_text().splitlines()]
    assert calls.count("GetCallerIdentity") == 1, calls


def test_warm_up_makes_the_checks_clients_in_one_thread_that_ends(target):
    t = EndpointTarget(target.url)
    thread = t.warm_up()
    thread.join(30)
    assert not thread.is_alive()
    assert set(Target.CHECK_SERVICES + Target.UPLOAD_SERVICES) <= set(t._clients)
    assert t.client("ecr") is t._clients["ecr"]     # made once, handed out without the lock


def test_warm_up_without_uploads_to_check_makes_no_s3_client(target):
    t = EndpointTarget(target.url)
    thread = t.warm_up(uploads=False)
    thread.join(30)
    assert set(Target.CHECK_SERVICES) <= set(t._clients) and "s3" not in t._clients


def test_one_stack_by_name_is_what_the_listing_says(target, services_up):
    """describe_stack (a run of one or two workloads) and describe_stacks (the page walk) agree, on both
    code paths (boto3 here, the local target's plain HTTP); a missing stack is None, not an error."""
    from copilot_doit.targets.local import lite
    name = f"s{uuid.uuid4().hex[:10]}"
    cfn = target.client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps({
        "Parameters": {"P": {"Type": "String", "Default": "d"}},
        "Resources": {"Log": {"Type": "AWS::Logs::LogGroup"}},
        "Outputs": {"Out": {"Value": {"Ref": "P"}}}}), Tags=[{"Key": "k", "Value": "v"}])
    one = target.describe_stack(name)
    assert one == target.describe_stacks()[name]
    assert one["tags"] == {"k": "v"} and one["outputs"] == {"Out": "d"} and one["parameters"] == {"P": "d"}
    assert target.describe_stack(name + "-missing") is None
    plain = lite.describe_stack(services_up.moto_url, "us-east-1", name)
    assert {k: plain[k] for k in ("status", "tags", "outputs", "parameters")} == \
        {k: one[k] for k in ("status", "tags", "outputs", "parameters")}
    assert lite.describe_stack(services_up.moto_url, "us-east-1", name + "-missing") is None
    cfn.delete_stack(StackName=name)
    assert target.describe_stack(name) is None and lite.describe_stack(services_up.moto_url, "us-east-1", name) is None


def test_the_plain_http_walk_follows_every_page(services_up):
    """moto answers DescribeStacks 50 stacks a page; the local target's walk reads them all (a by-name
    variant once reused the loop's variable and stopped after the first page)."""
    from copilot_doit.targets.local import lite
    cfn = boto3_cfn(services_up)
    prefix = f"pg{uuid.uuid4().hex[:6]}"
    for i in range(55):
        cfn.create_stack(StackName=f"{prefix}-{i:02d}", TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}))
    listed = lite.describe_stacks(services_up.moto_url, "us-east-1")
    assert {f"{prefix}-{i:02d}" for i in range(55)} <= set(listed)


def boto3_cfn(services_up):
    import boto3
    return boto3.client("cloudformation", endpoint_url=services_up.moto_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _describe_stacks_calls(log) -> int:
    if not log.exists():
        return 0
    return sum(1 for line in log.read_text().splitlines() if json.loads(line)["operation"] == "DescribeStacks")


def _stack(t, name=None) -> str:
    name = name or f"s{uuid.uuid4().hex[:8]}"
    t.client("cloudformation").create_stack(
        StackName=name, TemplateBody=json.dumps({"Resources": {"L": {"Type": "AWS::Logs::LogGroup"}}}))
    return name


def test_the_walk_started_by_warm_up_is_the_first_listing_walked_once(target, monkeypatch, tmp_path):
    """warm_up(walk=True) starts the region's DescribeStacks walk before Copilot's SSM entry and the other
    clients; describe_stacks takes its answer (and its client) instead of walking again."""
    stack = _stack(target)
    log = tmp_path / "api.jsonl"
    monkeypatch.setenv("COPILOT_DOIT_API_LOG", str(log))
    t = EndpointTarget(target.url)
    thread = t.warm_up(uploads=False, walk=True)
    listing = t.describe_stacks()
    thread.join(30)
    assert stack in listing
    first = _describe_stacks_calls(log)
    assert first >= 1
    walked_client = t._clients["cloudformation"]
    again = t.describe_stacks()   # a later read walks anew (a stage may have changed a stack since)
    assert stack in again and _describe_stacks_calls(log) == 2 * first
    assert t._clients["cloudformation"] is walked_client   # one client for both


def test_describe_stacks_before_the_warm_up_walks_itself_and_no_walk_starts_after(target, monkeypatch, tmp_path):
    log = tmp_path / "api.jsonl"
    monkeypatch.setenv("COPILOT_DOIT_API_LOG", str(log))
    t = EndpointTarget(target.url)
    t.describe_stacks()
    one_walk = _describe_stacks_calls(log)
    t.warm_up(uploads=False, walk=True).join(30)
    assert t._early_walk is None and _describe_stacks_calls(log) == one_walk


def test_the_early_walk_is_not_used_before_the_account_check(target):
    t = EndpointTarget(target.url)
    t.settings = EnvSettings(name="t", target="aws", region="us-east-1", account="999999999999")
    thread = t.warm_up(uploads=False, walk=True)
    thread.join(30)
    with pytest.raises(UserError, match="expects 999999999999"):
        t.describe_stacks()


def test_the_early_walk_with_the_default_credentials_is_dropped_for_an_environment_behind_its_manager_role(
        target, monkeypatch, tmp_path):
    """The walk starts before Copilot's SSM entry is read. When the entry puts the environment in another
    account (its manager role), what the default credentials listed is another account's stacks: dropped,
    and the region walked again as the environment's account."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", target.url)  # botocore's STS client for AssumeRole reads it
    only_in_default_account = _stack(target)
    app = f"r{uuid.uuid4().hex[:8]}"
    _copilot_app(target, app)
    target.registry_client().put_parameter(
        Name=f"/copilot/applications/{app}/environments/t", Type="String",
        Value=f'{{"app":"{app}","name":"t","region":"us-east-1","accountID":"210987654321","registryURL":"",'
              '"executionRoleARN":"arn:aws:iam::210987654321:role/x-test-CFNExecutionRole",'
              '"managerRoleARN":"arn:aws:iam::210987654321:role/x-test-EnvManagerRole"}')
    t = EndpointTarget(target.url)
    t.settings = EnvSettings(name="t", target="aws", region="us-east-1")
    t.use_copilot_region(app)
    log = tmp_path / "api.jsonl"
    monkeypatch.setenv("COPILOT_DOIT_API_LOG", str(log))
    thread = t.warm_up(uploads=False, walk=True)
    thread.join(30)
    early = t._early_walk
    assert early is not None and only_in_default_account in early["stacks"]   # the default account's listing
    listing = t.describe_stacks()
    assert only_in_default_account not in listing
    assert t.client("cloudformation") is not early["client"]


def test_a_walk_started_before_a_stage_changed_a_stack_is_not_taken(target, monkeypatch, tmp_path):
    """Session.changed(env) tells the target: a walk still untaken is stale, the next read walks anew."""
    t = EndpointTarget(target.url)
    t.warm_up(uploads=False, walk=True).join(30)
    created_after = _stack(target)
    t.stacks_changed()
    assert created_after in t.describe_stacks()
