"""The plan: every selected stage with run/skip and why, plus template and parameter diffs against the
deployed stacks. Reads only: no build, no push, no change set, no cache record.

    build_plan(session) -> Plan         the data (stages, reasons, diffs, ordering edges, orphans)
    as_text(plan) | as_json(plan) | as_markdown(plan)

Orphans are the stacks of workloads no longer in the workspace (Copilot's tags name the app, the
environment and a workload without a manifest): listed with the command that removes them, never deleted
here, and without effect on the exit code.
"""
from __future__ import annotations

import json

from . import stacks
from .hashing import Key
from .session import Session
from .stages import ENV, WORKLOAD_STAGES, deploy, env as env_stage, package, prefetch
from .values import field, value
from .words import params_text, unified


@value
class StagePlan:
    task: str
    stage: str
    name: str | None
    env: str
    run: bool
    reason: str


@value
class StackPlan:
    stack: str
    env: str
    name: str | None          # None: the environment stack
    note: str                 # a line in words when there is no diff to show ("… is not deployed: …")
    template_diff: str = ""
    parameters_diff: str = ""


@value
class OrphanPlan:
    """A workload stack whose workload is no longer in the workspace."""
    stack: str
    env: str
    workload: str
    status: str
    owner: str                # stacks.COPILOT_DOIT or stacks.COPILOT

    @property
    def command(self) -> str:
        return f"copilot-doit svc delete -n {self.workload} -e {self.env}"

    @property
    def line(self) -> str:
        return (f"orphan: stack {self.stack} (workload {self.workload} is no longer in the workspace; "
                f"`{self.command}` removes it)")


ORPHANS_NOTE = ("orphans are only listed: they do not change the exit code (0 = nothing to deploy), and plan "
                "deletes nothing")


def find_orphans(app: str, workloads: list[str], env: str, listing: dict) -> list[OrphanPlan]:
    """Stacks of one environment's listing (name -> {status, tags, ...}) named and tagged as a workload
    stack of this app and environment (`copilot-application`, `copilot-environment`, `copilot-service`)
    whose workload has no manifest in the workspace. The name must be `<app>-<env>-<workload>`: a nested
    stack (addons) inherits the tags but goes with its parent."""
    out = []
    for name, st in sorted(listing.items()):
        tags = st.get("tags") or {}
        workload = tags.get("copilot-service")
        if (not workload or workload in workloads or tags.get("copilot-application") != app
                or tags.get("copilot-environment") != env or name != stacks.workload_stack_name(app, env, workload)):
            continue
        out.append(OrphanPlan(name, env, workload, st.get("status") or "", stacks.owner(st, app, env, workload)))
    return out


@value
class Plan:
    app: str
    stages: list[StagePlan] = field(default_factory=list)
    stacks: list[StackPlan] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)   # (first, then): doit's task order
    orphans: list[OrphanPlan] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return any(st.run for st in self.stages)

    def affected(self) -> list[dict]:
        """Each workload × environment with a stage to run, and the deploys it must wait for."""
        out = []
        for st in self.stages:
            if st.stage == "deploy":
                runs = [x.task for x in self.stages if x.name == st.name and x.env == st.env and x.run]
                if runs:
                    after = sorted(a for a, b in self.edges if b == st.task and a.startswith("deploy:"))
                    out.append({"name": st.name, "env": st.env, "stages": runs, "after": after})
        return out


def _deployed_template(s: Session, env: str, stack_name: str, stage: str = "deploy") -> tuple[str | None, dict, bool]:
    """(template text, parameters, adapted) of the live stack: from the cache by its deploy-key tag, else
    GetTemplate — which on the local target returns the compat-adapted body (adapted=True)."""
    live = s.stacks(env).get(stack_name)
    if not live:
        return None, {}, False
    params = live.get("parameters") or {}
    tagged = live["tags"].get(stacks.KEY_TAG)
    if tagged:
        rec = s.cache.get_action(stage, Key(env_stage.SALT if stage == "env" else deploy.SALT, tagged))
        if rec and stage == "env" and rec["result"].get("template"):
            body = s.cache.get_object(rec["result"]["template"])
            if body is not None:
                return body.decode(), params, False
        if rec and stage == "deploy" and rec["result"].get("inputs"):
            inputs = s.cache.get_json(rec["result"]["inputs"]) or {}
            body = s.cache.get_object(inputs.get("template", ""))
            if body is not None:
                return body.decode(), params, False
    target = s.target(env)
    body = target.client("cloudformation").get_template(StackName=stack_name)["TemplateBody"]
    if not isinstance(body, str):
        body = json.dumps(body, indent=2, sort_keys=True)
    return body, params, True  # the body the target runs (compat-adapted on the local target)


def _comparable(s: Session, env: str, planned: str, adapted: bool) -> str:
    """Compare like with like: against the body the target runs, adapt the planned one the same way."""
    if not adapted:
        return planned
    return s.target(env).deployable(planned)[0]


def _env_stack(s: Session, env: str) -> StackPlan:
    name = env_stage.stack_name(s, env)
    old, _, adapted = _deployed_template(s, env, name, stage="env")
    if old is None:
        return StackPlan(name, env, None, f"{name} is not deployed: the whole template is new")
    return StackPlan(name, env, None, "", unified(old, _comparable(s, env, env_stage.template(s, env), adapted),
                                                  f"{name}.yml"))


