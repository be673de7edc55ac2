"""Copilot's application registry in SSM (copilot_doit/registry.py), against the tool's own moto server:
entries written byte for byte as Copilot's `internal/pkg/config` writes them (Go's json.Marshal of
config.Application / config.Environment / config.Workload: struct field order, no spaces) are read back,
and a workload is registered exactly as `svc init` / `job init` register it."""
from __future__ import annotations

import json
import uuid

import pytest

from copilot_doit import registry
from copilot_doit.errors import UserError

pytestmark = pytest.mark.e2e


# --- Go's marshal order, without a server ---------------------------------------------------------------
def test_workload_json_is_gos_marshal_of_config_workload():
    # type Workload struct { App `json:"app"`; Name `json:"name"`; Type `json:"type"` }
    assert registry.workload_json("demo", "api", "Backend Service") == \
        '{"app":"demo","name":"api","type":"Backend Service"}'


def test_app_and_env_json_follow_the_struct_order_and_omitempty():
    # Application: name, account, permissionsBoundary (omitempty), domain, domainHostedZoneID, version, tags (omitempty)
    assert registry.app_json(registry.App(name="demo", account="123456789012")) == \
        '{"name":"demo","account":"123456789012","domain":"","domainHostedZoneID":"","version":"1.0"}'
    full = registry.App(name="demo", account="1", permissions_boundary="pb", domain="example.com",
                        domain_hosted_zone_id="Z1", version="1.0", tags=(("z", "1"), ("a", "2")))
    assert registry.app_json(full) == ('{"name":"demo","account":"1","permissionsBoundary":"pb","domain":"example.com",'
                                       '"domainHostedZoneID":"Z1","version":"1.0","tags":{"a":"2","z":"1"}}')
    # Environment: app, name, region, accountID, registryURL, executionRoleARN, managerRoleARN
    e = registry.Env(app="demo", name="test", region="us-west-2", account_id="1", registry_url="r",
                     execution_role_arn="x", manager_role_arn="m")
    assert registry.env_json(e) == ('{"app":"demo","name":"test","region":"us-west-2","accountID":"1",'
                                    '"registryURL":"r","executionRoleARN":"x","managerRoleARN":"m"}')


def test_go_escapes_html_characters_and_keeps_non_ascii():
    assert registry.go_json([("a", "<x&y>"), ("b", "é\u2028")]) == '{"a":"\\u003cx\\u0026y\\u003e","b":"é\\u2028"}'


# --- against the moto server ----------------------------------------------------------------------------
@pytest.fixture
def ssm(services_up):
    import boto3
    client = boto3.client("ssm", endpoint_url=services_up.moto_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    calls: list[str] = []
    client.meta.events.register("before-call.ssm.*", lambda model, **_: calls.append(model.name))
    client.calls = calls
    return client


def _app_name() -> str:
    return "r" + uuid.uuid4().hex[:10]


def copilot_app_init(ssm, app: str, domain: str = "", zone: str = "") -> None:
    """What `copilot app init` stores (config.Store.CreateApplication)."""
    value = (f'{{"name":"{app}","account":"123456789012","domain":"{domain}","domainHostedZoneID":"{zone}",'
             '"version":"1.0"}')
    ssm.put_parameter(Name=f"/copilot/applications/{app}", Description="Copilot Application", Type="String",
                      Value=value, Tags=[{"Key": "copilot-application", "Value": app}])


def copilot_env_init(ssm, app: str, env: str, extra: str = "") -> None:
    """What `copilot env init` stores (config.Store.CreateEnvironment); `extra` for older entries' fields."""
    value = (f'{{"app":"{app}","name":"{env}","region":"us-west-2","accountID":"210987654321",'
             '"registryURL":"210987654321.dkr.ecr.us-west-2.amazonaws.com",'
             f'"executionRoleARN":"arn:aws:iam::210987654321:role/{app}-{env}-CFNExecutionRole",'
             f'"managerRoleARN":"arn:aws:iam::210987654321:role/{app}-{env}-EnvManagerRole"{extra}}}')
    ssm.put_parameter(Name=f"/copilot/applications/{app}/environments/{env}",
                      Description=f"The {env} deployment stage", Type="String", Value=value,
                      Tags=[{"Key": "copilot-application", "Value": app}, {"Key": "copilot-environment", "Value": env}])


def copilot_svc_init(ssm, app: str, name: str, wtype: str) -> None:
    """What `copilot svc init` stores (config.Store.CreateService)."""
    ssm.put_parameter(Name=f"/copilot/applications/{app}/components/{name}", Description=f"Copilot {wtype} {name}",
                      Type="String", Value=f'{{"app":"{app}","name":"{name}","type":"{wtype}"}}',
                      Tags=[{"Key": "copilot-application", "Value": app}, {"Key": "copilot-service", "Value": name}])


def test_read_app_absent_and_present(ssm):
    app = _app_name()
    assert registry.read_app(ssm, app) is None
    copilot_app_init(ssm, app, "example.com", "Z0ROOT")
    got = registry.read_app(ssm, app)
    assert got == registry.App(name=app, account="123456789012", domain="example.com",
                               domain_hosted_zone_id="Z0ROOT", version="1.0")
    # and what copilot-doit would marshal is the byte string Copilot stored
    stored = ssm.get_parameter(Name=f"/copilot/applications/{app}")["Parameter"]["Value"]
    assert registry.app_json(got) == stored


def test_read_env_gives_region_account_roles_and_the_legacy_prod_flag(ssm):
    app = _app_name()
    copilot_app_init(ssm, app)
    assert registry.read_env(ssm, app, "test") is None
    copilot_env_init(ssm, app, "test")
    e = registry.read_env(ssm, app, "test")
    assert (e.app, e.name, e.region, e.account_id) == (app, "test", "us-west-2", "210987654321")
    assert e.execution_role_arn == f"arn:aws:iam::210987654321:role/{app}-test-CFNExecutionRole"
    assert e.manager_role_arn == f"arn:aws:iam::210987654321:role/{app}-test-EnvManagerRole"
    assert e.registry_url == "210987654321.dkr.ecr.us-west-2.amazonaws.com" and e.prod is False
    assert registry.env_json(e) == ssm.get_parameter(
        Name=f"/copilot/applications/{app}/environments/test")["Parameter"]["Value"]
    # An entry written by Copilot before v1.21 carries "prod"; deprecated fields are read past.
    copilot_env_init(ssm, app, "prod", ',"prod":true,"customConfig":{"importCertARNs":["arn:c"]},'
                                       '"telemetry":{"containerInsights":true}')
    assert registry.read_env(ssm, app, "prod").prod is True


def test_register_workload_writes_what_svc_init_writes(ssm):
    app = _app_name()
    copilot_app_init(ssm, app)
    assert registry.register_workload(ssm, app, "api", "Backend Service") == "created"
    path = f"/copilot/applications/{app}/components/api"
    p = ssm.get_parameter(Name=path)["Parameter"]
    assert p["Value"] == f'{{"app":"{app}","name":"api","type":"Backend Service"}}'
    assert p["Type"] == "String"
    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [path]}])["Parameters"][0]
    assert meta.get("Description") == "Copilot Backend Service api"
    tags = {t["Key"]: t["Value"] for t in ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=path)["TagList"]}
    assert tags == {"copilot-application": app, "copilot-service": "api"}
    # Copilot's own reader sees a service: ListServices reads every components/ entry by path.
    listed = ssm.get_parameters_by_path(Path=f"/copilot/applications/{app}/components/", Recursive=False)["Parameters"]
    assert [json.loads(x["Value"]) for x in listed] == [{"app": app, "name": "api", "type": "Backend Service"}]


