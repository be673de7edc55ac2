"""Copilot's custom resources kept when copilot-doit updates a workload stack Copilot created (issue #11
scope 3), on Copilot's own golden stacks (../shared/copilot-fixtures/stack-golden/workloads) as the live
templates and copilot-doit's renders of the same manifests (tests/test_parity.py's cases)."""
from __future__ import annotations

import copy

import pytest
import yaml

from copilot_doit import copilot_resources as cr
from copilot_doit.errors import StageFailed
from test_parity import CASES, FIXTURES, load_golden, render_ours

WORKLOAD_CASES = [c for c in CASES if not c.name.startswith("env/")]
LIVE_PARAMS = {"AppName": "my-app", "EnvName": "test", "WorkloadName": "x"}


@pytest.fixture(autouse=True)
def _tag(monkeypatch):
    monkeypatch.setenv("TAG", "fixture-tag")  # the svc fixtures interpolate ${TAG}


def _rules(t: dict) -> dict:
    return {n: r for n, r in t["Resources"].items() if r.get("Type") == "AWS::ElasticLoadBalancingV2::ListenerRule"}


@pytest.mark.skipif(FIXTURES is None, reason="../shared/copilot-fixtures is not there")
@pytest.mark.parametrize("case", WORKLOAD_CASES, ids=lambda c: c.name)
def test_every_copilot_custom_resource_that_acts_on_the_environment_is_kept_unchanged(case, tmp_path):
    live = load_golden(case)
    ours = render_ours(case, tmp_path)
    merged, params, notes = cr.merge(ours, {"AppName": "my-app"}, live, LIVE_PARAMS, "s")
    kept = {n for n, r in live["Resources"].items() if r.get("Type") in cr.KEPT_TYPES}
    assert "EnvControllerAction" in kept
    for name in kept:
        assert merged["Resources"][name] == live["Resources"][name], name          # byte for byte as data
        for ref in cr.references({k: v for k, v in live["Resources"][name].items() if k != "Metadata"}):
            assert ref in merged["Resources"] or ref in merged["Parameters"], (name, ref)
    # Every listener rule of ours takes the priority Copilot's generator gave the rule of its logical id.
    live_rules = _rules(live)
    for name, rule in _rules(merged).items():
        assert name in live_rules, name
        assert rule["Properties"]["Priority"] == live_rules[name]["Properties"]["Priority"], name
    assert len(_rules(merged)) == len(_rules(ours))
    # copilot-doit's own resources are all still there (a renamed rule under Copilot's id).
    assert len(merged["Resources"]) == len(ours["Resources"]) + len(
        set(cr.kept(live)[0]) - set(ours["Resources"]))
    assert notes and "EnvControllerAction" in notes[0]


def test_a_renamed_rule_takes_its_references_along(tmp_path):
    case = next(c for c in WORKLOAD_CASES if c.name == "backend/https-path-alias")
    ours = render_ours(case, tmp_path)
    ours["Resources"]["Service"]["DependsOn"] = ["HTTPListenerRule", "HTTPSListenerRule"]
    ours["Outputs"] = {"Rule": {"Value": {"Fn::Sub": "${HTTPListenerRule}"}}}
    merged, _, notes = cr.merge(ours, {}, load_golden(case), LIVE_PARAMS, "s")
    assert "HTTPListenerRule" not in merged["Resources"] and "HTTPListenerRuleWithDomain" in merged["Resources"]
    assert merged["Resources"]["Service"]["DependsOn"] == ["HTTPListenerRuleWithDomain", "HTTPSListenerRule"]
    assert merged["Outputs"]["Rule"]["Value"] == {"Fn::Sub": "${HTTPListenerRuleWithDomain}"}
    assert "HTTPListenerRule (as Copilot's HTTPListenerRuleWithDomain)" in notes[-1]


def test_what_cannot_be_kept_refuses_the_update(tmp_path):
    case = next(c for c in WORKLOAD_CASES if c.name == "backend/http-only-path")
    live, ours = load_golden(case), render_ours(case, tmp_path)
    clash = copy.deepcopy(ours)
    clash["Resources"]["EnvControllerFunction"] = {"Type": "AWS::SNS::Topic"}
    with pytest.raises(StageFailed, match="its resource EnvControllerFunction .* must be kept"):
        cr.merge(clash, {}, live, LIVE_PARAMS, "s")
    extra = copy.deepcopy(ours)
    extra["Resources"]["HTTPListenerRule7"] = copy.deepcopy(extra["Resources"]["HTTPListenerRule"])
    with pytest.raises(StageFailed, match="listener rule HTTPListenerRule7 has no priority from Copilot's generator"):
        cr.merge(extra, {}, live, LIVE_PARAMS, "s")
    needs = copy.deepcopy(live)
    needs["Resources"]["EnvControllerAction"]["Properties"]["Extra"] = {"Ref": "CopilotOnly"}
    needs["Parameters"]["CopilotOnly"] = {"Type": "String"}
    merged, params, _ = cr.merge(ours, {"AppName": "a"}, needs, {**LIVE_PARAMS, "CopilotOnly": "v"}, "s")
    assert params["CopilotOnly"] == "v" and merged["Parameters"]["CopilotOnly"] == {"Type": "String"}
    with pytest.raises(StageFailed, match="parameter CopilotOnly"):
        cr.merge(ours, {}, needs, LIVE_PARAMS, "s")


def test_keep_reads_the_live_yaml_and_leaves_other_stacks_alone(tmp_path):
    case = next(c for c in WORKLOAD_CASES if c.name == "job-test")
    golden_text = (FIXTURES / "stack-golden" / case.golden).read_text()

    class Cfn:
        def __init__(self, body):
            self.body = body

        def get_template(self, StackName):
            return {"TemplateBody": self.body}

    from copilot_doit.templates import dump
    ours = dump(render_ours(case, tmp_path))
    body, params, notes = cr.keep(Cfn(golden_text), "s", ours, {"AppName": "my-app"}, LIVE_PARAMS)
    assert "EnvControllerAction" in yaml.safe_load(body)["Resources"] and notes
    plain = {"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}         # a stack copilot-doit made: JSON dict
    assert cr.keep(Cfn(plain), "s", ours, {"AppName": "x"}, {}) == (ours, {"AppName": "x"}, [])
