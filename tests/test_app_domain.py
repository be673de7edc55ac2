"""The application domain (`copilot-doit.yml`: `application: {domain: ...}`): read, checked as Copilot
checks aliases, rendered as plain CloudFormation (env hosted zone, delegation, certificate, HTTPS listener,
alias records; the service's default record), and deployed on the local target."""
from __future__ import annotations

from pathlib import Path

import pytest

from copilot_doit import domain, manifest, templates
from copilot_doit.errors import UserError
from copilot_doit.templates import env as env_t
from copilot_doit.templates import workload
from copilot_doit.workspace import load_workspace

REPO = Path(__file__).resolve().parents[1]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/demo/x@sha256:" + "a" * 64
ZONES = {"app": "Z0APPZONE0000000000", "root": "Z0ROOTZONE000000000"}
LBWS = """name: web
type: Load Balanced Web Service
image:
  location: nginx
  port: 80
http:
  path: '/'
"""


@pytest.fixture(scope="module")
def lint():
    from cfnlint.api import lint as run
    return lambda body: [(m.rule.id, m.linenumber, m.message) for m in run(body, regions=["us-east-1"])]


# --- copilot-doit.yml ---------------------------------------------------------------------------------
def _workspace(tmp_path: Path, config: str) -> Path:
    d = tmp_path / "copilot"
    d.mkdir()
    (d / ".workspace").write_text("application: demo\n")
    (d / "copilot-doit.yml").write_text(config)
    return d


def test_the_domain_is_read(tmp_path):
    d = _workspace(tmp_path, "environments:\n  test: {target: local}\napplication:\n  domain: example.com\n")
    assert load_workspace(d).domain == "example.com"


def test_without_the_block_there_is_no_domain(tmp_path):
    d = _workspace(tmp_path, "environments:\n  test: {target: local}\n")
    assert load_workspace(d).domain is None


@pytest.mark.parametrize("config, field, line, needle", [
    ("application: example.com\n", "application", 1, "must be a mapping"),
    ("application:\n  domain: example.com\n  name: x\n", "application.name", 3, "not a known application setting"),
    ("application:\n  domain: [example.com]\n", "application.domain", 2, "must be a string"),
    ("application:\n  domain: Example_Com\n", "application.domain", 2, "is not a DNS name"),
    ("application:\n  domain: localhost\n", "application.domain", 2, "is not a DNS name"),
    ("application:\n  domain: example.com.\n", "application.domain", 2, "is not a DNS name"),
    ("application:\n  domain: -bad.example.com\n", "application.domain", 2, "is not a DNS name"),
])
def test_bad_application_settings_name_file_field_and_line(tmp_path, config, field, line, needle):
    d = _workspace(tmp_path, config)
    with pytest.raises(UserError) as e:
        load_workspace(d)
    assert e.value.file.endswith("copilot-doit.yml") and e.value.field == field and e.value.line == line
    assert needle in e.value.message
    assert "Traceback" not in str(e.value)


# --- which zone an alias lives in ---------------------------------------------------------------------
@pytest.mark.parametrize("alias, zone", [
    ("example.com", "root"), ("www.example.com", "root"), ("demo.example.com", "app"),
    ("api.demo.example.com", "app"), ("test.demo.example.com", "env"), ("web.test.demo.example.com", "env"),
    ("a.b.example.com", None), ("exampleXcom", None), ("wwwexample.com", None), ("example.com.evil.org", None),
    ("x.demoXexample.com", None), ("a.b.test.demo.example.com", None), ("", None),
])
def test_zone_of_is_exact(alias, zone):
    assert domain.zone_of(alias, "demo", "test", "example.com") == zone


# --- Copilot's checks before a deploy -------------------------------------------------------------------
def _manifest(tmp_path: Path, body: str, env: str = "test"):
    p = tmp_path / "web" / "manifest.yml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(body)
    return manifest.load_workload(p, "demo", env, "web")


CERTS = {"http": {"public": {"certificates": ["arn:aws:acm:us-east-1:111122223333:certificate/x"]}}}