def test_register_workload_is_idempotent_and_reads_before_writing(ssm):
    app = _app_name()
    copilot_app_init(ssm, app)
    copilot_svc_init(ssm, app, "web", "Load Balanced Web Service")   # Copilot registered it already
    ssm.calls.clear()
    assert registry.register_workload(ssm, app, "web", "Load Balanced Web Service") == "unchanged"
    assert "PutParameter" not in ssm.calls
    assert registry.register_workload(ssm, app, "job", "Scheduled Job") == "created"
    ssm.calls.clear()
    assert registry.register_workload(ssm, app, "job", "Scheduled Job") == "unchanged"
    assert ssm.calls == ["GetParameter", "GetParameter"]  # the app, the component: no write
    assert ssm.get_parameter(Name=f"/copilot/applications/{app}/components/job")["Parameter"]["Version"] == 1


def test_register_workload_never_overwrites_another_type(ssm):
    app = _app_name()
    copilot_app_init(ssm, app)
    copilot_svc_init(ssm, app, "worker", "Worker Service")
    with pytest.raises(registry.RegistryConflict) as exc:
        registry.register_workload(ssm, app, "worker", "Backend Service")
    assert "registered in Copilot's application" in str(exc.value) and "Worker Service" in str(exc.value)
    assert json.loads(ssm.get_parameter(Name=f"/copilot/applications/{app}/components/worker")
                      ["Parameter"]["Value"])["type"] == "Worker Service"


def test_register_workload_needs_the_application_and_a_copilot_type(ssm):
    app = _app_name()
    with pytest.raises(UserError, match="not registered in Copilot's SSM store"):
        registry.register_workload(ssm, app, "api", "Backend Service")
    assert registry.read_workload(ssm, app, "api") is None  # no orphan component
    copilot_app_init(ssm, app)
    with pytest.raises(UserError, match="not one of Copilot's workload types"):
        registry.register_workload(ssm, app, "api", "Backend")


def test_a_malformed_entry_is_one_clear_error(ssm):
    app = _app_name()
    ssm.put_parameter(Name=f"/copilot/applications/{app}", Type="String", Value="oops")
    with pytest.raises(UserError, match="is not Copilot's JSON"):
        registry.read_app(ssm, app)


def test_the_standalone_message_is_said_once(capsys):
    app = _app_name()
    assert registry.say_standalone_once(app) is True
    assert registry.say_standalone_once(app) is False
    out = capsys.readouterr().out
    assert out == (f"application {app} is not registered in Copilot's SSM store: deploying standalone "
                   "(copilot svc ls will not list it)\n")
