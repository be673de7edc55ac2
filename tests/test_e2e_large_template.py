"""A template over CloudFormation's 51,200-byte TemplateBody limit is uploaded to the artifact bucket
and deployed by TemplateURL (as Copilot does); a small one still goes as TemplateBody."""
from __future__ import annotations

import pytest

from conftest import marks

pytestmark = pytest.mark.e2e


def test_large_template_goes_by_url(workspace):
    ws = workspace
    manifest = ws.manifests / "api" / "manifest.yml"
    text = manifest.read_text()
    many = "".join(f"  SETTING_{i:04d}: {'v' * 80}\n" for i in range(600))
    assert "\nvariables:\n" in text
    manifest.write_text(text.replace("\nvariables:\n", "\nvariables:\n" + many, 1))
    out = ws.run("deploy", "name=api", "env=test").stdout
    assert "over CloudFormation's 51,200-byte TemplateBody limit" in out, out
    calls = [c for c in ws.api_calls() if c["operation"] == "CreateChangeSet"]
    by_url = [c for c in calls if "TemplateURL" in c.get("params", {})]
    assert len(by_url) == 1 and f"/manual/templates/{ws.app}-test-api/" in by_url[0]["params"]["TemplateURL"], calls
    assert len(calls) == 2  # the env stack's is small: TemplateBody
    stack = ws.client("cloudformation").describe_stacks(StackName=f"{ws.app}-test-api")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    body = ws.client("cloudformation").get_template(StackName=f"{ws.app}-test-api")["TemplateBody"]
    assert "SETTING_0599" in str(body)
    again = ws.run("deploy", "name=api", "env=test")
    assert marks(again.stdout)["deploy:api@test"] == "--", again.stdout
