"""The compat step and the moto model list (pure; imports moto in-process only to compare lists)."""
from __future__ import annotations

from pathlib import Path

from copilot_doit import manifest, templates
from copilot_doit.targets.local import compat
from copilot_doit.templates import workload

REPO = Path(__file__).resolve().parents[1]


def test_moto_types_match_installed_moto():
    from moto.cloudformation.parsing import get_model_map
    installed = {t for t in get_model_map() if t.startswith("AWS::") and t != "AWS::SERVICE::RESOURCE"}
    assert installed == set(compat.MOTO_TYPES)


def render(env="prod"):
    m = manifest.load_workload(REPO / "manifests/frontend/manifest.yml", "demo", env, "frontend")
    return workload.render(workload.RenderInput(m, "demo", env, "repo@sha256:" + "0" * 64))[0]


def test_compat_removes_unemulated_resources_and_references():
    t = render()
    adapted, notes = compat.adapt(t)
    res = adapted["Resources"]
    assert "DiscoveryService" not in res and "AutoScalingTarget" not in res and "AutoScalingPolicyCPU" not in res
    assert res["Service"]["Properties"]["ServiceRegistries"] == []
    assert "DiscoveryServiceARN" not in adapted.get("Outputs", {})
    assert any("DiscoveryService (AWS::ServiceDiscovery::Service)" in n for n in notes)
    assert "DiscoveryService" in t["Resources"]            # the input (what AWS gets) is untouched
    assert templates.dump(compat.adapt(t)[0]) == templates.dump(adapted)  # deterministic


def test_compat_drops_missing_imports_and_nested_outputs():
    t = {"Resources": {
        "Nested": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": "x"}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {
            "ManagedPolicyArns": [{"Fn::GetAtt": ["Nested", "Outputs.Policy"]}, "arn:keep"],
            "Path": {"Fn::ImportValue": {"Fn::Sub": "${AppName}-${EnvName}-Gone"}}}}},
        "Outputs": {"Ok": {"Value": {"Ref": "Role"}}}}
    adapted, notes = compat.adapt(t, missing_imports={"Gone"})
    props = adapted["Resources"]["Role"]["Properties"]
    assert props == {"ManagedPolicyArns": ["arn:keep"]}
    assert adapted["Outputs"] == {"Ok": {"Value": {"Ref": "Role"}}}
