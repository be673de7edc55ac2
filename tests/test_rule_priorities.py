"""Listener-rule priorities settled at deploy time (rule_priorities.py): two workloads whose names hash to
one priority both deploy (before, the second create failed with PriorityInUse on the shared listener), each
stack keeps the priority it got, and an unchanged workspace stays a no-op."""
from __future__ import annotations

import threading

import pytest

from conftest import Workspace, marks, scratch_workspace
from copilot_doit import rule_priorities
from copilot_doit.templates.alb import CATCH_ALL_PRIORITIES, SPECIFIC_PRIORITIES, rule_priority

# Two names whose rules (path = the name) hash to one preferred priority (found by search; asserted below).
SAME_A, SAME_B = "svc43", "svc179"


def test_the_two_names_really_collide():
    assert rule_priority(SAME_A, SAME_A) == rule_priority(SAME_B, SAME_B) == 1148


def test_choose_takes_the_preference_or_the_next_free_one_in_its_range():
    assert rule_priority("x", "/") >= CATCH_ALL_PRIORITIES[0]
    assert rule_priorities.choose(1148, set()) == 1148
    assert rule_priorities.choose(1148, {1148, 1149}) == 1150
    hi = SPECIFIC_PRIORITIES[1]
    assert rule_priorities.choose(hi, {hi}) == SPECIFIC_PRIORITIES[0]          # wraps within its range
    assert rule_priorities.choose(CATCH_ALL_PRIORITIES[1], {CATCH_ALL_PRIORITIES[1]}) == CATCH_ALL_PRIORITIES[0]
    assert rule_priorities.choose(1148, {1148}, start=3000) == 3000            # the live value first
    assert rule_priorities.choose(1148, {3000}, start=3000) == 3001
    full = set(range(CATCH_ALL_PRIORITIES[0], CATCH_ALL_PRIORITIES[1] + 1))
    with pytest.raises(LookupError):
        rule_priorities.choose(CATCH_ALL_PRIORITIES[0], full)


def test_settled_keeps_the_live_value_of_priority_parameters_only():
    ours = {"RulePriority": "1148", "RulePriority1": "20", "RulePath": "svc"}
    assert rule_priorities.settled(ours, None) == ours
    live = {"RulePriority": "1149", "RulePath": "other", "RulePriority1": ""}
    assert rule_priorities.settled(ours, live) == {"RulePriority": "1149", "RulePriority1": "20", "RulePath": "svc"}


TEMPLATE = {"Resources": {
    "HTTPSListenerRule": {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {
        "ListenerArn": {"Fn::ImportValue": {"Fn::Sub": "${AppName}-${EnvName}-HTTPSListenerArn"}},
        "Priority": {"Ref": "RulePriority"}}},
    "HTTPListenerRedirectRule": {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {
        "ListenerArn": {"Fn::ImportValue": {"Fn::Sub": "${AppName}-${EnvName}-HTTPListenerArn"}},
        "Priority": {"Ref": "RulePriority"}}},
    "ImportedRule": {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {
        "ListenerArn": {"Ref": "ImportedALBListenerArn"}, "Priority": {"Ref": "RulePriority1"}}},
}}
OUTPUTS = {"HTTPSListenerArn": "arn:https", "HTTPListenerArn": "arn:http"}


class FakeElb:
    """DescribeRules of fixed listeners, two pages each (the marker is followed)."""

    def __init__(self, rules: dict):
        self.rules = rules   # listener -> {priority: rule arn}
        self.calls = []

    def describe_rules(self, ListenerArn, Marker=None):
        self.calls.append(ListenerArn)
        items = [{"Priority": "default", "RuleArn": "arn:default"}] + \
            [{"Priority": str(p), "RuleArn": a} for p, a in sorted(self.rules.get(ListenerArn, {}).items())]
        half = len(items) // 2
        if Marker is None:
            return {"Rules": items[:half], "NextMarker": "m"}
        return {"Rules": items[half:]}


def test_a_priority_held_on_any_of_its_listeners_moves_and_this_stacks_own_rules_do_not_count():
    elb = FakeElb({"arn:https": {1148: "arn:other"}, "arn:http": {1149: "arn:other2", 1150: "arn:mine"},
                   "arn:imported": {7: "arn:x"}})
    params = {"RulePriority": "1148", "RulePriority1": "7", "ImportedALBListenerArn": "arn:imported"}
    out, notes = rule_priorities.settle_for_deploy(TEMPLATE, params, None, OUTPUTS, elb, {"arn:mine"}, {})
    assert out["RulePriority"] == "1150"     # 1148 held on HTTPS, 1149 on HTTP, 1150 is this stack's own
    assert out["RulePriority1"] == "8"
    assert len(notes) == 2 and "takes 1150" in notes[0] + notes[1]
    assert set(elb.calls) == {"arn:https", "arn:http", "arn:imported"}


