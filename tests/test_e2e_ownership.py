"""Ownership of stacks (issue #11 scope 3): an environment stack Copilot created is used as it is, a
workload stack Copilot created is updated (keeping Copilot's custom resources), a stack another tool made is
never touched."""
from __future__ import annotations

import json

import pytest
import yaml

from conftest import marks

pytestmark = pytest.mark.e2e


def _copilot_made_env_stack(ws, env: str) -> str:
    """An environment stack as Copilot leaves it: Copilot's tags, no copilot-doit key (the body: our own
    env template, adapted to the emulator, so its exports serve the workload)."""
    from copilot_doit.targets.local import compat
    from copilot_doit.templates import dump
    out = ws.run("env", "package", "-n", env, tool="cli").stdout
    body = out[:out.index("\n{\n") + 1]
    template, _ = compat.adapt(yaml.safe_load(body), set())
    cfn = ws.client("cloudformation")
    name = f"{ws.app}-{env}"
    cfn.create_stack(StackName=name, TemplateBody=dump(template),
                     Parameters=[{"ParameterKey": "AppName", "ParameterValue": ws.app},
                                 {"ParameterKey": "EnvironmentName", "ParameterValue": env}],
                     Tags=[{"Key": "copilot-application", "Value": ws.app}, {"Key": "copilot-environment", "Value": env}],
                     Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
    return name


def test_a_copilot_environment_stack_is_used_as_it_is(workspace):
    ws = workspace
    cfn = ws.client("cloudformation")
    name = _copilot_made_env_stack(ws, "test")
    before = json.dumps(cfn.get_template(StackName=name)["TemplateBody"], sort_keys=True, default=str)
    out = ws.run("deploy", "name=api", "env=test").stdout
    m = marks(out)
    assert m["env:test"] == "--" and m["deploy:api@test"] == ".", out
    assert "was created by Copilot: used as it is" in out, out
    assert cfn.describe_stacks(StackName=f"{ws.app}-test-api")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    after = json.dumps(cfn.get_template(StackName=name)["TemplateBody"], sort_keys=True, default=str)
    assert after == before                                   # byte for byte: not updated
    assert ws.run("deploy", "name=api", "env=test").stdout.count("\n.  ") == 0   # and a no-op after
    # Only on purpose:
    forced = ws.run("deploy", "name=api", "env=test", "deploy-env=1").stdout
    assert marks(forced)["env:test"] == ".", forced


def test_a_copilot_workload_stack_is_updated_with_copilot_doits_template(workspace):
    """A workload stack Copilot made (its tags, no copilot-doit key) is updated in place. The emulator holds
    no custom resources (moto does not run them), so this one has none to keep: tests/test_copilot_resources.py
    checks the keeping on Copilot's golden stacks."""
    ws = workspace
    ws.run("deploy", "name=api", "env=test")
    cfn = ws.client("cloudformation")
    stack = f"{ws.app}-test-api"
    cfn.delete_stack(StackName=stack)
    cfn.create_stack(StackName=stack, TemplateBody='{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}',
                     Tags=[{"Key": "copilot-application", "Value": ws.app}, {"Key": "copilot-environment", "Value": "test"},
                           {"Key": "copilot-service", "Value": "api"}])
    p = ws.run("deploy", "name=api", "env=test")
    assert marks(p.stdout)["deploy:api@test"] == ".", p.stdout
    assert f"stack {stack} was created by Copilot: updated with copilot-doit's template, keeping Copilot's custom " \
           "resources" in p.stdout, p.stdout
    live = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert live["StackStatus"] == "UPDATE_COMPLETE" and any(t["Key"] == "copilot-doit:deploy-key" for t in live["Tags"])
    assert "AWS::SNS::Topic" not in json.dumps(cfn.get_template(StackName=stack)["TemplateBody"], default=str)
    assert all(v == "--" for v in marks(ws.run("deploy", "name=api", "env=test").stdout).values())


def test_a_foreign_stack_of_our_name_is_never_touched(workspace):
    ws = workspace
    cfn = ws.client("cloudformation")
    cfn.create_stack(StackName=f"{ws.app}-prod", TemplateBody='{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}',
                     Tags=[{"Key": "team", "Value": "someone-else"}])
    p = ws.run("deploy", "name=api", "env=prod", check=False)
    assert p.returncode != 0, p.stdout
    assert "created by neither copilot-doit nor Copilot" in p.stdout and "Traceback" not in p.stdout, p.stdout
    assert not any(s["StackName"] == f"{ws.app}-prod-api" for s in ws.stacks())
    stack = cfn.describe_stacks(StackName=f"{ws.app}-prod")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE" and {t["Key"] for t in stack["Tags"]} == {"team"}
