"""An existing Copilot application on an AWS-shaped endpoint (issue #11 scope 4).

The application is built the way Copilot leaves it: its SSM entries (`app init`, `env init`), and Copilot's
own environment stack (../shared/copilot-fixtures/stack-golden/environments, byte for byte, deployed into
the emulator through the compat step, with Copilot's tags and parameters; it creates Copilot's
CFNExecutionRole and EnvManagerRole). copilot-doit then deploys a workload with `target: aws` and
AWS_ENDPOINT_URL at the emulator (boto3's standard variable): the real-AWS code path, with only the
registry host and the compat step adapted (copilot_doit/targets/local/endpoint.py).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import make_workspace, marks

pytestmark = pytest.mark.e2e

GOLDEN_ENV = Path(__file__).resolve().parents[2] / "shared/copilot-fixtures/stack-golden/environments/template-with-basic-manifest.yml"
ACCOUNT = "123456789012"


def copilot_app_init(ssm, app: str) -> None:
    """What `copilot app init` stores (config.Application, Go's json.Marshal)."""
    ssm.put_parameter(Name=f"/copilot/applications/{app}", Type="String", Description="Copilot application",
                      Value=f'{{"name":"{app}","account":"{ACCOUNT}","domain":"","domainHostedZoneID":"","version":"1.0"}}',
                      Tags=[{"Key": "copilot-application", "Value": app}])


def copilot_env_init(ssm, app: str, env: str, region: str = "us-east-1") -> dict:
    """What `copilot env init` stores (config.Environment)."""
    roles = {"executionRoleARN": f"arn:aws:iam::{ACCOUNT}:role/{app}-{env}-CFNExecutionRole",
             "managerRoleARN": f"arn:aws:iam::{ACCOUNT}:role/{app}-{env}-EnvManagerRole"}
    value = (f'{{"app":"{app}","name":"{env}","region":"{region}","accountID":"{ACCOUNT}","registryURL":"",'
             f'"executionRoleARN":"{roles["executionRoleARN"]}","managerRoleARN":"{roles["managerRoleARN"]}"}}')
    ssm.put_parameter(Name=f"/copilot/applications/{app}/environments/{env}", Type="String", Value=value,
                      Description="Copilot environment", Tags=[{"Key": "copilot-application", "Value": app},
                                                               {"Key": "copilot-environment", "Value": env}])
    return roles


def copilot_env_deploy(cfn, app: str, env: str) -> str:
    """Copilot's environment stack as `copilot env deploy` leaves it, adapted to the emulator (the
    product's own compat step: Copilot's custom resources and the Cloud Map namespace are not emulated)."""
    from copilot_doit import cfnyaml
    from copilot_doit.targets.local import compat
    from copilot_doit.templates import dump
    template, _ = cfnyaml.load(str(GOLDEN_ENV), GOLDEN_ENV.read_text())
    adapted, notes = compat.adapt(template, set())
    assert any("CustomDomainAction" in n for n in notes), notes
    params = {p: "" for p in template["Parameters"]}
    params.update(AppName=app, EnvironmentName=env, CreateHTTPSListener="false",
                  CreateInternalHTTPSListener="false", ServiceDiscoveryEndpoint=f"{env}.{app}.local")
    name = f"{app}-{env}"
    cfn.create_stack(StackName=name, TemplateBody=dump(adapted),
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
                     Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
                     Tags=[{"Key": "copilot-application", "Value": app}, {"Key": "copilot-environment", "Value": env}])
    for _ in range(100):
        status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        time.sleep(0.1)
    assert status == "CREATE_COMPLETE", status
    return name


@pytest.fixture(scope="module")
def copilot_app(tmp_path_factory, services_up):
    """A workspace whose environment `test` is Copilot's: `target: aws`, no region in copilot-doit.yml
    (Copilot's SSM entry gives it), and boto3 pointed at the emulator."""
    ws = make_workspace(tmp_path_factory.mktemp("copilot-app"), services_up)
    (ws.manifests / "copilot-doit.yml").write_text(
        "application:\n  region: us-east-1\nenvironments:\n  test:\n    target: aws\n  prod:\n    target: local\n")
    ws.commit("environment test is Copilot's, on AWS")
    ssm, cfn = ws.client("ssm"), ws.client("cloudformation")
    copilot_app_init(ssm, ws.app)
    roles = copilot_env_init(ssm, ws.app, "test")
    env_stack = copilot_env_deploy(cfn, ws.app, "test")
    ws.aws = {"AWS_ENDPOINT_URL": services_up.moto_url, "AWS_ACCESS_KEY_ID": "testing",
              "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-3", "AWS_PROFILE": "",
              "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    ws.aws.pop("AWS_PROFILE")
    ws.roles, ws.env_stack = roles, env_stack
    ws.template_before = cfn.get_template(StackName=env_stack)["TemplateBody"]
    ws.first = ws.run("deploy", "-n", "mailer", "-e", "test", tool="cli", **ws.aws)   # `copilot-doit deploy`
    return ws


def test_a_workload_deploys_into_copilots_environment_through_its_execution_role(copilot_app):
    ws = copilot_app
    out = ws.first.stdout
    m = marks(out)
    assert m["env:test"] == "--" and m["deploy:mailer@test"] == ".", out
    assert "was created by Copilot: used as it is" in out, out
    assert "deploying stack" in out and "(aws target)" in out, out   # the AWS code path, not the local one
    assert f"as Copilot's environment execution role {ws.roles['executionRoleARN']}" in out, out
    cfn = ws.client("cloudformation")
    stack = cfn.describe_stacks(StackName=f"{ws.app}-test-mailer")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    assert stack.get("RoleARN") == ws.roles["executionRoleARN"], stack
    # The change set went out with RoleARN (the API log records CreateChangeSet's parameters).
    # Copilot's environment stack: not updated, its template byte for byte the same.
    assert cfn.get_template(StackName=ws.env_stack)["TemplateBody"] == ws.template_before
    env = cfn.describe_stacks(StackName=ws.env_stack)["Stacks"][0]
    assert "LastUpdatedTime" not in env or env["LastUpdatedTime"] == env["CreationTime"], env


def test_the_workload_is_registered_in_copilots_json(copilot_app):
    ws = copilot_app
    p = ws.client("ssm").get_parameter(Name=f"/copilot/applications/{ws.app}/components/mailer")["Parameter"]
    assert p["Value"] == f'{{"app":"{ws.app}","name":"mailer","type":"Scheduled Job"}}'
    assert json.loads(p["Value"])["type"] == "Scheduled Job"
    tags = ws.client("ssm").list_tags_for_resource(ResourceType="Parameter", ResourceId=p["Name"])["TagList"]
    assert {t["Key"]: t["Value"] for t in tags} == {"copilot-application": ws.app, "copilot-service": "mailer"}


def test_the_region_comes_from_copilots_entry_and_a_rerun_is_up_to_date(copilot_app):
    ws = copilot_app
    # AWS_DEFAULT_REGION says eu-west-3 and copilot-doit.yml names no region for `test`: the stacks are in
    # us-east-1, where Copilot's SSM entry puts the environment.
    again = ws.run("deploy", "name=mailer", "env=test", **ws.aws)
    assert all(v == "--" for v in marks(again.stdout).values()), again.stdout
    assert "region us-east-1 from Copilot's SSM entry" in again.stdout, again.stdout


def test_a_foreign_stack_of_a_workloads_name_is_refused(copilot_app):
    ws = copilot_app
    cfn = ws.client("cloudformation")
    foreign = f"{ws.app}-test-api"
    cfn.create_stack(StackName=foreign, TemplateBody='{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}',
                     Tags=[{"Key": "team", "Value": "payments"}])
    p = ws.run("deploy", "name=api", "env=test", check=False, **ws.aws)
    assert p.returncode != 0 and "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    assert f"stack {foreign} exists but was created by neither copilot-doit nor Copilot" in p.stdout + p.stderr
    stack = cfn.describe_stacks(StackName=foreign)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE" and {t["Key"] for t in stack["Tags"]} == {"team"}
    assert cfn.get_template(StackName=ws.env_stack)["TemplateBody"] == ws.template_before


def test_an_account_other_than_copilots_entry_is_refused_before_any_change(copilot_app):
    ws = copilot_app
    ssm = ws.client("ssm")
    name = f"/copilot/applications/{ws.app}/environments/test"
    value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    ssm.put_parameter(Name=name, Type="String", Overwrite=True, Value=value.replace(ACCOUNT, "210987654321")
                      .replace('"managerRoleARN":"arn:aws:iam::210987654321:role/', '"managerRoleARN":"'))
    try:
        p = ws.run("deploy", "name=mailer", "env=test", "force=1", check=False, **ws.aws)
    finally:
        ssm.put_parameter(Name=name, Type="String", Overwrite=True, Value=value)
    text = p.stdout + p.stderr
    assert p.returncode != 0 and "Traceback" not in text, text
    assert "Copilot registered environment 'test' in account 210987654321" in text, text
    assert not [c for c in ws.mutating() if c.startswith("cloudformation:")], ws.mutating()
