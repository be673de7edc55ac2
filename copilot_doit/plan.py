"""Words for the plan: why a stage runs or is skipped, what changed since it last ran, and diffs.

Pure functions over recorded inputs; nothing here touches the world.
"""
from __future__ import annotations

import difflib
import json

from .hashing import changed_paths

MAX_PATHS = 3


def _few(items: list[str]) -> str:
    head = ", ".join(items[:MAX_PATHS])
    more = len(items) - MAX_PATHS
    return head + (f" (+{more} more, {len(items)} in all)" if more > 0 else "")


def flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(value, list):
        return {prefix: json.dumps(value, sort_keys=True)}
    return {prefix: value}


def changed_fields(old: dict, new: dict) -> list[str]:
    a, b = flatten(old or {}), flatten(new or {})
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def explain(stage: str, old: dict | None, new: dict) -> str:
    """What differs between the inputs this task last ran with and the current ones."""
    if not old:
        return "never ran with these inputs"
    parts: list[str] = []
    if stage == "build":
        files = changed_paths(old.get("context_entries") or [], new.get("context_entries") or [])
        if files:
            parts.append(f"{len(files)} context file{'s' if len(files) != 1 else ''} changed: {_few(files)}")
        if old.get("dockerfile") != new.get("dockerfile"):
            parts.append("Dockerfile changed")
        for field in ("args", "target", "platform", "labels"):
            if old.get(field) != new.get(field):
                parts.append(f"build {field} changed")
        for ref, iid in (new.get("base_images") or {}).items():
            before = (old.get("base_images") or {}).get(ref)
            if before != iid:
                parts.append(f"base image {ref} is now {(iid or 'absent')[:19]} (was {(before or 'absent')[:19]})")
    elif stage == "package":
        fields = changed_fields(old.get("manifest") or {}, new.get("manifest") or {})
        if fields:
            parts.append(f"manifest field{'s' if len(fields) != 1 else ''} changed: {_few(fields)}")
        if old.get("image") != new.get("image"):
            parts.append(f"image is now {new.get('image')}")
        if old.get("env_key") != new.get("env_key"):
            parts.append("the environment stack changed")
        if old.get("recipe") != new.get("recipe"):
            parts.append(f"template recipe changed ({old.get('recipe')} -> {new.get('recipe')})")
        oa, na = old.get("artifacts") or {}, new.get("artifacts") or {}
        if oa.get("addons") != na.get("addons"):
            parts.append("addons changed")
        if oa.get("env_file") != na.get("env_file"):
            parts.append("env file changed")
        if oa.get("url") != na.get("url") and oa.get("url") and na.get("url"):
            parts.append("the artifact bucket's address changed")
    elif stage == "deploy":
        if old.get("template") != new.get("template"):
            parts.append("template changed")
        params = changed_fields(old.get("parameters") or {}, new.get("parameters") or {})
        if params:
            parts.append(f"parameters changed: {_few(params)}")
        tags = changed_fields(old.get("tags") or {}, new.get("tags") or {})
        if tags:
            parts.append(f"tags changed: {_few(tags)}")
    else:
        fields = changed_fields(old, new)
        if fields:
            parts.append(f"inputs changed: {_few(fields)}")
    return "; ".join(parts) or "inputs changed"


def unified(old: str, new: str, name: str) -> str:
    diff = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                fromfile=f"deployed/{name}", tofile=f"planned/{name}")
    return "".join(diff)


def params_text(params: dict) -> str:
    return "".join(f"{k}: {v}\n" for k, v in sorted(params.items()))


# --- the plan command -----------------------------------------------------------------------------------
def _deployed_template(s, env: str, stack_name: str, stage: str = "deploy") -> tuple[str | None, dict, bool]:
    """(template text, parameters, adapted) of the live stack: from the cache by its deploy-key tag, else
    GetTemplate — which on the local target returns the compat-adapted body (adapted=True)."""
    from .hashing import Key
    from .pipeline import ENV_SALT
    from .stack import KEY_TAG, SALT
    live = s.stacks(env).get(stack_name)
    if not live:
        return None, {}, False
    params = live.get("parameters") or {}
    tagged = live["tags"].get(KEY_TAG)
    if tagged:
        rec = s.cache.get_action(stage, Key(ENV_SALT if stage == "env" else SALT, tagged))
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


def _comparable(s, env: str, planned: str, adapted: bool) -> str:
    """Compare like with like: against the body the target runs, adapt the planned one the same way."""
    if not adapted:
        return planned
    return s.target(env).deployable(planned)[0]


def print_plan(s, out=None) -> None:
    """Every selected stage with run/skip and its reason, plus template and parameter diffs against the
    deployed stacks. Reads only: no build, no push, no change set, no cache record."""
    import sys
    from . import pipeline
    from .templates import dump
    from .templates.workload import RenderInput, render
    out = out or sys.stdout
    w = out.write
    for env in s.envs:
        st = pipeline.env_status(s, env)
        w(f"{st.word:4}  env:{env}  {st.reason}\n")
        if st.run:
            name = f"{s.ws.app}-{env}"
            old, _, adapted = _deployed_template(s, env, name, stage="env")
            if old is None:
                w(f"      {name} is not deployed: the whole template is new\n")
            else:
                d = unified(old, _comparable(s, env, pipeline.env_template(s, env), adapted), f"{name}.yml")
                w("".join("      " + line for line in d.splitlines(keepends=True)) + ("" if d.endswith("\n") or not d else "\n"))
    for name in s.names:
        for env in s.envs:
            for stage in pipeline.STAGES:
                st = pipeline.STATUS[stage](s, name, env)
                w(f"{st.word:4}  {pipeline.stage_id(stage, name, env)}  {st.reason}\n")
            stack_name = s.stack_name(name, env)
            pkg = pipeline.package_status(s, name, env)
            if pkg.result:
                body = s.cache.get_object(pkg.result["template"]).decode()
                params = json.loads(s.cache.get_object(pkg.result["parameters"]))
            elif pkg.key is not None:
                addons_input, env_file_arn, _, _ = pipeline.artifacts(s, name, env)
                template, params = render(RenderInput(manifest=s.manifests[(name, env)], app=s.ws.app, env=env,
                                                      image=pkg.inputs["image"], addons=addons_input,
                                                      env_file_arn=env_file_arn))
                body = dump(template)
            else:
                w(f"      diff of {stack_name}: not known before {pkg.reason.removeprefix('after ')} has run "
                  "(the new image's digest goes into the parameters)\n")
                continue
            old_body, old_params, adapted = _deployed_template(s, env, stack_name)
            if old_body is None:
                w(f"      {stack_name} is not deployed: the whole template is new ({len(body.splitlines())} lines)\n")
                continue
            tdiff = unified(old_body, _comparable(s, env, body, adapted), f"{stack_name}.yml")
            pdiff = unified(params_text(old_params), params_text(params), f"{stack_name}.params")
            if not tdiff and not pdiff:
                later = (" (so deploy will find nothing to do once its upstream stages have run)"
                         if pipeline.deploy_status(s, name, env).run and not s.opts.force else "")
                w(f"      {stack_name}: template and parameters equal the deployed stack{later}\n")
            for d in (tdiff, pdiff):
                if d:
                    w("".join("      " + line for line in d.splitlines(keepends=True)))
                    if not d.endswith("\n"):
                        w("\n")
