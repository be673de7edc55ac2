"""Copilot's overrides/ (YAML patches) and environment addons, applied in the pipeline (issue #8)."""
from __future__ import annotations

import pytest

from conftest import marks

pytestmark = pytest.mark.e2e

PATCH = """\
- op: add
  path: /Resources/LogGroup/Properties/RetentionInDays
  value: 14
- op: add
  path: /Outputs/PatchedBy
  value:
    Value: copilot-doit-overrides
"""

ENV_ADDON = """\
Parameters:
  App: {Type: String}
  Env: {Type: String}
Resources:
  EnvNotices:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !Sub '${App}-${Env}-notices'
Outputs:
  NoticesArn:
    Value: !Ref EnvNotices
"""


def test_workload_yaml_patches_are_applied_and_keyed(workspace):
    ws = workspace
    folder = ws.manifests / "api" / "overrides"
    folder.mkdir()
    (folder / "cfn.patches.yml").write_text(PATCH)
    ws.run("deploy", "name=api", "env=test")
    cfn = ws.client("cloudformation")
    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in cfn.describe_stacks(StackName=f"{ws.app}-test-api")["Stacks"][0].get("Outputs", [])}
    assert outputs.get("PatchedBy") == "copilot-doit-overrides", outputs
    assert "RetentionInDays: 14" in str(cfn.get_template(StackName=f"{ws.app}-test-api")["TemplateBody"]) or \
        "'RetentionInDays': 14" in str(cfn.get_template(StackName=f"{ws.app}-test-api")["TemplateBody"])
    (folder / "cfn.patches.yml").write_text(PATCH.replace("14", "30"))
    out = ws.run("deploy", "name=api", "env=test").stdout
    m = marks(out)
    assert (m["build:api@test"], m["package:api@test"], m["deploy:api@test"]) == ("--", ".", "."), out
    assert "overrides/ changed" in out, out


def test_a_bad_patch_is_one_error_and_nothing_applied(workspace):
    ws = workspace
    folder = ws.manifests / "api" / "overrides"
    folder.mkdir()
    (folder / "cfn.patches.yml").write_text("- op: replace\n  path: /Resources/NoSuchThing/Type\n  value: x\n")
    p = ws.run("deploy", "name=api", "env=test", check=False)
    assert p.returncode != 0 and "Traceback" not in p.stdout + p.stderr
    assert "cfn.patches.yml" in p.stdout and "NoSuchThing" in p.stdout, p.stdout
    assert not any(s["StackName"] == f"{ws.app}-test-api" for s in ws.stacks())


def test_environment_addons_deploy_as_a_nested_stack(workspace):
    ws = workspace
    folder = ws.manifests / "environments" / "addons"
    folder.mkdir()
    (folder / "notices.yml").write_text(ENV_ADDON)
    out = ws.run("deploy", "name=api", "env=test").stdout
    assert "addons (merged)" in out or "uploaded s3://" in out, out
    nested = [s for s in ws.stacks() if s["StackName"].startswith(f"{ws.app}-test-AddonsStack")]
    assert nested and nested[0]["StackStatus"] == "CREATE_COMPLETE", [s["StackName"] for s in ws.stacks()]
    again = ws.run("deploy", "name=api", "env=test").stdout
    assert marks(again)["env:test"] == "--", again