def test_a_live_value_is_kept_when_it_is_still_this_stacks():
    elb = FakeElb({"arn:https": {3000: "arn:mine"}, "arn:http": {3000: "arn:mine"}})
    params = {"RulePriority": "1148", "RulePriority1": "7", "ImportedALBListenerArn": "arn:imported"}
    out, notes = rule_priorities.settle_for_deploy(TEMPLATE, params, {"RulePriority": "3000", "RulePriority1": "7"},
                                                   OUTPUTS, elb, {"arn:mine"}, {})
    assert out["RulePriority"] == "3000" and out["RulePriority1"] == "7" and notes == []


def test_concurrent_creates_in_one_run_never_pick_one_priority():
    """-j N: two creates whose rules prefer 1148, neither rule on the listener yet: the run's claims part them."""
    template = {"Resources": {k: v for k, v in TEMPLATE["Resources"].items() if k != "ImportedRule"}}
    claims: dict = {}
    got = []
    barrier = threading.Barrier(4)

    def deploy():
        elb = FakeElb({})
        barrier.wait()
        out, _ = rule_priorities.settle_for_deploy(template, {"RulePriority": "1148"}, None, OUTPUTS, elb, set(), claims)
        got.append(out["RulePriority"])
    threads = [threading.Thread(target=deploy) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == ["1148", "1149", "1150", "1151"]


def test_an_unresolvable_listener_keeps_the_preference_and_says_so():
    template = {"Resources": {"R": {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {
        "ListenerArn": {"Fn::ImportValue": "somewhere-else"}, "Priority": {"Ref": "RulePriority"}}}}}
    elb = FakeElb({})
    out, notes = rule_priorities.settle_for_deploy(template, {"RulePriority": "5"}, None, {}, elb, set(), {})
    assert out == {"RulePriority": "5"} and "not checked" in notes[0] and elb.calls == []


def colliding_workspace(base, endpoints) -> Workspace:
    return scratch_workspace(base, endpoints, "r", {
        name: f"name: {name}\ntype: Load Balanced Web Service\nimage:\n  build: copilot/{name}/src/Dockerfile\n"
              f"  port: 8080\nhttp:\n  path: {name}\n  healthcheck: /healthz\ncpu: 256\nmemory: 512\ncount: 1\n"
              "variables:\n  LOG_LEVEL: info\n" for name in (SAME_A, SAME_B)})


def listener_priorities(ws) -> dict[str, int]:
    """{workload: its rule's priority} on the environment's public HTTP listener."""
    cfn, elb = ws.client("cloudformation"), ws.client("elbv2")
    out = {}
    for name in (SAME_A, SAME_B):
        res = cfn.describe_stack_resources(StackName=f"{ws.app}-test-{name}")["StackResources"]
        arn = next(r["PhysicalResourceId"] for r in res if r["ResourceType"] == "AWS::ElasticLoadBalancingV2::ListenerRule")
        rule = elb.describe_rules(RuleArns=[arn])["Rules"][0]
        out[name] = int(rule["Priority"])
    return out


@pytest.mark.e2e
def test_two_workloads_preferring_one_priority_both_deploy_and_keep_theirs(tmp_path, services_up):
    ws = colliding_workspace(tmp_path, services_up)
    first = ws.run("deploy", "-n", SAME_A, "-e", "test", tool="cli")
    assert "Traceback" not in first.stdout + first.stderr, first.stdout + first.stderr
    both = ws.run("deploy", "-e", "test", "--all", "-j", "2", tool="cli", check=False)
    out = both.stdout + both.stderr
    assert both.returncode == 0 and "PriorityInUse" not in out and "Traceback" not in out, out
    assert "listener rule priority 1148 (RulePriority) is held by another rule on the shared listener: this " \
           "stack's rule takes 1149, and keeps it" in both.stdout, both.stdout
    assert listener_priorities(ws) == {SAME_A: 1148, SAME_B: 1149}
    # The stack holds 1149 while its package value stays 1148: still a no-op, with no call that changes anything.
    again = ws.run("deploy", "-e", "test", "--all", tool="cli")
    assert set(marks(again.stdout).values()) == {"--"}, again.stdout
    assert ws.mutating() == [], ws.mutating()
    # A change to svc179 updates its stack; its rule keeps 1149 (1148 is svc43's): no PriorityInUse, no move.
    m = ws.root / "copilot" / SAME_B / "manifest.yml"
    m.write_text(m.read_text().replace("LOG_LEVEL: info", "LOG_LEVEL: debug"))
    ws.commit()
    changed = ws.run("deploy", "-n", SAME_B, "-e", "test", tool="cli")
    assert marks(changed.stdout).get(f"deploy:{SAME_B}@test") == ".", changed.stdout
    assert "takes" not in changed.stdout, changed.stdout
    assert listener_priorities(ws) == {SAME_A: 1148, SAME_B: 1149}
