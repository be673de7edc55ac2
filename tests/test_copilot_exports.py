"""Issue #11 scope 5: an environment stack made by copilot-doit serves Copilot's own workload templates.

Copilot's workload templates read the environment in two ways: `Fn::ImportValue` of `${AppName}-${EnvName}-X`
(exports of the env stack `<app>-<env>`), and `!GetAtt EnvControllerAction.Y` — its env controller
(cf-custom-resources/lib/env-controller.js) answers with the env stack's outputs by key. For each golden
workload template (shared/copilot-fixtures/stack-golden/workloads), copilot-doit's env stack is rendered
with what that workload needs (its load balancer, NAT gateways, EFS, HTTPS) and every X and Y must be
there, or be one of the explicit, reasoned exceptions below; the imported names are also resolved with
the workload's AppName/EnvName and matched against the env stack `<app>-<env>`'s resolved export names.
Then every export and output of Copilot's golden env stacks is checked the same way. A stale exception (now
provided) fails too.

The env stack also carries what Copilot's env controller (the custom resource in those workload stacks)
needs to update it: the parameters it writes, the CFNExecutionRole it passes as RoleARN (and Copilot's
EnvironmentManagerRole), an output that changes with those parameters, and an answer under 4 KB. The last
test deploys the env stack on the local target and plays the env controller's UpdateStack against it.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from copilot_doit import manifest
from copilot_doit.manifest import BACKEND, LBWS
from copilot_doit.templates import env as env_t, env_roles
from conftest import marks
from test_parity import CASES, FIXTURES, _export_name, load_golden, render_ours

CERT = "arn:aws:acm:us-west-2:123456789012:certificate/00000000-0000-0000-0000-000000000000"
SUB = re.compile(r"^\$\{AppName\}-\$\{EnvName\}-(\w+)$")

# What Copilot's templates read that copilot-doit's env stack does not provide, and why.
EXCEPTIONS = {
    # exports (Fn::ImportValue `<app>-<env>-X`, and Copilot's golden env's `${AWS::StackName}-X`)
    "export DefaultHTTPTargetGroup": "no default target group: the listeners' default action is a fixed 404 response",
    "export AppRunnerVpcEndpointId": "Request-Driven Web Services (App Runner) are not supported",
    "export InternalWorkloadsHostedZoneID": "no private hosted zone <env>.<app>.internal: Backend Services are "
                                            "reached by the internal ALB's DNS name or Service Connect",
    "export InternalWorkloadsHostedZoneName": "see InternalWorkloadsHostedZoneID",
    # outputs (by key: the env controller's answer, `!GetAtt EnvControllerAction.Y`)
    "output DefaultHTTPTargetGroupArn": "see export DefaultHTTPTargetGroup",
    "output AppRunnerVpcEndpointId": "see export AppRunnerVpcEndpointId",
    "output InternalWorkloadsHostedZone": "see export InternalWorkloadsHostedZoneID",
    "output InternalWorkloadsHostedZoneName": "see export InternalWorkloadsHostedZoneID",
    "output LastForceDeployID": "Copilot's `env deploy --force` marker; ignored by the env controller's answer",
    "output PublicALBAccessible": "the env controller's condition marker for the public ALB (CreateALB)",
}


def _walk(node, found: dict) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "Fn::ImportValue":
                name = v.get("Fn::Sub") if isinstance(v, dict) else None
                m = SUB.match(name) if isinstance(name, str) else None
                if m:
                    found["export"].add(m.group(1))
                elif "EnvName" in json.dumps(v):  # the environment's, in a shape this walk does not know
                    found["unknown"].add(json.dumps(v))
            if k == "Fn::GetAtt" and isinstance(v, list) and v[0] == "EnvControllerAction":
                found["output"].add(v[1])
            _walk(v, found)
    elif isinstance(node, list):
        for v in node:
            _walk(v, found)


def reads(template: dict) -> dict[str, set]:
    """{"export": X of every Fn::ImportValue ${AppName}-${EnvName}-X, "output": Y of every
    !GetAtt EnvControllerAction.Y} of one Copilot workload template."""
    found: dict[str, set] = {"export": set(), "output": set(), "unknown": set()}
    _walk(template, found)
    return found


def app_env(case) -> tuple[str, str]:
    """AppName and EnvName Copilot rendered the golden workload with: its parameters file (the golden's
    own, or stack-testdata's `<case>.params.json`), else the case's (svc-staging has no file)."""
    for rel in (case.params, f"stack-testdata/workloads/{case.name}.params.json"):
        if rel and (FIXTURES / rel).is_file():
            p = json.loads((FIXTURES / rel).read_text())["Parameters"]
            return p["AppName"], p["EnvName"]
    return case.app, case.env


def provides(template: dict) -> dict[str, set]:
    """{"export": X of every export `${AWS::StackName}-X`, "output": every output key} of an env stack."""
    exports = set()
    for o in (template.get("Outputs") or {}).values():
        name = _export_name(o) if o.get("Export") else None
        if isinstance(name, str) and name.startswith("${AWS::StackName}-"):
            exports.add(name[len("${AWS::StackName}-"):])
    return {"export": exports, "output": set(template.get("Outputs") or {})}


def env_for(case) -> dict:
    """copilot-doit's env stack for the environment this golden workload was rendered against."""
    m = manifest.load_workload(FIXTURES / case.source, case.app, case.env)
    http = m.data.get("http")
    # Copilot rendered it for an environment with HTTPS (as tests/test_parity.py decides it)
    https = case.name == "svc-staging" or bool(case.params) and json.loads(
        (FIXTURES / case.params).read_text())["Parameters"].get("HTTPSEnabled") == "true"
    env_manifest = {"http": {"private": {"certificates": [CERT]}}} if https and m.type == BACKEND else {}
    kw = env_t.needs([m.data])
    t, _ = env_t.render(case.app, case.env, env_manifest, public_alb=m.type == LBWS and http is not False,
                        internal_alb=m.type == BACKEND and isinstance(http, dict),
                        domain="example.com" if https and m.type == LBWS else None,
                        zone_ids={"app": "Z0APPZONE"}, **kw)
    return t


def _missing(needed: dict, got: dict) -> list[str]:
    return sorted(f"{kind} {name}" for kind in ("export", "output") for name in needed[kind] - got[kind])


WORKLOADS = [c for c in CASES if not c.name.startswith("env/")]
ENVS = [c for c in CASES if c.name.startswith("env/")]


@pytest.fixture(autouse=True)
def _fixtures_present():
    if FIXTURES is None or not (FIXTURES / "stack-golden").is_dir():
        pytest.fail("shared/copilot-fixtures/stack-golden is missing")


@pytest.mark.parametrize("case", WORKLOADS, ids=[c.name for c in WORKLOADS])
def test_copilot_workload_templates_find_what_they_read(case, monkeypatch):
    monkeypatch.setenv("TAG", "fixture-tag")
    needed = reads(load_golden(case))
    assert needed["export"], "the golden template imports nothing: the walk is broken"
    assert needed["unknown"] == set(), "an import of the environment's in a shape the walk does not resolve"
    ours = env_for(case)
    missing = [x for x in _missing(needed, provides(ours)) if x not in EXCEPTIONS]
    assert missing == [], f"{case.name}: Copilot's template reads what copilot-doit's env stack lacks: {missing}"
    # The same by resolved name: the workload's `${AppName}-${EnvName}-X` against the env stack `<app>-<env>`
    # (copilot-doit's stack name, stages/env.stack_name) exporting `${AWS::StackName}-X`.
    app, env = app_env(case)
    imported = {f"{app}-{env}-{x}" for x in needed["export"] if f"export {x}" not in EXCEPTIONS}
    exported = {f"{app}-{env}-{x}" for x in provides(ours)["export"]}
    assert imported - exported == set()
    # A removed export is caught: drop any one of them and the check above reports it.
    for x in sorted(needed["export"] & provides(ours)["export"]):
        name = next(k for k, o in ours["Outputs"].items() if o.get("Export") and _export_name(o) == "${AWS::StackName}-" + x)
        mutated = {**ours, "Outputs": {k: o for k, o in ours["Outputs"].items() if k != name}}
        assert f"export {x}" in _missing(needed, provides(mutated)), x


@pytest.mark.parametrize("case", ENVS, ids=[c.name for c in ENVS])
def test_every_export_and_output_of_copilots_env_stack(case):
    """copilot-doit's env stack with everything a workspace can ask of it (both ALBs with certificates,
    NAT gateways, EFS, an application domain) has each of Copilot's exports and outputs, by Copilot's name,
    but the exceptions."""
    theirs = provides(load_golden(case))
    t, _ = env_t.render("demo", "test", {"http": {"public": {"certificates": [CERT]},
                                                  "private": {"certificates": [CERT]}}},
                        public_alb=True, internal_alb=True, nat_gateways=True, managed_efs=True,
                        domain="example.com", zone_ids={"app": "Z0APPZONE"})
    missing = _missing(theirs, provides(t))
    unexplained = [x for x in missing if x not in EXCEPTIONS]
    assert unexplained == [], f"Copilot's env stack has, copilot-doit's lacks: {unexplained}"
    global _SEEN
    _SEEN |= set(missing)


_SEEN: set = set()


def test_no_stale_exception():
    """Each exception is still something Copilot's env stack has and copilot-doit's lacks (this runs after
    the env cases above; alone it checks them itself)."""
    if not _SEEN:
        for case in ENVS:
            test_every_export_and_output_of_copilots_env_stack(case)
    assert sorted(set(EXCEPTIONS) - _SEEN) == []


def test_copilot_names_are_added_beside_copilot_doits_own():
    """The Copilot-named outputs are additions: copilot-doit's own outputs and export names are unchanged
    (its workloads import them), and each Copilot name carries the same value as copilot-doit's."""
    t, _ = env_t.render("demo", "test", {}, nat_gateways=True, managed_efs=True)
    o = t["Outputs"]
    for own in env_t.OWN_EXPORTS:
        if own in o:
            assert o[own]["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-" + own}
    pairs = {"PublicLoadBalancerDNS": "PublicLoadBalancerDNSName", "InternalLoadBalancerDNS": "InternalLoadBalancerDNSName",
             "FilesystemID": "ManagedFileSystemID", "PublicLoadBalancerHostedZone": "CanonicalHostedZoneID",
             "InternalLoadBalancerHostedZone": "InternalLoadBalancerCanonicalHostedZoneID"}
    for copilot, own in pairs.items():
        assert o[copilot]["Value"] == o[own]["Value"], copilot
    assert "Export" not in o["PublicLoadBalancerHostedZone"]  # Copilot exports it as CanonicalHostedZoneID: ours
    assert o["PrivateRouteTableIDs"]["Value"] == {"Fn::Join": [",", [{"Ref": "PrivateRouteTable1"},
                                                                     {"Ref": "PrivateRouteTable2"}]]}
    # without the resource, no output: no public ALB, no NAT, no EFS, an imported VPC
    t, _ = env_t.render("demo", "test", {"network": {"vpc": {"id": "vpc-1", "subnets": {
        "public": [{"id": "subnet-1"}], "private": [{"id": "subnet-2"}]}}}}, public_alb=False)
    assert not {"PublicLoadBalancerDNS", "PublicLoadBalancerHostedZone", "InternetGatewayID", "PublicRouteTableID",
                "PrivateRouteTableIDs", "FilesystemID"} & set(t["Outputs"])
    assert {"InternalLoadBalancerDNS", "InternalLoadBalancerSecurityGroup"} <= set(t["Outputs"])


# --- what Copilot's env controller needs of the stack ------------------------------------------------------
# Not IAM actions (cfn-lint W3037), left out of copilot-doit's copy of Copilot's policy (templates.env_roles).
NOT_IAM_ACTIONS = {"s3:ListBucketByTags", "s3:HeadBucket", "s3:EmptyBucket"}
# Statements of Copilot's EnvironmentManagerRole copilot-doit renders only when told the application's
# artifact bucket and key (env_roles.roles), or never (EmptyELBAccessLogsBucket: s3:EmptyBucket only).
OPTIONAL_SIDS = {"PutObjectsToArtifactBucket", "EncryptObjectsInArtifactBucket", "EmptyELBAccessLogsBucket"}


def test_the_bootstrap_roles_and_their_outputs():
    t, _ = env_t.render("demo", "test", {})
    r, o = t["Resources"], t["Outputs"]
    assert list(r)[:2] == ["CloudformationExecutionRole", "EnvironmentManagerRole"]   # Copilot's order
    for lid, name in (("CloudformationExecutionRole", "CFNExecutionRole"), ("EnvironmentManagerRole", "EnvManagerRole")):
        assert r[lid]["Type"] == "AWS::IAM::Role"
        # per stack: two environments (or two applications) never clash
        assert r[lid]["Properties"]["RoleName"] == {"Fn::Sub": "${AWS::StackName}-" + name}
        assert r[lid]["DeletionPolicy"] == env_roles.DELETION_POLICY == "RetainExceptOnCreate"
    for out, lid in (("CFNExecutionRoleARN", "CloudformationExecutionRole"), ("EnvironmentManagerRoleARN",
                                                                              "EnvironmentManagerRole")):
        assert o[out]["Value"] == {"Fn::GetAtt": [lid, "Arn"]}
        assert o[out]["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-" + out}
    # The manager role trusts ToolsAccountPrincipalARN when set, else the account's root.
    principal = r["EnvironmentManagerRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    cond = env_roles.TOOLS_PRINCIPAL_CONDITION
    assert principal == {"AWS": {"Fn::If": [cond, {"Fn::Sub": "${ToolsAccountPrincipalARN}"},
                                            {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}]}}
    assert t["Conditions"][cond] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ToolsAccountPrincipalARN"}, ""]}]}
    # With or without load balancers, an imported VPC: the roles are always there.
    t, _ = env_t.render("demo", "test", {"network": {"vpc": {"id": "vpc-1", "subnets": {
        "public": [{"id": "subnet-1"}], "private": [{"id": "subnet-2"}]}}}}, public_alb=False, internal_alb=False)
    assert {"CloudformationExecutionRole", "EnvironmentManagerRole"} <= set(t["Resources"])
    assert {"CFNExecutionRoleARN", "EnvironmentManagerRoleARN", "EnabledFeatures"} <= set(t["Outputs"])


def test_a_stack_name_too_long_for_the_role_names_is_one_clear_error():
    from copilot_doit.errors import UserError
    env_t.render("a" * 32, "e" * 14, {})                                       # 47: the longest that fits
    with pytest.raises(UserError, match="CFNExecutionRole.*64 characters"):
        env_t.render("a" * 32, "e" * 15, {})


@pytest.mark.parametrize("case", ENVS, ids=[c.name for c in ENVS])
def test_the_roles_carry_copilots_policies(case, tmp_path):
    """Statement by statement, Copilot's golden roles (the same manifest rendered): the same Sid, effect,
    actions, resources and conditions, but the documented omissions."""
    theirs = load_golden(case)["Resources"]
    ours = render_ours(case, tmp_path)["Resources"]
    a, b = theirs["CloudformationExecutionRole"], ours["CloudformationExecutionRole"]
    assert a["Properties"] == b["Properties"]
    a, b = theirs["EnvironmentManagerRole"]["Properties"], ours["EnvironmentManagerRole"]["Properties"]
    assert {k: v for k, v in a.items() if k not in ("Policies", "AssumeRolePolicyDocument")} == \
        {k: v for k, v in b.items() if k not in ("Policies", "AssumeRolePolicyDocument")}
    trust_a, trust_b = a["AssumeRolePolicyDocument"]["Statement"][0], b["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust_b["Principal"]["AWS"]["Fn::If"][1] == trust_a["Principal"]["AWS"]   # when Copilot passes it
    [pa], [pb] = a["Policies"], b["Policies"]
    assert pa["PolicyName"] == pb["PolicyName"] == "root"
    sa = [s for s in pa["PolicyDocument"]["Statement"] if s["Sid"] not in OPTIONAL_SIDS]
    sb = pb["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in sa] == [s["Sid"] for s in sb]
    for x, y in zip(sa, sb):
        actions = [act for act in x["Action"] if act not in NOT_IAM_ACTIONS]
        assert {**x, "Action": actions} == y, x["Sid"]


def test_the_artifact_bucket_statements_when_the_bucket_is_known():
    bucket, key = "arn:aws:s3:::stackset-demo-bucket", "arn:aws:kms:us-west-2:111122223333:key/k"
    role = env_roles.roles([], artifact_bucket_arn=bucket, artifact_key_arn=key)["EnvironmentManagerRole"]
    st = {s["Sid"]: s for s in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]}
    assert st["PutObjectsToArtifactBucket"]["Resource"] == [bucket, bucket + "/*"]
    assert st["EncryptObjectsInArtifactBucket"]["Resource"] == key


@pytest.mark.parametrize("case", ENVS, ids=[c.name for c in ENVS])
def test_copilots_parameters_as_copilot_declares_them_each_with_a_default(case, tmp_path):
    """The env controller's UpdateStack sends the stack's own parameter list back: every parameter of
    Copilot's env template is declared, with Copilot's type and allowed values; each has a default, so
    copilot-doit passes only AppName and EnvironmentName (stages/env.inputs) and nothing else is required."""
    theirs = load_golden(case)["Parameters"]
    ours = render_ours(case, tmp_path)["Parameters"]
    assert set(theirs) == set(ours) == {"AppName", "EnvironmentName", *env_t.COPILOT_PARAMETERS}
    for name in env_t.COPILOT_PARAMETERS:
        allowed = [str(v).lower() for v in theirs[name].get("AllowedValues") or []] or None
        assert (ours[name]["Type"], ours[name].get("AllowedValues")) == (theirs[name]["Type"], allowed), name
        assert "Default" in ours[name] and (allowed is None or ours[name]["Default"] in allowed), name
    assert {n for n, p in ours.items() if "Default" not in p} == {"AppName", "EnvironmentName"}


def test_copilots_parameter_defaults_say_what_the_stack_is():
    t, _ = env_t.render("demo", "test", {"http": {"private": {"certificates": [CERT]}}},
                        domain="example.com", zone_ids={"app": "Z0APPZONE"})
    defaults = {n: t["Parameters"][n]["Default"] for n in env_t.COPILOT_PARAMETERS}
    assert defaults == {"ALBWorkloads": "", "InternalALBWorkloads": "", "EFSWorkloads": "", "NATWorkloads": "",
                        "AppRunnerPrivateWorkloads": "", "ToolsAccountPrincipalARN": "", "AppDNSName": "example.com",
                        "AppDNSDelegationRole": "", "Aliases": "", "CreateHTTPSListener": "true",
                        "CreateInternalHTTPSListener": "true", "ServiceDiscoveryEndpoint": "test.demo.local"}
    # Copilot's svc deploy takes the service discovery endpoint from the parameter: the namespace's name.
    assert t["Resources"]["ServiceDiscoveryNamespace"]["Properties"]["Name"] == {
        "Fn::Sub": "${EnvironmentName}.${AppName}.local"}
    t, _ = env_t.render("demo", "test", {})
    assert (t["Parameters"]["CreateHTTPSListener"]["Default"], t["Parameters"]["AppDNSName"]["Default"]) == ("false", "")


def test_the_env_controllers_parameters_change_an_output():
    """An UpdateStack that changes only ALBWorkloads & co. must be an update: CloudFormation answers "No
    updates are to be performed" when nothing depends on what changed, the env controller rethrows that,
    and Copilot's workload deploy fails. Copilot's EnabledFeatures output depends on each of them."""
    t, _ = env_t.render("demo", "test", {})
    value = t["Outputs"]["EnabledFeatures"]["Value"]["Fn::Sub"]
    assert {m for m in re.findall(r"\$\{(\w+)\}", value)} == set(env_t.CONTROLLER_PARAMETERS)
    assert "Export" not in t["Outputs"]["EnabledFeatures"]    # the env controller leaves it out of its answer


def test_the_env_controllers_answer_fits_its_4096_bytes():
    """The env controller answers CloudFormation with every output of the env stack but EnabledFeatures and
    LastForceDeployID (env-controller.js getExportedValues); CloudFormation refuses a custom resource
    response over 4096 bytes. copilot-doit's fullest env stack (both ALBs with HTTPS, NAT, EFS, CDN, an
    application domain), each value as long as a real one gets (listener ARNs 160, DNS names 90, three
    subnets), long app, env and workload names."""
    t, _ = env_t.render("a" * 20, "e" * 10, {"http": {"public": {"certificates": [CERT]}, "private": {
        "certificates": [CERT]}}, "cdn": {"certificate": CERT}}, nat_gateways=True, managed_efs=True,
                        domain="example.com", zone_ids={"app": "Z0APPZONE"})

    def length(key):
        if "Listener" in key or key.endswith("RoleARN"):
            return 160
        if "DNS" in key or "Domain" in key:
            return 90
        return {"PublicSubnets": 74, "PrivateSubnets": 74, "PrivateRouteTableIDs": 65}.get(key, 40)
    data = {k: "x" * length(k) for k in t["Outputs"] if k not in ("EnabledFeatures", "LastForceDeployID")}
    stack = "a" * 20 + "-" + "e" * 10 + "-" + "w" * 30
    body = json.dumps({"Status": "SUCCESS", "PhysicalResourceId": f"envcontoller/{'a' * 20}-{'e' * 10}/{'w' * 30}",
                       "StackId": f"arn:aws:cloudformation:ap-southeast-2:123456789012:stack/{stack}/{'0' * 36}",
                       "RequestId": "0" * 36, "LogicalResourceId": "EnvControllerAction", "Data": data},
                      separators=(",", ":"))
    assert len(body) < 4096, len(body)


def test_copilot_doit_keeps_copilots_parameters():
    """stages/env: copilot-doit's own update passes the env controller's values and the tools account back;
    Copilot's other parameters go back to their defaults, copilot-doit's own are its own."""
    ours = {"AppName": "demo", "EnvironmentName": "test"}
    live = {**ours, "ALBWorkloads": "frontend", "Aliases": '{"frontend":["example.com"]}', "NATWorkloads": "",
            "ToolsAccountPrincipalARN": "arn:aws:iam::111122223333:root", "CreateHTTPSListener": "false",
            "ServiceDiscoveryEndpoint": "test.demo.local"}
    assert env_t.kept_parameters(None) == {}
    assert env_t.kept_parameters(live) == {"ALBWorkloads": "frontend", "Aliases": '{"frontend":["example.com"]}',
                                           "NATWorkloads": "", "ToolsAccountPrincipalARN": "arn:aws:iam::111122223333:root"}


def _settled(cfn, name: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        st = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not st["StackStatus"].endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            return st
        time.sleep(0.2)


def test_copilots_env_controller_updates_the_stack_and_copilot_doit_keeps_its_values(workspace):
    """On the local target: copilot-doit's env stack deploys with both roles; Copilot's env controller's
    update (env-controller.js controlEnv: the stack's own parameters with a workload added, the previous
    template, RoleARN = the CFNExecutionRoleARN output, the stack's capabilities) completes; copilot-doit
    does not undo it: its next run leaves the stack as it is, and its own next update (an env manifest
    change) passes Copilot's values back."""
    ws = workspace
    ws.run("env:test")
    cfn, name = ws.client("cloudformation"), f"{ws.app}-test"
    st = _settled(cfn, name)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in st["Outputs"]}
    iam = ws.client("iam")
    assert iam.get_role(RoleName=f"{name}-CFNExecutionRole")["Role"]["Arn"] == outputs["CFNExecutionRoleARN"]
    assert iam.get_role(RoleName=f"{name}-EnvManagerRole")["Role"]["Arn"] == outputs["EnvironmentManagerRoleARN"]
    assert marks(ws.run("env:test").stdout)["env:test"] == "--"       # the parameters' defaults are no change

    params = [dict(p) for p in st["Parameters"]]
    copilots = {"ALBWorkloads": "frontend", "Aliases": '{"frontend":["example.com"]}'}
    for p in params:
        p["ParameterValue"] = copilots.get(p["ParameterKey"], p["ParameterValue"])
    cfn.update_stack(StackName=name, Parameters=params, UsePreviousTemplate=True,
                     RoleARN=outputs["CFNExecutionRoleARN"], Capabilities=st.get("Capabilities") or [])
    st = _settled(cfn, name)
    assert st["StackStatus"] == "UPDATE_COMPLETE", st["StackStatus"]
    after = {o["OutputKey"]: o["OutputValue"] for o in st["Outputs"]}
    assert after["EnabledFeatures"] != outputs["EnabledFeatures"] and "frontend" in after["EnabledFeatures"]

    def live() -> dict:
        return {p["ParameterKey"]: p["ParameterValue"] for p in _settled(cfn, name)["Parameters"]}

    # Up to date (the emulator keeps no LastUpdatedTime; on AWS copilot-doit's check of the update time makes
    # this one change set without changes, Copilot's values passed back), never reset.
    out = ws.run("env:test").stdout
    assert marks(out)["env:test"] == "--" or "No new infrastructure changes" in out, out
    assert {k: live()[k] for k in copilots} == copilots
    # copilot-doit's own update of the stack keeps them.
    m = ws.manifests / "environments" / "test" / "manifest.yml"
    m.write_text(m.read_text().replace("container_insights: false", "container_insights: true"))
    out = ws.run("env:test").stdout
    assert marks(out)["env:test"] == "." and "No new infrastructure changes" not in out, out
    assert {k: live()[k] for k in copilots} == copilots
    assert marks(ws.run("env:test").stdout)["env:test"] == "--"
