"""Stage 5b, deploy: create or update the workload's stack `<app>-<env>-<name>`.

key:    template digest, parameters, tags (the rollback setting only matters at execution).
status: up to date when the live stack is stable and carries this key, with the parameters and update
        time we recorded (a stack changed behind the tool's back is redeployed); `force` never skips.
run:    the target's compat step, upsert through a change set (copilot_doit/stacks.py), then for
        `force` an ECS forced new deployment; the result is recorded once the stack confirms the key.
"""
from __future__ import annotations

import json
import time

from .. import rule_priorities, stacks
from ..hashing import Key
from ..errors import StageFailed
from ..manifest import JOB
from ..session import Session
from ..words import changed_fields, few
from . import env as env_stage
from . import lint, package
from .base import Status, must_run, stage_id

SALT = "deploy/1"


def key(template_digest: str, parameters: dict, tags: dict) -> Key:
    return Key.of(SALT, {"template": template_digest, "parameters": parameters, "tags": tags})


def ordering(s: Session, name: str, env: str) -> list[str]:
    """Deploys this one waits for besides its own lint: a subscriber's queue subscribes to topics of
    another workload, so the publisher is deployed first."""
    subscribe = s.manifests[(name, env)].data.get("subscribe") or {}
    return [stage_id("deploy", t["service"], env) for t in subscribe.get("topics") or []
            if t.get("service") in s.names and t["service"] != name]


def explain(old: dict, new: dict) -> list[str]:
    parts = []
    if old.get("template") != new.get("template"):
        parts.append("template changed")
    params = changed_fields(old.get("parameters") or {}, new.get("parameters") or {})
    if params:
        parts.append(f"parameters changed: {few(params)}")
    tags = changed_fields(old.get("tags") or {}, new.get("tags") or {})
    if tags:
        parts.append(f"tags changed: {few(tags)}")
    return parts


def status(s: Session, name: str, env: str) -> Status:
    def compute():
        lt = lint.status(s, name, env)
        if lt.run:
            return Status(True, f"after lint:{name}@{env}")
        p = package.status(s, name, env)
        stack_name = s.stack_name(name, env)
        live = s.stacks(env).get(stack_name)
        # A listener-rule priority the stack holds is kept (rule_priorities.py): the package's value is a preference.
        params = rule_priorities.settled(json.loads(s.cache.get_object(p.result["parameters"])),
                                         (live or {}).get("parameters"))
        tags = s.tags(name, env)
        k = key(p.result["template"], params, tags)
        inputs = {"template": p.result["template"], "parameters": params, "tags": tags}
        stacks.refuse_foreign(live, stack_name, s.ws.app, env, name)
        if stacks.owner(live, s.ws.app, env, name) == stacks.COPILOT and not s.opts.force:
            # Copilot's workload stacks hold custom resources whose Delete handlers act on the environment
            # (the env controller strips the workload from ALBWorkloads/NATWorkloads, which can remove the
            # load balancer): the update keeps them (copilot_resources.py, in run).
            return Status(True, f"stack {stack_name} was created by Copilot: updated with copilot-doit's template, "
                                "keeping Copilot's custom resources (env controller, rule priorities)", k, None, inputs)
        # Trusted from the shared cache even without a key: what decides is the live stack's key tag;
        # the record only adds the update time it saw.
        rec = s.cache.get_action("deploy", k, trust_remote=True)
        ok, why = stacks.live_ok(s.stacks(env), stack_name, k, params, (rec or {}).get("result", {}).get("updated"))
        if s.opts.force:
            return Status(True, "force: deploy even if nothing changed", k, None, inputs)
        if ok:
            return Status(False, why, k, {"stack": stack_name}, inputs)
        if rec:
            return Status(True, why, k, None, inputs)
        return Status(True, f"{why}; {s.why('deploy', stage_id('deploy', name, env), inputs, k, explain)}",
                      k, None, inputs)
    return s.memo(("deploy", name, env), compute)


def service_progress(s: Session, name: str, env: str, stack_name: str, started: float):
    """The ECS rollout shown while a service's stack deploys (rollout.ServiceProgress), on a target whose
    ECS runs tasks; None for a job (no service) and where tasks never run (the emulator)."""
    target = s.target(env)
    cluster = (env_stage.status(s, None, env).result or {}).get("outputs", {}).get("ClusterId")
    if s.manifests[(name, env)].type == JOB or not target.waits_for_services or not cluster:
        return None
    from datetime import datetime, timezone
    from .. import rollout
    # A few seconds early: ECS stamps deployments and tasks with AWS's clock, not this machine's.
    since = datetime.fromtimestamp(started - 5, timezone.utc)
    # The service is looked for on each poll until the stack has created it.
    return rollout.ServiceProgress(target.client("ecs"), cluster,
                                   lambda: stacks.physical_id_if_created(target, stack_name, "Service"), since, name)


def _settle_priorities(s: Session, target, env: str, stack_name: str, body: str, parameters: dict,
                       live: dict | None) -> tuple[dict, list[str]]:
    """(parameters with every listener-rule priority free on its listener, notes): rule_priorities.py.
    No call at all for a template without listener rules."""
    if not any(rule_priorities.PARAMETER.match(p) for p in parameters):
        return parameters, []
    try:
        template = json.loads(body)
    except ValueError:
        from ..cfnyaml import load
        template, _ = load(f"{stack_name} (template)", body)
    env_outputs = (env_stage.status(s, None, env).result or {}).get("outputs") or {}
    own = rule_priorities.own_rules(target.client("cloudformation"), stack_name) if live is not None else set()
    claims = s.once("rule-priority-claims", dict)   # this run's, shared by its deploys (-j N: threads)
    return rule_priorities.settle_for_deploy(template, parameters, (live or {}).get("parameters"), env_outputs,
                                             target.client("elbv2"), own, claims)


