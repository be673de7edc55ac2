"""Issue #11 scope 5: an environment stack made by copilot-doit serves Copilot's own workload templates.

Copilot's workload templates read the environment in two ways: `Fn::ImportValue` of `${AppName}-${EnvName}-X`
(exports of the env stack `<app>-<env>`), and `!GetAtt EnvControllerAction.Y` — its env controller
(cf-custom-resources/lib/env-controller.js) answers with the env stack's outputs by key. For each golden
workload template (shared/copilot-fixtures/stack-golden/workloads), copilot-doit's env stack is rendered
with what that workload needs (its load balancer, NAT gateways, EFS, HTTPS) and every X and Y must be
there, or be one of the explicit, reasoned exceptions below. Then every export and output of Copilot's
golden env stacks is checked the same way. A stale exception (now provided) fails too.
"""
from __future__ import annotations

import json
import re

import pytest

from copilot_doit import manifest
from copilot_doit.manifest import BACKEND, LBWS
from copilot_doit.templates import env as env_t
from test_parity import CASES, FIXTURES, _export_name, load_golden

CERT = "arn:aws:acm:us-west-2:123456789012:certificate/00000000-0000-0000-0000-000000000000"
SUB = re.compile(r"^\$\{AppName\}-\$\{EnvName\}-(\w+)$")

# What Copilot's templates read that copilot-doit's env stack does not provide, and why.
EXCEPTIONS = {
    # exports (Fn::ImportValue `<app>-<env>-X`, and Copilot's golden env's `${AWS::StackName}-X`)
    "export CFNExecutionRoleARN": "Copilot's bootstrap role CloudformationExecutionRole: copilot-doit deploys with the "
                                  "caller's credentials and does not create Copilot's roles (issue #11 scope 2/5)",
    "export EnvironmentManagerRoleARN": "Copilot's bootstrap role EnvironmentManagerRole (see CFNExecutionRoleARN)",
    "export DefaultHTTPTargetGroup": "no default target group: the listeners' default action is a fixed 404 response",
    "export AppRunnerVpcEndpointId": "Request-Driven Web Services (App Runner) are not supported",
    "export InternalWorkloadsHostedZoneID": "no private hosted zone <env>.<app>.internal: Backend Services are "
                                            "reached by the internal ALB's DNS name or Service Connect",
    "export InternalWorkloadsHostedZoneName": "see InternalWorkloadsHostedZoneID",
    # outputs (by key: the env controller's answer, `!GetAtt EnvControllerAction.Y`)
    "output CFNExecutionRoleARN": "see export CFNExecutionRoleARN",
    "output EnvironmentManagerRoleARN": "see export EnvironmentManagerRoleARN",
    "output DefaultHTTPTargetGroupArn": "see export DefaultHTTPTargetGroup",
    "output AppRunnerVpcEndpointId": "see export AppRunnerVpcEndpointId",
    "output InternalWorkloadsHostedZone": "see export InternalWorkloadsHostedZoneID",
    "output InternalWorkloadsHostedZoneName": "see export InternalWorkloadsHostedZoneID",
    "output EnabledFeatures": "the env controller's bookkeeping of ALBWorkloads/NATWorkloads/...: copilot-doit decides "
                              "the shared resources from the workspace (templates.env.needs); the env controller "
                              "ignores this output in its answer",
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
            if k == "Fn::GetAtt" and isinstance(v, list) and v[0] == "EnvControllerAction":
                found["output"].add(v[1])
            _walk(v, found)
    elif isinstance(node, list):
        for v in node:
            _walk(v, found)


def reads(template: dict) -> dict[str, set]:
    """{"export": X of every Fn::ImportValue ${AppName}-${EnvName}-X, "output": Y of every
    !GetAtt EnvControllerAction.Y} of one Copilot workload template."""
    found: dict[str, set] = {"export": set(), "output": set()}
    _walk(template, found)
    return found


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
    missing = [x for x in _missing(needed, provides(env_for(case))) if x not in EXCEPTIONS]
    assert missing == [], f"{case.name}: Copilot's template reads what copilot-doit's env stack lacks: {missing}"


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
