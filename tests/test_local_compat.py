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


def _records_template():
    alias = {"DNSName": {"Fn::ImportValue": "x-PublicLoadBalancerDNSName"}, "HostedZoneId": "Z35SXDOTRQ7X7K"}
    return {"Resources": {
        "UserZoneRecords": {"Type": "AWS::Route53::RecordSetGroup", "Properties": {
            "HostedZoneId": "Z05648843OTPZZQRML482",
            "RecordSets": [{"Name": "frontend.example.com", "Type": "A", "AliasTarget": alias}]}},
        "HeldZoneRecord": {"Type": "AWS::Route53::RecordSet", "Properties": {
            "HostedZoneId": "ZHELD", "Name": "a.held.com", "Type": "A", "AliasTarget": alias}},
        "ByName": {"Type": "AWS::Route53::RecordSet", "Properties": {
            "HostedZoneName": "held.com.", "Name": "b.held.com", "Type": "A", "AliasTarget": alias}},
        "OwnZone": {"Type": "AWS::Route53::HostedZone", "Properties": {"Name": "own.example.com"}},
        "OwnZoneRecord": {"Type": "AWS::Route53::RecordSet", "Properties": {
            "HostedZoneId": {"Ref": "OwnZone"}, "Name": "c.own.example.com", "Type": "A", "AliasTarget": alias}}},
        "Outputs": {"Records": {"Value": {"Ref": "UserZoneRecords"}}, "Zone": {"Value": {"Ref": "OwnZone"}}}}


def test_compat_drops_records_in_a_hosted_zone_the_emulator_lacks():
    asked = []

    def zones():
        asked.append(1)
        return {"ZHELD", "held.com."}

    t = _records_template()
    adapted, notes = compat.adapt(t, hosted_zones=zones)
    assert asked == [1]                                  # asked once, lazily
    assert set(adapted["Resources"]) == {"HeldZoneRecord", "ByName", "OwnZone", "OwnZoneRecord"}
    assert adapted["Outputs"] == {"Zone": {"Value": {"Ref": "OwnZone"}}}
    assert ("removed resource UserZoneRecords (AWS::Route53::RecordSetGroup): its hosted zone Z05648843OTPZZQRML482 "
            "is not in the emulator (a zone of your AWS account)") in notes
    assert "removed output Records (built from a resource the emulator lacks)" in notes
    assert "UserZoneRecords" in t["Resources"]            # the template AWS gets is untouched
    # A "/hostedzone/" prefix is the same zone; zone names match with or without the final dot.
    t2 = {"Resources": {"R": {"Type": "AWS::Route53::RecordSet", "Properties": {"HostedZoneId": "/hostedzone/ZHELD"}},
                        "N": {"Type": "AWS::Route53::RecordSet", "Properties": {"HostedZoneName": "held.com"}}}}
    assert set(compat.adapt(t2, hosted_zones={"ZHELD", "held.com."})[0]["Resources"]) == {"R", "N"}


def test_compat_keeps_records_when_the_emulator_zones_are_unknown_or_not_needed():
    t = _records_template()
    adapted, notes = compat.adapt(t)                     # hosted_zones not given: nothing is decided
    assert set(adapted["Resources"]) == set(t["Resources"]) and notes == []

    def never():
        raise AssertionError("no literal zone: the emulator is not asked")
    only_own = {"Resources": {k: v for k, v in t["Resources"].items() if k.startswith("OwnZone")}}
    assert compat.adapt(only_own, hosted_zones=never)[1] == []


def test_compat_drops_listener_certificates_the_emulator_acm_lacks():
    held_arn = "arn:aws:acm:us-east-1:123456789012:certificate/held"
    user_arn = "arn:aws:acm:us-east-1:111122223333:certificate/11111111-2222-3333-4444-555555555555"
    t = {"Resources": {
        "HTTPSListener": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "Port": 443, "Protocol": "HTTPS", "Certificates": [{"CertificateArn": user_arn}]}},
        "Internal": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "Port": 443, "Protocol": "HTTPS", "Certificates": [{"CertificateArn": held_arn}]}},
        "Computed": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "Port": 443, "Protocol": "HTTPS", "Certificates": [{"CertificateArn": {"Ref": "Cert"}}]}}}}
    adapted, notes = compat.adapt(t, certificates=lambda: {held_arn})
    res = adapted["Resources"]
    assert "Certificates" not in res["HTTPSListener"]["Properties"]          # the listener stays, without it
    assert res["Internal"]["Properties"]["Certificates"] == [{"CertificateArn": held_arn}]
    assert res["Computed"] == t["Resources"]["Computed"]
    assert notes == [f"removed HTTPSListener.Properties.Certificates[0]: certificate {user_arn} is not in the "
                     "emulator's ACM (a certificate of your AWS account)"]
    assert t["Resources"]["HTTPSListener"]["Properties"]["Certificates"]     # input untouched
    assert compat.adapt(t)[1] == []                                          # not known: kept