def _workload_stack(s: Session, name: str, env: str) -> StackPlan:
    stack_name = s.stack_name(name, env)
    pkg = package.status(s, name, env)
    if not pkg.result and pkg.key is None:
        return StackPlan(stack_name, env, name, f"diff of {stack_name}: not known before "
                                                f"{pkg.reason.removeprefix('after ')} has run "
                                                "(the new image's digest goes into the parameters)")
    body, params = package.planned_template(s, name, env, pkg)
    old_body, old_params, adapted = _deployed_template(s, env, stack_name)
    if old_body is None:
        return StackPlan(stack_name, env, name, f"{stack_name} is not deployed: the whole template is new "
                                                f"({len(body.splitlines())} lines)")
    tdiff = unified(old_body, _comparable(s, env, body, adapted), f"{stack_name}.yml")
    pdiff = unified(params_text(old_params), params_text(params), f"{stack_name}.params")
    if tdiff or pdiff:
        return StackPlan(stack_name, env, name, "", tdiff, pdiff)
    later = (" (so deploy will find nothing to do once its upstream stages have run)"
             if deploy.status(s, name, env).run and not s.opts.force else "")
    return StackPlan(stack_name, env, name, f"{stack_name}: template and parameters equal the deployed stack{later}")


def build_plan(s: Session) -> Plan:
    prefetch(s)
    plan = Plan(s.ws.app)
    for env in s.envs:
        st = ENV.status(s, None, env)
        plan.stages.append(StagePlan(ENV.task_id(None, env), "env", None, env, st.run, st.reason))
        if st.run:
            plan.stacks.append(_env_stack(s, env))
    for name in s.names:
        for env in s.envs:
            for stage in WORKLOAD_STAGES:
                st = stage.status(s, name, env)
                task = stage.task_id(name, env)
                plan.stages.append(StagePlan(task, stage.name, name, env, st.run, st.reason))
                plan.edges += [(dep, task) for dep in stage.deps(s, name, env)]
            plan.stacks.append(_workload_stack(s, name, env))
    for env in s.envs:  # every stack of the region: a stack without a manifest is what is looked for
        plan.orphans += find_orphans(s.ws.app, s.ws.workloads, env, s.stacks(env, every=True))
    return plan


def _indented(diff: str) -> str:
    if not diff:
        return ""
    text = "".join("      " + line for line in diff.splitlines(keepends=True))
    return text if text.endswith("\n") else text + "\n"


def as_text(plan: Plan) -> str:
    """The stage lines, each stack's note or diffs after its env stage or its workload's last stage."""
    out = []
    by_stack = {(sp.name, sp.env): sp for sp in plan.stacks}
    for st in plan.stages:
        out.append(f"{'run' if st.run else 'skip':4}  {st.task}  {st.reason}\n")
        sp = by_stack.get((st.name, st.env)) if st.stage in ("env", "deploy") else None
        if sp is not None:
            out.append(f"      {sp.note}\n" if sp.note else "")
            out.append(_indented(sp.template_diff) + _indented(sp.parameters_diff))
    out += [f"{o.line}\n" for o in plan.orphans]
    if plan.orphans:
        out.append(f"      {ORPHANS_NOTE}\n")
    return "".join(out)


def as_json(plan: Plan) -> str:
    return json.dumps({
        "app": plan.app,
        "changes": plan.changes,
        "stages": [vars(st) for st in plan.stages],
        "affected": plan.affected(),
        "environments": sorted({st.env for st in plan.stages if st.stage == "env" and st.run}),
        "edges": [list(e) for e in plan.edges],
        "stacks": [vars(sp) for sp in plan.stacks],
        "orphans": [{**vars(o), "command": o.command} for o in plan.orphans],
    }, indent=2)


def as_markdown(plan: Plan) -> str:
    rows = ["| stage | | why |", "|---|---|---|"]
    for st in plan.stages:
        why = st.reason.replace("|", "\\|")
        rows.append(f"| `{st.task}` | {'**run**' if st.run else 'skip'} | {why} |")
    for o in plan.orphans:
        rows.append(f"| `{o.stack}` | orphan | workload `{o.workload}` is no longer in the workspace; "
                    f"`{o.command}` removes it |")
    parts = [f"### copilot-doit plan for `{plan.app}`: "
             + ("changes" if plan.changes else "nothing to deploy"), "", *rows, ""]
    if plan.orphans:
        parts += [f"_{ORPHANS_NOTE}._", ""]
    for sp in plan.stacks:
        if sp.template_diff or sp.parameters_diff:
            parts += [f"<details><summary><code>{sp.stack}</code> diff</summary>", "", "```diff",
                      (sp.template_diff + sp.parameters_diff).rstrip(), "```", "", "</details>", ""]
        elif sp.note:
            parts.append(f"- {sp.note}")
    return "\n".join(parts) + "\n"


def print_plan(s: Session, out=None) -> Plan:
    import sys
    plan = build_plan(s)
    (out or sys.stdout).write(as_text(plan))
    return plan