@pytest.mark.parametrize("extra, env_data, app_domain, field, line, needle", [
    ("  alias: web.example.com\n", {}, None, "http.alias", 8,
     'cannot specify "alias" when application is not associated with a domain and env test doesn\'t import'),
    ("  additional_rules:\n    - path: admin\n      alias: admin.example.com\n", {}, None,
     "http.additional_rules[0].alias", 10, 'cannot specify "alias"'),
    ("  redirect_to_https: true\n", {}, None, "http.redirect_to_https", 8,
     'cannot configure http to https redirect without having a domain associated with the app "demo" or '
     'importing any certificates in env "test"'),
    ("  alias:\n    - name: web.example.com\n      hosted_zone: Z123\n", {}, "example.com", "http.alias", 8,
     "cannot specify alias hosted zones ['Z123'] when no certificates are imported in environment \"test\""),
    ("  alias: web.example.com\n  hosted_zone: Z123\n", {}, "example.com", "http.hosted_zone", 9,
     "cannot specify alias hosted zones"),
    ("  alias: [web.example.com, web.other.org]\n", {}, "example.com", "http.alias[1]", 8,
     'alias "web.other.org" is not supported in hosted zones managed by Copilot'),
    ("  alias: a.b.example.com\n", {}, "example.com", "http.alias", 8,
     'alias "a.b.example.com" is not supported in hosted zones managed by Copilot'),
    ("nlb:\n  port: 443/tcp\n  alias: web.example.com\n", {}, None, "nlb.alias", 10,
     "cannot specify nlb.alias when application is not associated with a domain"),
    ("nlb:\n  port: 443/tcp\n  alias: web.example.com\n", CERTS, "example.com", "nlb.alias", 10,
     "cannot specify nlb.alias when env test imports one or more certificates"),
    ("nlb:\n  port: 443/tcp\n  alias: [web.org]\n", {}, "example.com", "nlb.alias[0]", 10,
     'alias "web.org" is not supported in hosted zones managed by Copilot'),
])
def test_copilots_alias_checks(tmp_path, extra, env_data, app_domain, field, line, needle):
    m = _manifest(tmp_path, LBWS + extra)
    with pytest.raises(UserError) as e:
        domain.check_workload(m, env_data, "demo", app_domain)
    assert e.value.field == field and e.value.line == line, str(e.value)
    assert needle in e.value.message, e.value.message
    assert e.value.file.endswith("web/manifest.yml")
    if "not supported in hosted zones" in needle:
        assert e.value.allowed == ("<name>.test.demo.example.com, test.demo.example.com, <name>.demo.example.com, "
                                   "demo.example.com, <name>.example.com, example.com")


@pytest.mark.parametrize("extra, env_data, app_domain", [
    ("  alias: [example.com, web.example.com, demo.example.com, a.demo.example.com, test.demo.example.com, "
     "b.test.demo.example.com]\n", {}, "example.com"),
    ("  alias: anything.org\n  redirect_to_https: false\n", CERTS, None),                # the certificates decide
    ("  alias:\n    - name: a.org\n      hosted_zone: Z1\n", CERTS, None),
    ("  alias: web.example.com\n", {"cdn": {"certificate": "arn:aws:acm:us-east-1:1:certificate/c"}}, None),
    ("  redirect_to_https: true\n", {}, "example.com"),
    ("nlb:\n  port: 443/tcp\n  alias: [web.test.demo.example.com]\n", {}, "example.com"),
    ("", {}, None),
])
def test_what_copilot_accepts(tmp_path, extra, env_data, app_domain):
    domain.check_workload(_manifest(tmp_path, LBWS + extra), env_data, "demo", app_domain)


def test_the_check_reads_the_environment_override(tmp_path):
    body = LBWS + "  alias: test.example.com\nenvironments:\n  prod:\n    http:\n      alias: prod.other.org\n"
    domain.check_workload(_manifest(tmp_path, body, "test"), {}, "demo", "example.com")
    with pytest.raises(UserError) as e:
        domain.check_workload(_manifest(tmp_path, body, "prod"), {}, "demo", "example.com")
    assert e.value.field == "http.alias" and e.value.line == 12


