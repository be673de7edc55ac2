"""The environment stack `<app>-<env>`: VPC, cluster, load balancers, the exports workloads import.

key:    the env manifest (resolved), what the workspace's workloads need from it (load balancers), the
        template recipe version, parameters and tags. The template is a pure function of those,
        rendered only when the stage runs (or the plan shows its diff).
status: up to date when the live stack is stable and carries this key; deployed from the same inputs
        elsewhere (another checkout, a CI runner) is adopted.
run:    render, cfn-lint (cached), the target's compat step, upsert through a change set; the result
        keeps the stack's outputs.
"""
from __future__ import annotations

import sys

from .. import linting, stacks
from ..domain import facts as domain_facts
from ..errors import StageFailed, UserError
from ..hashing import Key
from ..manifest import BACKEND, LBWS, load_workload
from ..session import Session
from ..templates import dump
from ..words import explain_inputs
from .base import Status

SALT = "env/2"


def stack_name(s: Session, env: str) -> str:
    return f"{s.ws.app}-{env}"


def needs(s: Session, env: str) -> dict:
    """What the workspace's workloads need from this environment (all of them, not only the selected
    ones: deploying one service must not remove another's load balancer or NAT gateway) — Copilot
    derives the same through its EnvController custom resource."""
    from ..templates.env import needs as template_needs
    out = {"public_alb": False, "internal_alb": False}
    manifests = []
    for name in s.ws.workloads:
        try:
            m = s.manifests.get((name, env)) or load_workload(s.ws.manifest_path(name), s.ws.app, env, name)
        except UserError as exc:
            print(f"warning: {exc}; keeping every shared resource of {env} in case {name} uses one", file=sys.stderr)
            return {"public_alb": True, "internal_alb": True, "nat_gateways": True, "managed_efs": True}
        manifests.append(m.data)
        http = m.data.get("http")
        if m.type == LBWS and http is not False:
            out["public_alb"] = True
        if m.type == BACKEND and isinstance(http, dict):
            out["internal_alb"] = True
    return {**out, **template_needs(manifests)}


def render_domain(s: Session, env: str, start: bool = True) -> dict:
    """Keyword arguments of templates.env.render for the application domain (none without one)."""
    d = domain_facts(s, env, start)
    return {} if d is None else {"domain": d["name"], "zone_ids": d["zone_ids"], "aliases": d["aliases"]}


CDN_PREFIX_LIST = "com.amazonaws.global.cloudfront.origin-facing"


def cloudfront_prefix_list(s: Session, env: str) -> str | None:
    """The region's CloudFront origin-facing managed prefix list, for an environment whose public ALB
    takes ingress only from the CDN (Copilot looks it up the same way); None otherwise. A world fact:
    one EC2 read per run for such environments."""
    from ..templates.env import restricts_to_cdn
    if not restricts_to_cdn(s.env_manifests[env].data):
        return None

    def compute():
        found = s.target(env).client("ec2").describe_managed_prefix_lists(
            Filters=[{"Name": "prefix-list-name", "Values": [CDN_PREFIX_LIST]}])["PrefixLists"]
        if not found:
            raise StageFailed(f"no managed prefix list {CDN_PREFIX_LIST} in {s.target(env).settings.region}")
        return found[0]["PrefixListId"]
    return s.memo(("cdn-prefix-list", env), compute)


def inputs(s: Session, env: str, start: bool = True) -> tuple[Key, dict]:
    """The env stack's key and the inputs it covers."""
    from ..templates.env import RECIPE
    em = s.env_manifests[env]
    tags = {"copilot-application": s.ws.app, "copilot-environment": env}
    parameters = {"AppName": s.ws.app, "EnvironmentName": env}
    prefix_list = cloudfront_prefix_list(s, env)
    if prefix_list is not None:  # only then: every other key stays what it was
        parameters["CloudFrontPrefixListId"] = prefix_list
    ins = {"manifest": em.data, "recipe": RECIPE, "parameters": parameters,
           "tags": tags, "needs": needs(s, env)}
    app_domain = domain_facts(s, env, start)
    if app_domain is not None:  # only then: every other key stays what it was
        ins["domain"] = app_domain
    from .. import overrides
    for name, folder in (("overrides", overrides.env_folder(s.ws.dir)), ("addons", overrides.env_addons_folder(s.ws.dir))):
        d = overrides.digest(folder, s.stat_cache)
        if d is not None:  # only then: every other key stays what it was
            ins[name] = d
    return Key.of(SALT, ins), ins


def addons_upload(s: Session, env: str) -> tuple[str, bytes, dict] | None:
    """(S3 key, body, parameters) of the merged `environments/addons/` template, or None."""
    from .. import overrides
    pkg = overrides.env_addons(overrides.env_addons_folder(s.ws.dir))
    if pkg is None:
        return None
    body = dump(pkg["template"]).encode()
    return overrides.env_addons_s3_key(body), body, pkg["parameters"]


def template(s: Session, env: str, start: bool = True) -> str:
    """The env stack's template text (pure: no side effects): rendered, with the environment addons as
    a nested stack, then Copilot's `environments/overrides/` applied."""
    from .. import overrides
    from ..templates.env import render
    template_data, _ = render(s.ws.app, env, s.env_manifests[env].data, **needs(s, env),
                              **render_domain(s, env, start), cloudfront_prefix_list=cloudfront_prefix_list(s, env))
    addons = addons_upload(s, env)
    if addons is not None:
        key_, _, params = addons
        target = s.target(env)
        bucket = target.artifact_bucket(s.ws.app)
        url = target.object_url(bucket, key_) if start else (target.object_url_if_known(bucket, key_) or "")
        template_data = overrides.env_addons_stack(template_data, url, params)
    template_data = overrides.apply(overrides.env_folder(s.ws.dir), template_data, app=s.ws.app, env=env)
    return dump(template_data)


