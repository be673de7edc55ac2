"""Copilot's custom resources kept in a workload stack Copilot created, when copilot-doit updates it.

A Copilot workload stack holds custom resources whose handlers act on the environment: the env controller
(`Custom::EnvControllerFunction`) adds the workload to the environment stack's ALBWorkloads/NATWorkloads/...
parameters on create and strips it on delete — which can remove the environment's load balancer or NAT
gateways while other workloads use them — and the rule-priority generator (`Custom::RulePriorityFunction`)
hands out listener rule priorities that do not collide with other workloads' on the shared listener.
Replacing such a stack's template with copilot-doit's own would delete them, so the template deployed is
copilot-doit's plus, taken from the live stack byte for byte:
    - each of those custom resources and everything it refers to (its Lambda function, the function's role,
      ...), unchanged, so CloudFormation neither updates nor deletes them (no handler runs);
    - the parameters they refer to, with the live stack's values;
    - for each of copilot-doit's listener rules, the priority Copilot's rule of the same logical id had
      (`Fn::GetAtt <priority action>.Priority…`).
What cannot be carried that way (a name clash with copilot-doit's own resources, a listener rule Copilot's
generator gave no priority to) refuses the update with the reason; nothing is applied.
Pure functions over template dicts: the caller reads the live template and parameters.
"""
from __future__ import annotations

import copy
import re

from .errors import StageFailed

KEPT_TYPES = ("Custom::EnvControllerFunction", "Custom::RulePriorityFunction")
_SUB_VAR = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def references(value) -> set[str]:
    """Logical ids and parameter names a value refers to (Ref, Fn::GetAtt, Fn::Sub variables)."""
    out: set[str] = set()
    if isinstance(value, list):
        for v in value:
            out |= references(v)
    elif isinstance(value, dict):
        if len(value) == 1:
            (k, arg), = value.items()
            if k == "Ref" and isinstance(arg, str) and not arg.startswith("AWS::"):
                return {arg}
            if k == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return {parts[0]} | references(parts[1:])
            if k == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] if len(arg) > 1 else {})
                names = {m.group(1) for m in _SUB_VAR.finditer(text)} - set(variables)
                return {n for n in names if not n.startswith("AWS")} | references(list(variables.values()))
        for v in value.values():
            out |= references(v)
    return out


def kept(live: dict) -> tuple[dict, set[str]]:
    """(the live resources to keep: KEPT_TYPES and what they refer to, the parameters those refer to)."""
    resources = live.get("Resources") or {}
    params = set((live.get("Parameters") or {}))
    todo = [n for n, r in resources.items() if r.get("Type") in KEPT_TYPES]
    keep: dict = {}
    used_params: set[str] = set()
    while todo:
        name = todo.pop()
        if name in keep or name not in resources:
            continue
        keep[name] = resources[name]
        for ref in references({k: v for k, v in resources[name].items() if k != "Metadata"}):
            if ref in resources:
                todo.append(ref)
            elif ref in params:
                used_params.add(ref)
        for dep in _depends_on(resources[name]):
            todo.append(dep)
    return keep, used_params


def _depends_on(resource: dict) -> list[str]:
    dep = resource.get("DependsOn") or []
    return [dep] if isinstance(dep, str) else list(dep)


def copilot_rule_names(name: str) -> list[str]:
    """Copilot's logical ids a copilot-doit listener rule may have had: the same, or — on the HTTP listener of
    a service on HTTPS — Copilot's `HTTPListenerRuleWithDomain<n>` for copilot-doit's `HTTPListenerRedirectRule<n>`
    / `HTTPListenerRule<n>`."""
    m = re.fullmatch(r"HTTPListener(?:Redirect)?Rule(\d*)", name)
    return [name] + ([f"HTTPListenerRuleWithDomain{m.group(1)}"] if m else [])