def test_other_workload_types_are_not_checked_here(tmp_path):
    m = _manifest(tmp_path, LBWS.replace("Load Balanced Web Service", "Backend Service") + "  alias: x.org\n")
    domain.check_workload(m, {}, "demo", None)


# --- the env stack --------------------------------------------------------------------------------------
ALIASES = ["web.example.com", "example.com", "api.demo.example.com", "test.demo.example.com", "x.test.demo.example.com"]


def _env(data: dict | None = None, aliases=ALIASES, **kw):
    return env_t.render("demo", "test", data or {}, domain="example.com", zone_ids=ZONES, aliases=aliases, **kw)[0]


def test_env_hosted_zone_and_delegation():
    r = _env()["Resources"]
    assert r["EnvironmentHostedZone"]["Type"] == "AWS::Route53::HostedZone"
    assert r["EnvironmentHostedZone"]["Properties"]["Name"] == {"Fn::Sub": "${EnvironmentName}.${AppName}.example.com"}
    ns = r["EnvironmentHostedZoneDelegation"]
    assert ns["Type"] == "AWS::Route53::RecordSet"
    assert ns["Properties"]["HostedZoneId"] == ZONES["app"] and ns["Properties"]["Type"] == "NS"
    assert ns["Properties"]["ResourceRecords"] == {"Fn::GetAtt": ["EnvironmentHostedZone", "NameServers"]}


def test_env_certificate_names_and_validation_zones():
    cert = _env()["Resources"]["HTTPSCert"]
    assert cert["Type"] == "AWS::CertificateManager::Certificate"
    p = cert["Properties"]
    assert p["DomainName"] == "test.demo.example.com" and p["ValidationMethod"] == "DNS"
    assert p["SubjectAlternativeNames"] == ["*.test.demo.example.com", "web.example.com", "example.com",
                                            "api.demo.example.com", "x.test.demo.example.com"]
    env_zone = {"Ref": "EnvironmentHostedZone"}
    assert {o["DomainName"]: o["HostedZoneId"] for o in p["DomainValidationOptions"]} == {
        "test.demo.example.com": env_zone, "web.example.com": ZONES["root"], "example.com": ZONES["root"],
        "api.demo.example.com": ZONES["app"], "x.test.demo.example.com": env_zone}
    assert cert["DependsOn"] == "EnvironmentHostedZoneDelegation"


