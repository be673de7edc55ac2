"""Listener-rule priorities settled at deploy time and kept for the stack's life.

A workload's listener rules share the environment's load balancer listeners with every other workload of
the environment (and, with `http.alb`, with whatever else uses an imported load balancer). A priority is
unique per listener: a rule created with a priority another rule holds fails the whole stack with
PriorityInUse. The template takes each rule's priority as a parameter (`RulePriority`, `RulePriority1`, ...,
templates/alb.py) whose package value is only a preference derived from the workload's name (two names
hash alike with probability ~k²/80,000 for k workloads on a listener: 18 % at 125). The deploy settles it:

- status (no API call): a stack that has a value keeps it, so a rule never moves once created and an
  unchanged workload stays a no-op whatever its preference is (`settled`);
- run: each priority is checked against the rules its listeners hold (DescribeRules), those of this stack
  itself excepted; a taken one moves to the next free priority of its range (`choose`), and a priority
  taken earlier in this run (another workload's create, not yet visible on the listener) counts as held.

Copilot does the same with a custom resource (RulePriorityFunction: the listener's highest priority + 1).
Two runs creating colliding rules at the same moment can still both pick one priority: the second create
fails with PriorityInUse and its rerun finds the priority held and moves.
"""
from __future__ import annotations

import re
import threading

from .templates.alb import priority_range

PARAMETER = re.compile(r"^RulePriority\d*$")
_RUN_CLAIMS_LOCK = threading.Lock()


def settled(parameters: dict, live_parameters: dict | None) -> dict:
    """`parameters` with every rule-priority parameter at the value the live stack holds (when it has one)."""
    if not live_parameters:
        return parameters
    out = dict(parameters)
    for name in parameters:
        if PARAMETER.match(name) and live_parameters.get(name) not in (None, ""):
            out[name] = str(live_parameters[name])
    return out


def choose(preferred: int, held_by_others: set[int], start: int | None = None) -> int:
    """The first priority, from `start` (the live value, else the preference) on, wrapping within the
    preference's range, that no other rule holds. Raises LookupError when the range is full."""
    lo, hi = priority_range(preferred)
    first = start if start is not None and lo <= start <= hi else preferred
    span = hi - lo + 1
    for step in range(span):
        p = lo + (first - lo + step) % span
        if p not in held_by_others:
            return p
    raise LookupError(f"every listener-rule priority from {lo} to {hi} is in use")


def rules_by_parameter(template: dict) -> dict[str, list]:
    """{priority parameter: [ListenerArn expression of each rule that uses it]} (one rule index has a rule
    per listener: HTTP, HTTPS, the redirect)."""
    out: dict[str, list] = {}
    for res in (template.get("Resources") or {}).values():
        if res.get("Type") != "AWS::ElasticLoadBalancingV2::ListenerRule":
            continue
        props = res.get("Properties") or {}
        p = props.get("Priority")
        if isinstance(p, dict) and isinstance(p.get("Ref"), str) and PARAMETER.match(p["Ref"]):
            out.setdefault(p["Ref"], []).append(props.get("ListenerArn"))
    return out


def listener_arn(expr, parameters: dict, env_outputs: dict) -> str | None:
    """The ARN a rule's ListenerArn stands for: a parameter (an imported ALB's listener), or the env stack's
    export `${AppName}-${EnvName}-<Output>` (templates.import_env), read from the env stack's outputs."""
    if isinstance(expr, str):
        return expr
    if not isinstance(expr, dict):
        return None
    if isinstance(expr.get("Ref"), str):
        return parameters.get(expr["Ref"]) or None
    imported = expr.get("Fn::ImportValue")
    if isinstance(imported, dict) and isinstance(imported.get("Fn::Sub"), str):
        text = imported["Fn::Sub"]
        prefix = "${AppName}-${EnvName}-"
        if text.startswith(prefix):
            return env_outputs.get(text[len(prefix):]) or None
    return None


def held_priorities(elbv2, listener: str) -> dict[int, str]:
    """{priority: rule ARN} of every non-default rule of a listener."""
    out: dict[int, str] = {}
    kwargs: dict = {"ListenerArn": listener}
    while True:
        page = elbv2.describe_rules(**kwargs)
        for rule in page.get("Rules") or []:
            if str(rule.get("Priority", "default")).isdigit():
                out[int(rule["Priority"])] = rule.get("RuleArn", "")
        marker = page.get("NextMarker")
        if not marker:
            return out
        kwargs["Marker"] = marker


def own_rules(cfn, stack_name: str) -> set[str]:
    """The rule ARNs this stack's own listener rules have (they may keep their priorities)."""
    resources = cfn.describe_stack_resources(StackName=stack_name).get("StackResources") or []
    return {r.get("PhysicalResourceId") for r in resources
            if r.get("ResourceType") == "AWS::ElasticLoadBalancingV2::ListenerRule" and r.get("PhysicalResourceId")}


def settle_for_deploy(template: dict, parameters: dict, live_parameters: dict | None, env_outputs: dict,
                      elbv2, own: set[str], run_claims: dict) -> tuple[dict, list[str]]:
    """(parameters with every rule priority free on its listeners, notes for the log).

    `run_claims` ({listener ARN: {priorities}}) is this run's: shared by the stacks it deploys (threads
    with -j), it holds the priorities they took before their rules exist. `own`: this stack's rule ARNs."""
    out, notes = dict(parameters), []
    for name, listener_exprs in sorted(rules_by_parameter(template).items()):
        if name not in parameters:
            continue
        preferred = int(parameters[name])
        live = (live_parameters or {}).get(name)
        start = int(live) if str(live or "").isdigit() else preferred
        listeners = [a for a in (listener_arn(e, parameters, env_outputs) for e in listener_exprs) if a]
        if not listeners:
            notes.append(f"{name} {start}: the listener could not be resolved, so its rules were not checked")
            out[name] = str(start)
            continue
        with _RUN_CLAIMS_LOCK:
            held: set[int] = set()
            for arn in listeners:
                held |= {p for p, rule in held_priorities(elbv2, arn).items() if rule not in own}
                held |= run_claims.get(arn, set())
            chosen = choose(preferred, held, start)
            for arn in listeners:
                run_claims.setdefault(arn, set()).add(chosen)
        out[name] = str(chosen)
        if chosen != start:
            why = "held by another rule" if start in held else "out of its range"
            notes.append(f"listener rule priority {start} ({name}) is {why} on the shared listener: "
                         f"this stack's rule takes {chosen}, and keeps it")
    return out, notes
