"""The plan: every selected stage with run/skip and why, plus template and parameter diffs against the
deployed stacks. Reads only: no build, no push, no change set, no cache record.
"""
from __future__ import annotations

import json
import sys

from . import stacks
from .hashing import Key
from .session import Session
from .stages import ENV, WORKLOAD_STAGES, deploy, env as env_stage, package
from .words import params_text, unified


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


def _indented(w, diff: str) -> None:
    if diff:
        w("".join("      " + line for line in diff.splitlines(keepends=True)))
        if not diff.endswith("\n"):
            w("\n")


def print_plan(s: Session, out=None) -> None:
    out = out or sys.stdout
    w = out.write
    for env in s.envs:
        st = ENV.status(s, None, env)
        w(f"{st.word:4}  {ENV.task_id(None, env)}  {st.reason}\n")
        if st.run:
            name = env_stage.stack_name(s, env)
            old, _, adapted = _deployed_template(s, env, name, stage="env")
            if old is None:
                w(f"      {name} is not deployed: the whole template is new\n")
            else:
                _indented(w, unified(old, _comparable(s, env, env_stage.template(s, env), adapted), f"{name}.yml"))
    for name in s.names:
        for env in s.envs:
            for stage in WORKLOAD_STAGES:
                st = stage.status(s, name, env)
                w(f"{st.word:4}  {stage.task_id(name, env)}  {st.reason}\n")
            stack_name = s.stack_name(name, env)
            pkg = package.status(s, name, env)
            if not pkg.result and pkg.key is None:
                w(f"      diff of {stack_name}: not known before {pkg.reason.removeprefix('after ')} has run "
                  "(the new image's digest goes into the parameters)\n")
                continue
            body, params = package.planned_template(s, name, env, pkg)
            old_body, old_params, adapted = _deployed_template(s, env, stack_name)
            if old_body is None:
                w(f"      {stack_name} is not deployed: the whole template is new ({len(body.splitlines())} lines)\n")
                continue
            tdiff = unified(old_body, _comparable(s, env, body, adapted), f"{stack_name}.yml")
            pdiff = unified(params_text(old_params), params_text(params), f"{stack_name}.params")
            if not tdiff and not pdiff:
                later = (" (so deploy will find nothing to do once its upstream stages have run)"
                         if deploy.status(s, name, env).run and not s.opts.force else "")
                w(f"      {stack_name}: template and parameters equal the deployed stack{later}\n")
            _indented(w, tdiff)
            _indented(w, pdiff)