def test_env_https_listener_records_and_outputs():
    t = _env()
    r, o = t["Resources"], t["Outputs"]
    li = r["HTTPSListener"]["Properties"]
    assert li["Protocol"] == "HTTPS" and li["Port"] == 443 and li["Certificates"] == [{"CertificateArn": {"Ref": "HTTPSCert"}}]
    assert r["HTTPListener"]["Properties"]["Port"] == 80                      # HTTP stays (workloads redirect)
    assert {i["FromPort"] for i in r["PublicLoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]} == {80, 443}
    records = {k: v["Properties"] for k, v in r.items() if k.startswith("AliasRecordsIn")}
    assert {k: (p["HostedZoneId"], [s["Name"] for s in p["RecordSets"]]) for k, p in records.items()} == {
        "AliasRecordsInEnvironmentZone": ({"Ref": "EnvironmentHostedZone"}, ["test.demo.example.com", "x.test.demo.example.com"]),
        "AliasRecordsInAppZone": (ZONES["app"], ["api.demo.example.com"]),
        "AliasRecordsInRootZone": (ZONES["root"], ["web.example.com", "example.com"])}
    target = records["AliasRecordsInRootZone"]["RecordSets"][0]["AliasTarget"]
    assert target == {"HostedZoneId": {"Fn::GetAtt": ["PublicLoadBalancer", "CanonicalHostedZoneID"]},
                      "DNSName": {"Fn::GetAtt": ["PublicLoadBalancer", "DNSName"]}}
    assert o["EnvironmentHostedZone"]["Value"] == {"Ref": "EnvironmentHostedZone"}
    assert o["EnvironmentHostedZone"]["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-HostedZone"}
    assert o["EnvironmentSubdomain"]["Value"] == {"Fn::Sub": "${EnvironmentName}.${AppName}.example.com"}
    assert o["EnvironmentSubdomain"]["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-SubDomain"}
    assert o["HTTPSListenerArn"]["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-HTTPSListenerArn"}
    assert set(o) <= set(env_t.EXPORTS)


def test_env_exports_match_copilots_golden_names():
    golden = (REPO.parent / "shared/copilot-fixtures/stack-golden/environments/template-with-basic-manifest.yml")
    if not golden.exists():
        pytest.skip("copilot-fixtures not beside the repo")
    text = golden.read_text()
    assert "Name: !Sub ${AWS::StackName}-HostedZone" in text and "Name: !Sub ${AWS::StackName}-SubDomain" in text


def test_env_with_domain_lints_clean(lint):
    assert lint(templates.dump(_env())) == []
    assert lint(templates.dump(_env(aliases=[]))) == []


def test_imported_certificates_keep_the_listener_and_aliases_the_users():
    certs = {"http": {"public": {"certificates": ["arn:aws:acm:us-east-1:111122223333:certificate/x"]}}}
    r = _env(certs, aliases=[])["Resources"]
    assert "EnvironmentHostedZone" in r and "EnvironmentHostedZoneDelegation" in r
    assert "HTTPSCert" not in r and not any(k.startswith("AliasRecordsIn") for k in r)
    assert r["HTTPSListener"]["Properties"]["Certificates"] == [{"CertificateArn": certs["http"]["public"]["certificates"][0]}]


def test_without_a_domain_the_env_stack_is_unchanged():
    em = manifest.load_environment(REPO / "manifests/environments/test/manifest.yml", "demo", "test")
    assert env_t.render("demo", "test", em.data) == env_t.render("demo", "test", em.data, domain=None, zone_ids=None)
    t, _ = env_t.render("demo", "test", em.data)
    assert "EnvironmentHostedZone" not in t["Resources"] and "HTTPSListener" not in t["Resources"]


def test_https_follows_the_domain_for_public_services_only():
    assert env_t.https({}, manifest.LBWS, "example.com") and not env_t.https({}, manifest.LBWS, None)
    assert not env_t.https({}, manifest.BACKEND, "example.com")


# --- the service stack ---------------------------------------------------------------------------------
def _svc(tmp_path, body=LBWS, app_domain="example.com", zone_ids=ZONES):
    m = _manifest(tmp_path, body)
    extra = {"app_domain": app_domain, "zone_ids": zone_ids} if app_domain else {}
    return workload.render(workload.RenderInput(m, "demo", "test", IMAGE, https=bool(app_domain), extra=extra))


def test_service_without_alias_gets_the_default_record(tmp_path, lint):
    t, _ = _svc(tmp_path)
    r = t["Resources"]
    rec = r["LoadBalancerDNSAlias"]
    assert rec["Type"] == "AWS::Route53::RecordSetGroup"
    assert rec["Properties"]["HostedZoneId"] == {"Fn::ImportValue": {"Fn::Sub": "${AppName}-${EnvName}-HostedZone"}}
    sub_domain = {"Fn::ImportValue": {"Fn::Sub": "${AppName}-${EnvName}-SubDomain"}}
    assert rec["Properties"]["RecordSets"][0]["Name"] == {"Fn::Join": [".", [{"Ref": "WorkloadName"}, sub_domain, ""]]}
    assert r["HTTPSListenerRule"]["Properties"]["ListenerArn"] == {
        "Fn::ImportValue": {"Fn::Sub": "${AppName}-${EnvName}-HTTPSListenerArn"}}
    assert r["HTTPListenerRedirectRule"]["Properties"]["Actions"][0]["Type"] == "redirect"
    hosts = [c for c in r["HTTPSListenerRule"]["Properties"]["Conditions"] if c["Field"] == "host-header"]
    assert hosts == [{"Field": "host-header", "HostHeaderConfig": {"Values": [
        {"Fn::Join": [".", [{"Ref": "WorkloadName"}, sub_domain]]}]}}]
    assert lint(templates.dump(t)) == []


def test_service_with_aliases_keeps_its_host_headers_and_no_default_record(tmp_path, lint):
    t, _ = _svc(tmp_path, LBWS + "  alias: [web.example.com]\n")
    r = t["Resources"]
    assert "LoadBalancerDNSAlias" not in r
    hosts = [c for c in r["HTTPSListenerRule"]["Properties"]["Conditions"] if c["Field"] == "host-header"]
    assert hosts == [{"Field": "host-header", "HostHeaderConfig": {"Values": ["web.example.com"]}}]
    assert lint(templates.dump(t)) == []


def test_service_without_a_domain_is_unchanged(tmp_path):
    t, _ = _svc(tmp_path, app_domain=None)
    assert "LoadBalancerDNSAlias" not in t["Resources"] and "HTTPSListenerRule" not in t["Resources"]


def test_nlb_aliases_get_records_in_their_zones(tmp_path, lint):
    body = LBWS + "nlb:\n  port: 443/tcp\n  alias: [web.test.demo.example.com, web.example.com]\n"
    t, _ = _svc(tmp_path, body)
    r = t["Resources"]
    env_rec = r["NLBAliasRecordsInEnvironmentZone"]["Properties"]
    assert env_rec["HostedZoneId"] == {"Fn::ImportValue": {"Fn::Sub": "${AppName}-${EnvName}-HostedZone"}}
    assert [s["Name"] for s in env_rec["RecordSets"]] == ["web.test.demo.example.com"]
    root_rec = r["NLBAliasRecordsInRootZone"]["Properties"]
    assert root_rec["HostedZoneId"] == ZONES["root"]
    assert root_rec["RecordSets"][0]["AliasTarget"]["DNSName"] == {"Fn::GetAtt": ["PublicNetworkLoadBalancerV2", "DNSName"]}
    assert lint(templates.dump(t)) == []


def test_lbws_aliases_are_what_the_env_certifies(tmp_path):
    m = _manifest(tmp_path, LBWS + "  alias: [a.example.com, {name: b.example.com}]\n  additional_rules:\n"
                  "    - path: admin\n      alias: [a.example.com, c.example.com]\n")
    assert domain.lbws_aliases([m]) == ["a.example.com", "b.example.com", "c.example.com"]


# --- the zones of the domain, as facts of the world ----------------------------------------------------
def test_aws_target_finds_the_public_zone_or_names_the_setting():
    from moto import mock_aws

    from copilot_doit.targets.aws import AwsTarget
    from copilot_doit.workspace import EnvSettings
    with mock_aws():
        import boto3
        r53 = boto3.client("route53", region_name="us-east-1")
        zid = r53.create_hosted_zone(Name="demo.example.com", CallerReference="a")["HostedZone"]["Id"].split("/")[-1]
        r53.create_hosted_zone(Name="example.com", CallerReference="b", VPC={"VPCRegion": "us-east-1", "VPCId": "vpc-1"},
                               HostedZoneConfig={"PrivateZone": True, "Comment": ""})
        t = AwsTarget(EnvSettings(name="test"), Path("/nonexistent"))
        assert t.hosted_zone_id("demo.example.com") == zid
        with pytest.raises(UserError) as e:
            t.hosted_zone_id("example.com")                                 # private only: not the domain's
        assert e.value.field == "application.domain" and "copilot app init --domain" in e.value.allowed


def test_local_target_refuses_to_start_the_emulator_for_a_package(tmp_path, monkeypatch):
    from copilot_doit.targets.local import LocalTarget
    from copilot_doit.workspace import EnvSettings
    monkeypatch.setenv("COPILOT_DOIT_LOCAL_DIR", str(tmp_path / "local"))
    t = LocalTarget(EnvSettings(name="test", target="local"), tmp_path / "cache")
    with pytest.raises(UserError) as e:
        t.hosted_zone_id("demo.example.com", start=False)
    assert e.value.field == "application.domain" and "not running" in e.value.message
    assert not (tmp_path / "local").exists()


def test_the_name_servers_stand_in_replaces_only_hosted_zone_name_servers():
    from copilot_doit.targets.local import name_servers_stand_in
    t = _env()
    t["Resources"]["Other"] = {"Type": "AWS::EC2::VPC", "Properties": {"X": {"Fn::GetAtt": ["VPC", "NameServers"]}}}
    notes = name_servers_stand_in(t)
    assert len(notes) == 1 and "EnvironmentHostedZoneDelegation" in notes[0]
    assert t["Resources"]["EnvironmentHostedZoneDelegation"]["Properties"]["ResourceRecords"][0].startswith("ns-")
    assert t["Resources"]["Other"]["Properties"]["X"] == {"Fn::GetAtt": ["VPC", "NameServers"]}


# --- end to end on the local target ---------------------------------------------------------------------
@pytest.mark.e2e
def test_deploy_with_a_domain_on_the_local_target(workspace):
    from conftest import marks
    ws = workspace
    cfg = ws.manifests / "copilot-doit.yml"
    cfg.write_text(cfg.read_text() + "application:\n  domain: example.com\n")
    ws.commit("domain")
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    assert "local compat: removed resource HTTPSCert (AWS::CertificateManager::Certificate)" in out, out
    r53 = ws.client("route53")

    def records():
        out = {}
        for z in r53.list_hosted_zones()["HostedZones"]:
            for rr in r53.list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"]:
                out.setdefault(z["Name"].rstrip("."), set()).add((rr["Name"].rstrip("."), rr["Type"]))
        return out

    app_zone, env_zone = f"{ws.app}.example.com", f"test.{ws.app}.example.com"
    got = records()
    assert (env_zone, "NS") in got[app_zone], got                          # the delegation
    assert (f"frontend.{env_zone}", "A") in got[env_zone], got              # LoadBalancerDNSAlias
    again = ws.run("deploy", "name=frontend", "env=test").stdout
    assert set(marks(again).values()) == {"--"}, again                      # a rerun is a no-op
    # aliases: the env stack certifies them and points them at its load balancer
    fe = ws.manifests / "frontend" / "manifest.yml"
    fe.write_text(fe.read_text().replace("  healthcheck: /healthz\n",
                                         f"  healthcheck: /healthz\n  alias: [shop.example.com, www.{app_zone}]\n"))
    ws.commit("aliases")
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    m = marks(out)
    assert (m["env:test"], m["deploy:frontend@test"]) == (".", "."), out
    got = records()
    assert ("shop.example.com", "A") in got["example.com"], got
    assert (f"www.{app_zone}", "A") in got[app_zone], got
    again = ws.run("deploy", "name=frontend", "env=test").stdout
    assert set(marks(again).values()) == {"--"}, again


def test_copilots_app_with_domain_fixture_needs_the_domain(monkeypatch):
    """Copilot's e2e app `app-with-domain` (created with `copilot app init --domain $DOMAINNAME`)."""
    path = REPO.parent / "shared/copilot-fixtures/e2e/app-with-domain/copilot/hello/manifest.yml"
    if not path.exists():
        pytest.skip("copilot-fixtures not beside the repo")
    monkeypatch.setenv("DOMAINNAME", "example.com")
    for env in ("test", "prod"):
        m = manifest.load_workload(path, "my-app", env)
        domain.check_workload(m, {}, "my-app", "example.com")
        with pytest.raises(UserError) as e:
            domain.check_workload(m, {}, "my-app", None)
        assert e.value.field == "http.alias" and 'cannot specify "alias"' in e.value.message


def test_additional_rules_inherit_the_hosted_zone(tmp_path):
    m = _manifest(tmp_path, LBWS + "  hosted_zone: Z1\n  additional_rules:\n    - path: admin\n      alias: a.example.com\n")
    with pytest.raises(UserError) as e:
        domain.check_workload(m, {}, "demo", "example.com")
    assert e.value.field == "http.hosted_zone" and e.value.line == 8
    assert domain.lbws_aliases([m]) == []