def explain(old: dict, new: dict) -> list[str]:
    return [explain_inputs(old, new)]


def prod_env(s: Session, env: str) -> bool:
    """Copilot's SSM entry marks the environment `prod` (its older flag; read once per run)."""
    entry = s.target(env).copilot_env(s.ws.app, env)
    return bool(entry is not None and entry.prod)


def gated(s: Session, env: str, live: dict | None, st: Status) -> Status:
    """An existing environment stack is updated only when that is safe (Copilot's --deploy-env and
    --no-deploy-env): never with --no-deploy-env; for an environment Copilot marks prod, only with
    --deploy-env or a confirmation on a terminal. A missing stack is created either way. A stack kept as it
    is serves the workloads with its outputs; a broken one cannot, and stops the run."""
    if not st.run or live is None or s.opts.deploy_env is True:
        return st
    name = stack_name(s, env)
    if s.opts.deploy_env is False:
        why = f"--no-deploy-env: stack {name} is used as it is, not updated ({st.reason})"
    elif env not in s.opts.prod_confirmed and prod_env(s, env):
        why = (f"environment {env} is marked prod in Copilot's application: stack {name} is not updated without "
               f"--deploy-env (deploy-env=1) or a yes on a terminal ({st.reason})")
    else:
        return st
    if live["status"] not in stacks.LIVE_STATES:
        raise StageFailed(f"stack {name} is {live['status']} and cannot serve the workloads as it is; "
                          f"{why.split(': ', 1)[0]}: deploy it with --deploy-env (deploy-env=1)")
    return Status(False, why, st.key, {"outputs": live["outputs"], "owner": stacks.owner(live, s.ws.app, env)},
                  st.inputs)


def status(s: Session, name: None, env: str) -> Status:
    return s.memo(("env", env), lambda: gated(s, env, s.stacks(env).get(stack_name(s, env)), _status(s, env)))


def _status(s: Session, env: str) -> Status:
    k, ins = inputs(s, env)
    live = s.stacks(env).get(stack_name(s, env))
    stacks.refuse_foreign(live, stack_name(s, env), s.ws.app, env)
    if stacks.owner(live, s.ws.app, env) == stacks.COPILOT and not s.opts.deploy_env:
        # Copilot's environment stack carries its roles and custom resources; replacing its template
        # with ours would delete them. Its exports serve the workload stacks as they are.
        return Status(False, f"stack {stack_name(s, env)} was created by Copilot: used as it is (its exports "
                             "serve the workloads; deploy-env=1 / --deploy-env replaces its template)",
                      k, {"outputs": live["outputs"], "owner": stacks.COPILOT}, ins)
    rec = s.cache.get_action("env", k)
    ok, why = stacks.live_ok(s.stacks(env), stack_name(s, env), k, ins["parameters"],
                             (rec or {}).get("result", {}).get("updated"))
    if rec and ok:
        return Status(False, why, k, rec["result"], ins)
    if not ok and rec:
        return Status(True, why, k, None, ins)
    if ok:  # deployed from these inputs elsewhere (another checkout, a CI runner): adopt it
        outputs = s.stacks(env)[stack_name(s, env)]["outputs"]
        return Status(False, why + "; recorded by another runner", k, {"outputs": outputs}, ins)
    return Status(True, f"{why}; {s.why('env', f'env:{env}', ins, k, explain)}", k, None, ins)


def run(s: Session, name: None, env: str) -> dict:
    st = status(s, name, env)
    if not st.run:
        return st.result
    target = s.target(env)
    stack = stack_name(s, env)
    body = template(s, env)
    addons = addons_upload(s, env)
    if addons is not None:  # content-addressed, as Copilot: the nested stack reads it from the bucket
        key_, addons_body, _ = addons
        linting.lint_template(s.cache, addons_body.decode(), target.settings.region, f"{stack} addons (merged)")
        bucket = target.artifact_bucket(s.ws.app)
        target.ensure_bucket(bucket, {"copilot-application": s.ws.app})
        target.upload(bucket, key_, addons_body)
        print(f"  uploaded s3://{bucket}/{key_} ({len(addons_body)} bytes)")
    report = linting.lint_template(s.cache, body, target.settings.region, f"{stack}.yml")
    deploy_body = stacks.deployable(target, body)
    tags = {**st.inputs["tags"], stacks.KEY_TAG: st.key.hex}
    # Copilot's env controller's values (templates.env.KEPT_PARAMETERS) go back as they are, as Copilot's own
    # `env deploy` keeps them: left out, they would fall back to their defaults.
    from ..templates.env import kept_parameters
    parameters = {**kept_parameters((s.stacks(env).get(stack) or {}).get("parameters")), **st.inputs["parameters"]}
    print(f"deploying environment stack {stack} ({target.kind} target)")
    stacks.deploy(target, stack, deploy_body, parameters, tags, app=s.ws.app, role_arn=s.execution_role(env))
    s.changed(env)
    live = s.stacks(env).get(stack)
    if not live or live["tags"].get(stacks.KEY_TAG) != st.key.hex:
        raise StageFailed(f"stack {stack} does not carry the deployed key after the update")
    result = {"outputs": live["outputs"], "lint_warnings": report["warnings"], "updated": live["updated"],
              "template": s.cache.put_object(body.encode())}
    s.record("env", f"env:{env}", st.key, result, st.inputs)
    s.changed(env)
    return result