def rename(template: dict, old: str, new: str) -> dict:
    """The template with resource `old` named `new`, every Ref, Fn::GetAtt, Fn::Sub variable and DependsOn
    to it rewritten."""
    sub_var = re.compile(r"\$\{" + re.escape(old) + r"(\.[A-Za-z0-9.]+)?\}")

    def walk(v):
        if isinstance(v, list):
            return [walk(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref" and arg == old:
                return {"Ref": new}
            if k == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                if parts[0] == old:
                    return {"Fn::GetAtt": [new, *parts[1:]]}
            if k == "Fn::Sub":
                if isinstance(arg, str):
                    return {"Fn::Sub": sub_var.sub(lambda m: "${" + new + (m.group(1) or "") + "}", arg)}
                return {"Fn::Sub": [sub_var.sub(lambda m: "${" + new + (m.group(1) or "") + "}", arg[0]),
                                    *[walk(x) for x in arg[1:]]]}
        return {k: walk(x) for k, x in v.items()}

    out = dict(template)
    resources = {}
    for name, res in (template.get("Resources") or {}).items():
        res = walk(res)
        dep = res.get("DependsOn")
        if dep == old:
            res["DependsOn"] = new
        elif isinstance(dep, list):
            res["DependsOn"] = [new if d == old else d for d in dep]
        resources[new if name == old else name] = res
    out["Resources"] = resources
    if "Outputs" in template:
        out["Outputs"] = walk(template["Outputs"])
    return out


def _priority_of(rule: dict) -> dict | None:
    p = (rule.get("Properties") or {}).get("Priority")
    return p if isinstance(p, dict) and "Fn::GetAtt" in p else None


def merge(ours: dict, our_params: dict, live: dict, live_params: dict, stack: str) -> tuple[dict, dict, list[str]]:
    """(template, parameters, notes): copilot-doit's template with Copilot's custom resources of the live
    stack kept (see the module's doc). Raises StageFailed when they cannot be kept."""
    keep, used = kept(live)
    if not keep:
        return ours, our_params, []
    out = copy.deepcopy(ours)
    resources = out.setdefault("Resources", {})
    for name, res in keep.items():
        if name in resources and resources[name] != res:
            raise StageFailed(f"stack {stack} was created by Copilot: its resource {name} "
                              f"({res.get('Type')}) must be kept, and copilot-doit's template has another "
                              f"{name} ({resources[name].get('Type')}); deploy it with Copilot, or delete it "
                              "with `copilot svc delete` first")
        resources[name] = copy.deepcopy(res)
    params = dict(our_params)
    declared = out.setdefault("Parameters", {})
    live_declared = live.get("Parameters") or {}
    for p in sorted(used):
        if p in declared:
            continue  # copilot-doit's own (AppName, EnvName, WorkloadName, ...): its value
        if p not in live_params:
            raise StageFailed(f"stack {stack} was created by Copilot: its parameter {p}, which Copilot's custom "
                              "resources use, has no value in the live stack; deploy it with Copilot")
        declared[p] = copy.deepcopy(live_declared[p])
        params[p] = live_params[p]
    # Listener rules: the priorities Copilot's generator gave the rules of the same logical ids.
    live_rules = {n: r for n, r in (live.get("Resources") or {}).items()
                  if r.get("Type") == "AWS::ElasticLoadBalancingV2::ListenerRule"}
    generated = {n: _priority_of(r) for n, r in live_rules.items() if _priority_of(r)}
    moved: list[str] = []
    if generated:
        for name in [n for n, r in resources.items()
                     if r.get("Type") == "AWS::ElasticLoadBalancingV2::ListenerRule" and n not in keep]:
            copilots = next((c for c in copilot_rule_names(name) if c in generated), None)
            if copilots is None:
                raise StageFailed(f"stack {stack} was created by Copilot: copilot-doit's listener rule {name} has "
                                  f"no priority from Copilot's generator (Copilot's rules: {', '.join(sorted(generated))}"
                                  "); a priority of copilot-doit's own could collide with another workload's on the "
                                  "shared listener: deploy it with Copilot")
            if copilots != name:
                # Copilot's logical id: the rule is updated in place (a new rule beside the old one would
                # ask for the priority the old one still holds, and CloudFormation creates before it deletes).
                out = rename(out, name, copilots)
                resources = out["Resources"]
            resources[copilots]["Properties"]["Priority"] = copy.deepcopy(generated[copilots])
            moved.append(copilots if copilots == name else f"{name} (as Copilot's {copilots})")
    notes = [f"kept Copilot's {', '.join(sorted(n for n, r in keep.items() if r.get('Type') in KEPT_TYPES))} "
             f"(and {len(keep) - sum(1 for r in keep.values() if r.get('Type') in KEPT_TYPES)} resources they use) "
             "from the live stack, unchanged"]
    if moved:
        notes.append(f"listener rules {', '.join(sorted(moved))} keep the priorities Copilot's generator gave them")
    return out, params, notes


def live_template(cfn, stack: str) -> dict:
    """The live stack's template as data (GetTemplate answers JSON as a dict, YAML as text)."""
    body = cfn.get_template(StackName=stack)["TemplateBody"]
    if isinstance(body, str):
        from .cfnyaml import load
        body, _ = load(f"{stack} (live template)", body)
    return body


def keep(cfn, stack: str, body: str, parameters: dict, live_parameters: dict) -> tuple[str, dict, list[str]]:
    """(template text, parameters, notes) to deploy on the existing stack `stack`: copilot-doit's body with
    the Copilot custom resources the live template holds kept (`merge`); the body unchanged when it holds
    none (one GetTemplate)."""
    live = live_template(cfn, stack)
    if not any(r.get("Type") in KEPT_TYPES for r in (live.get("Resources") or {}).values()):
        return body, parameters, []
    import yaml
    from .templates import dump
    merged, params, notes = merge(yaml.safe_load(body), parameters, live, live_parameters, stack)
    return dump(merged), params, notes