def run(s: Session, name: str, env: str) -> dict:
    st = must_run(status(s, name, env), stage_id("deploy", name, env))
    if st is None:
        return status(s, name, env).result
    m = s.manifests[(name, env)]
    target = s.target(env)
    p = package.status(s, name, env)
    if p.check is not None:  # the cached template is a claim: re-derive it before deploying it
        p.check()
    body = s.cache.get_object(p.result["template"]).decode()
    stack_name = s.stack_name(name, env)
    from ..templates.env import EXPORTS
    env_outputs = set((env_stage.status(s, None, env).result or {}).get("outputs") or {})
    live = s.stacks(env).get(stack_name)
    k, inputs = st.key, st.inputs
    parameters, notes = _settle_priorities(s, target, env, stack_name, body, inputs["parameters"], live)
    if parameters != inputs["parameters"]:   # a priority moved: the stack is tagged and recorded with it
        inputs = {**inputs, "parameters": parameters}
        k = key(inputs["template"], parameters, inputs["tags"])
    for n in notes:
        print(f"  {n}")
    if live is not None:
        # A stack that holds Copilot's custom resources (one Copilot created, and since then updated by
        # copilot-doit) keeps them: the template deployed is ours (linted by the lint stage) plus those, taken
        # unchanged from the live stack, so CloudFormation leaves them alone. They are not linted again: they
        # are Copilot's as deployed (cfn-lint flags e.g. their nodejs20.x runtime, which only matters to a
        # create or an update of the function, and neither happens).
        from .. import copilot_resources
        body, parameters, notes = copilot_resources.keep(target.client("cloudformation"), stack_name, body,
                                                         parameters, live.get("parameters") or {})
        for n in notes:
            print(f"  {n}")
    deploy_body = stacks.deployable(target, body, set(EXPORTS) - env_outputs)
    if s.opts.no_rollback:
        print(stacks.NO_ROLLBACK_WARNING)
    # Copilot's order: the workload is in the application's registry (`svc init`) before its stack is
    # deployed, so a type conflict stops the run before any change; an app Copilot doesn't know is said once.
    target.register_workload(s.ws.app, name, m.type)
    role = s.execution_role(env)
    print(f"deploying stack {stack_name} ({target.kind} target): {st.reason}")
    if role:
        print(f"  as Copilot's environment execution role {role}")
    started = time.time()
    # --detach: not for a stack another selected deploy waits for (a subscriber needs its topics).
    waiters = [n for n in s.names if stage_id("deploy", name, env) in ordering(s, n, env)]
    if s.opts.detach and waiters:
        print(f"  --detach: waiting for stack {stack_name} all the same: {', '.join(waiters)} subscribe to its topics")
    out = stacks.deploy(target, stack_name, deploy_body, parameters,
                        {**inputs["tags"], stacks.KEY_TAG: k.hex}, disable_rollback=s.opts.no_rollback,
                        app=s.ws.app, wait=not (s.opts.detach and not waiters), role_arn=role,
                        progress=service_progress(s, name, env, stack_name, started))
    # Its own stack only; and the artifact bucket, where a template over TemplateBody's limit was uploaded.
    s.changed(env, name=name, stage="deploy", facts=("s3-object",), stack=stack_name)
    if out.get("detached"):
        # Not recorded: the next run checks the live stack again (and waits for it while it is in progress).
        url = target.client("cloudformation").meta.endpoint_url
        where = f" --region {target.settings.region}" + ("" if "amazonaws.com" in url else f" --endpoint-url {url}")
        print(f"detached: stack {stack_name} is being deployed; follow it with `aws cloudformation "
              f"describe-stack-events --stack-name {stack_name}{where}`"
              + ("; --force: no new ECS deployment is forced while detached" if s.opts.force else ""))
        return {"stack": stack_name, "stack_id": out.get("stack_id"), "detached": True}
    if s.opts.force and m.type != JOB:
        cluster = (env_stage.status(s, None, env).result or {}).get("outputs", {}).get("ClusterId")
        print("  " + stacks.force_new_deployment(target, stack_name, cluster, started))
    elif s.opts.force:
        print(f"  --force: {name} is a Scheduled Job; it has no service to roll (its next run uses the current image)")
    live = s.stacks(env).get(stack_name)
    ok, why = stacks.live_ok(s.stacks(env), stack_name, k, inputs["parameters"])
    if not ok:
        raise StageFailed(f"after deploying, {why}")
    result = {"stack": stack_name, "stack_id": out.get("stack_id"), "status": live["status"], "updated": live["updated"]}
    s.record("deploy", stage_id("deploy", name, env), k, result, inputs)
    image = inputs["parameters"].get("ContainerImage")
    kind = "job" if m.type == JOB else "service"
    try:  # the summary only: the deploy is recorded already, a failed lookup must not undo that
        runs = stacks.physical_id(target, stack_name, "StateMachine" if m.type == JOB else "Service")
    except StageFailed as exc:
        runs = f"(not read: {str(exc)[:120]})"
    what = "state machine" if m.type == JOB else "ECS service"
    print(f"deployed {kind} {name} to {env}: stack {stack_name} ({live['status']}), image {image}, {what} {runs}")
    return result
