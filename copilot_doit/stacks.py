"""CloudFormation stacks, shared by the env and deploy stages: the live check and the upsert.

live:   a stage's key is written on its stack as the tag `copilot-doit:deploy-key`, so the live check
        is one DescribeStacks per environment: the stack exists, is in a stable *_COMPLETE state (not a
        rollback) and carries the same key (and the parameters and update time we recorded).
deploy: Copilot's upsert (research/copilot.md §1.5): describe; none/REVIEW_IN_PROGRESS -> CREATE change
        set; ROLLBACK_COMPLETE -> delete, then CREATE; *_IN_PROGRESS -> refuse; else UPDATE. An empty
        change set is deleted and reported as "no changes". Never a waiter after an API error.
"""
from __future__ import annotations

import time

from . import interrupt
from .errors import StageFailed
from .hashing import Key
from .targets import Target

STABLE_STATES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
# A rolled-back update is live again with the template, parameters and tags (our key) it had before:
# the live check accepts it, but a deploy that ends there has failed.
LIVE_STATES = STABLE_STATES + ("UPDATE_ROLLBACK_COMPLETE",)
MAX_TEMPLATE_BODY = 51_200  # bytes: CloudFormation's limit for TemplateBody (TemplateURL allows 1 MB)
KEY_TAG = "copilot-doit:deploy-key"
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
NO_ROLLBACK_WARNING = (
    "The --no-rollback flag is not recommended while deploying to a production environment as it may "
    "introduce service downtime.\nIf the deployment fails when automatic stack rollback is disabled, you may "
    "be required to manually start the stack rollback of the stack via the AWS console or AWS CLI before the "
    "next deployment.")


COPILOT_DOIT = "copilot-doit"
COPILOT = "Copilot"
FOREIGN = "another tool"


def workload_stack_name(app: str, env: str, name: str) -> str:
    """Copilot's workload stack name `<app>-<env>-<name>` (CloudFormation allows 128 characters)."""
    return f"{app}-{env}-{name}"[:128]


def owner(listed: dict | None, app: str, env: str, workload: str | None = None) -> str | None:
    """Who made a stack of this name: copilot-doit (its key tag), Copilot (its tags for this app, env and
    workload, without ours), or another tool; None when there is no stack."""
    if listed is None:
        return None
    tags = listed.get("tags") or {}
    if KEY_TAG in tags:
        return COPILOT_DOIT
    mine = tags.get("copilot-application") == app and tags.get("copilot-environment") == env
    if mine and (workload is None or tags.get("copilot-service") == workload):
        return COPILOT
    return FOREIGN


def refuse_foreign(listed: dict | None, name: str, app: str, env: str, workload: str | None = None) -> None:
    """A stack of our name that another tool made is never touched."""
    if owner(listed, app, env, workload) == FOREIGN:
        tags = ", ".join(f"{k}={v}" for k, v in sorted((listed.get("tags") or {}).items())[:4]) or "no tags"
        raise StageFailed(f"stack {name} exists but was created by neither copilot-doit nor Copilot for "
                          f"application {app} ({tags}): copilot-doit does not touch it; rename the "
                          "application or environment, or delete that stack yourself")


def live_ok(stacks: dict, name: str, k: Key, parameters: dict | None = None,
            updated: str | None = None) -> tuple[bool, str]:
    """(holds, reason) from one DescribeStacks listing. `parameters` and `updated` (recorded after our
    last deploy) catch a stack changed behind the tool's back while its tags still carry our key."""
    s = stacks.get(name)
    if s is None:
        return False, f"stack {name} does not exist"
    if s["status"] not in LIVE_STATES:
        return False, f"stack {name} is {s['status']}"
    deployed = s["tags"].get(KEY_TAG)
    if deployed != k.hex:
        if deployed is None:
            return False, f"stack {name} was not deployed by copilot-doit"
        return False, f"stack {name} was deployed from other inputs (key {deployed[:12]}, now {k.short})"
    # Only the parameters copilot-doit passes: the stack may declare others it leaves at their defaults or
    # carries with their live values (Copilot's, kept in a stack Copilot made: copilot_resources.py; its env
    # controller's lists on an environment stack), which other tools may set.
    if parameters is not None and s.get("parameters") is not None and \
            any(s["parameters"].get(p) != v for p, v in parameters.items()):
        changed = sorted(p for p in parameters if s["parameters"].get(p) != parameters.get(p))
        return False, f"stack {name} parameters were changed outside copilot-doit ({', '.join(changed[:3])})"
    if updated and s["updated"] and not same_time(s["updated"], updated):
        return False, f"stack {name} was updated outside copilot-doit (at {s['updated']}, we deployed {updated})"
    return True, f"stack {name} is {s['status']} with the same template, parameters and tags (since {s['updated']})"


def same_time(a: str, b: str) -> bool:
    """Two renderings of one timestamp: the plain-HTTP path keeps the API's text (`…T…Z`), boto3's path
    a datetime's str() (`… …+00:00`); compared as instants, so switching paths is not a change."""
    from datetime import datetime
    if a == b:
        return True
    try:
        return datetime.fromisoformat(a.replace("Z", "+00:00")) == datetime.fromisoformat(b.replace("Z", "+00:00"))
    except ValueError:
        return False


def deployable(target: Target, body: str, missing_imports: set[str] = frozenset()) -> str:
    """The linted body as the target will run it, saying what its compat step changed (if anything)."""
    body_to_run, notes = target.deployable(body, missing_imports)
    for n in notes:
        print(f"  {target.kind} compat: {n}")
    return body_to_run


def _error_text(exc) -> str:
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict) and "Error" in resp:
        return f"{resp['Error'].get('Code')}: {resp['Error'].get('Message')}"
    return str(exc)


def _call(what: str, fn, **kwargs):
    """One API call; any failure becomes a StageFailed carrying AWS's own message (no waiter follows)."""
    try:
        return fn(**kwargs)
    except Exception as exc:
        failed = api_failure(what, exc)
        if failed is None:
            raise
        raise failed from None


def api_failure(what: str, exc: BaseException) -> StageFailed | None:
    """A boto3 call's failure as one sentence (None for an exception that is not botocore's): AWS's own
    message, or the endpoint that did not answer (a timeout, a refused or dropped connection)."""
    if not type(exc).__module__.startswith("botocore"):
        return None
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
    from botocore.parsers import ResponseParserError
    if isinstance(exc, ClientError):
        return StageFailed(f"{what} failed: {_error_text(exc)}")
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url") or "the endpoint"
        return StageFailed(f"{what} failed: {endpoint} did not answer ({exc})")
    if isinstance(exc, (BotoCoreError, ResponseParserError)):
        # An endpoint may answer a nested service's error in that service's protocol: keep the body.
        text = str(exc)
        body = text[text.find("b'"):] if "b'" in text else text
        return StageFailed(f"{what} failed: {body}")
    return None


def _describe(cfn, name: str) -> dict | None:
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]
    except Exception as exc:
        if "does not exist" in str(exc) and type(exc).__name__ == "ClientError":
            return None
        failed = api_failure(f"DescribeStacks {name}", exc)
        if failed is None:
            raise
        raise failed from None


def _poll(fn, done, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    interval = 0.05
    while True:
        value = fn()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise StageFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 2, 5.0)


def template_source(target: Target, app: str, name: str, body: str) -> dict:
    """`TemplateBody`, or for a body over CloudFormation's 51,200-byte limit, `TemplateURL` of a copy
    uploaded to the app's artifact bucket under Copilot's content-addressed path
    (`manual/templates/<stack>/<sha256>.yml`)."""
    data = body.encode()
    if len(data) <= MAX_TEMPLATE_BODY:
        return {"TemplateBody": body}
    import hashlib  # here: only a template too big for TemplateBody needs it (the no-op never does)
    bucket = target.artifact_bucket(app)
    key = f"manual/templates/{name}/{hashlib.sha256(data).hexdigest()}.yml"
    target.ensure_bucket(bucket, {"copilot-application": app})
    target.upload(bucket, key, data)
    print(f"  template is {len(data):,} bytes (over CloudFormation's {MAX_TEMPLATE_BODY:,}-byte TemplateBody limit):"
          f" uploaded to s3://{bucket}/{key}")
    return {"TemplateURL": target.object_url(bucket, key)}


def deploy(target: Target, name: str, template_body: str, parameters: dict, tags: dict,
           disable_rollback: bool = False, timeout: float = 5400, app: str | None = None,
           wait: bool = True, role_arn: str | None = None, progress=None) -> dict:
    """Upsert `name`. Returns {"stack_id", "status", "changed"}; raises StageFailed with the reason.
    `app` names the artifact bucket a template too large for TemplateBody is uploaded to. `wait=False`
    (--detach) returns once the change set is executing, with "detached": True and no final status.
    `role_arn`: the role CloudFormation acts as (Copilot's environment CloudFormation execution role).
    `progress`: called on every poll while the stack deploys (rollout.ServiceProgress: the ECS rollout);
    its `failure_text()` (the stopped tasks' reasons) is added to a failure's message."""
    try:
        return _deploy(target, name, template_body, parameters, tags, disable_rollback, timeout, app, wait,
                       role_arn, progress)
    except StageFailed as exc:
        extra = progress.failure_text() if progress is not None else ""
        if extra and extra not in str(exc):
            raise StageFailed(f"{exc}{extra}") from None
        raise
    except Exception as exc:  # a call outside _call (an upload, a describe) that failed or got no answer
        failed = api_failure(f"deploying stack {name}", exc)
        if failed is None:
            raise
        raise failed from None


def _deploy(target: Target, name: str, template_body: str, parameters: dict, tags: dict,
            disable_rollback: bool, timeout: float, app: str | None, wait: bool = True,
            role_arn: str | None = None, progress=None) -> dict:
    cfn = target.client("cloudformation")
    current = prepare(target, cfn, name, tags.get(KEY_TAG), parameters)
    if current is not None and current.get("adopted"):
        return current
    status = current["StackStatus"] if current else None
    cs_type = "CREATE" if status is None else "UPDATE"
    import uuid  # here: the no-op never makes a change set (uuid imports platform: ~5 ms)
    cs_name = f"copilot-doit-{uuid.uuid4()}"
    started = time.time()
    cs = _call("CreateChangeSet", cfn.create_change_set, StackName=name, ChangeSetName=cs_name,
               ChangeSetType=cs_type, **template_source(target, app or name, name, template_body),
               Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
               Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())],
               Capabilities=CAPABILITIES, Description="copilot-doit deploy",
               **({"RoleARN": role_arn} if role_arn else {}))
    cs_id = cs["Id"]
    desc = _poll(lambda: _call("DescribeChangeSet", cfn.describe_change_set, ChangeSetName=cs_id, StackName=name),
                 lambda d: d["Status"] in ("CREATE_COMPLETE", "FAILED"), timeout, f"change set {cs_name}")
    if desc["Status"] == "FAILED":
        reason = desc.get("StatusReason") or ""
        if any(t in reason for t in NO_CHANGES):
            _call("DeleteChangeSet", cfn.delete_change_set, ChangeSetName=cs_id, StackName=name)
            print(f"  - No new infrastructure changes for stack {name}")
            return {"stack_id": desc.get("StackId"), "status": status, "changed": False}
        raise StageFailed(f"change set for stack {name} failed: {reason}")
    print(f"  change set {cs_name} ({cs_type}, {len(desc.get('Changes') or [])} changes)"
          + (" executing with DisableRollback" if disable_rollback else ""))
    # Ctrl-C from here on, as Copilot: an update is cancelled and rolled back, a create deleted.
    with interrupt.cancel_on_interrupt(cfn, name, stack_id=cs.get("StackId") or desc.get("StackId"),
                                       timeout=timeout):
        _call("ExecuteChangeSet", cfn.execute_change_set, ChangeSetName=cs_id, StackName=name,
              DisableRollback=disable_rollback)
        if not wait:
            return {"stack_id": cs.get("StackId") or desc.get("StackId"), "status": None, "changed": True,
                    "detached": True}
        final = _stream(cfn, name, started, timeout, progress)
    if final["StackStatus"] not in STABLE_STATES:
        reasons = _failure_reasons(cfn, name, started)
        hint = ""
        if disable_rollback:
            hint = (f"\n  rollback is disabled: run `aws cloudformation rollback-stack --stack-name {name}` "
                    "before the next deployment")
        raise StageFailed(f"stack {name} ended {final['StackStatus']}: {reasons or final.get('StackStatusReason', '')}{hint}")
    return {"stack_id": final["StackId"], "status": final["StackStatus"], "changed": True}


# A failed first create never served anything: delete it and create again (as Copilot does).
DELETE_AND_RECREATE = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED")


def prepare(target: Target, cfn, name: str, key: str | None, parameters: dict) -> dict | None:
    """Bring the stack to a state a change set can start from; returns its description (None: create).

    REVIEW_IN_PROGRESS (a create whose change set was never executed: a failure, a kill, a Ctrl-C)
    and a failed first create are deleted, with their change sets; UPDATE_ROLLBACK_FAILED and a failed
    update under --no-rollback stop with the command that unblocks them; a stack another run is
    deploying is waited for (bounded), and if it then carries this very deploy key and parameters the
    result is adopted ({"adopted": True}) rather than deployed twice.
    """
    current = _describe(cfn, name)
    status = current["StackStatus"] if current else None
    if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        current = _wait_for_other_run(target, cfn, name, status)
        status = current["StackStatus"] if current else None
        if current and status in LIVE_STATES and key and _tags(current).get(KEY_TAG) == key \
                and _params(current) == {k: str(v) for k, v in parameters.items()}:
            print(f"  stack {name} was deployed with the same key by another run while we waited: adopted")
            return {"adopted": True, "stack_id": current["StackId"], "status": status, "changed": False}
    for _ in range(5):  # the emulator may hold more than one stack of a name: each is removed in turn
        if status == "REVIEW_IN_PROGRESS":
            print(f"  stack {name} is REVIEW_IN_PROGRESS (a create that never ran): removing it and its change sets")
            _delete_change_sets(cfn, current["StackId"])
        elif status in DELETE_AND_RECREATE:
            print(f"  stack {name} is {status} after a failed create: deleting it first")
        else:
            break
        _delete(cfn, name, current["StackId"])
        current = _describe(cfn, name)
        status = current["StackStatus"] if current else None
    if status == "UPDATE_ROLLBACK_FAILED":
        raise StageFailed(f"stack {name} is UPDATE_ROLLBACK_FAILED: CloudFormation could not roll back the last "
                          f"update. Fix the resource named in its events, then run `aws cloudformation "
                          f"continue-update-rollback --stack-name {name}` and deploy again")
    if status == "UPDATE_FAILED":
        raise StageFailed(f"stack {name} is UPDATE_FAILED after a deploy with --no-rollback: run `aws "
                          f"cloudformation rollback-stack --stack-name {name}` before the next deployment")
    return current


def _tags(stack: dict) -> dict:
    return {t["Key"]: t["Value"] for t in stack.get("Tags") or []}


def _params(stack: dict) -> dict:
    return {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters") or []}


def _wait_for_other_run(target: Target, cfn, name: str, status: str) -> dict | None:
    """Another run (another machine: CloudFormation is the lock between them) is deploying this stack:
    wait, with a line every 30 s, for at most the target's bound."""
    limit = target.in_progress_wait
    print(f"  stack {name} is {status}: another deployment is running; waiting up to {limit:.0f}s for it")
    started = time.monotonic()
    last_said = [started]

    def still_running(d):
        if d is None or not d["StackStatus"].endswith("_IN_PROGRESS"):
            return False
        if time.monotonic() - last_said[0] >= 30:
            last_said[0] = time.monotonic()
            print(f"  … stack {name} is still {d['StackStatus']} ({time.monotonic() - started:.0f}s)")
        return True

    try:
        return _poll(lambda: _describe(cfn, name), lambda d: not still_running(d), limit, f"stack {name}")
    except StageFailed:
        raise StageFailed(f"stack {name} stayed {status} for {limit:.0f}s: another operation holds it; "
                          f"try again when it has finished{target.stuck_stack_hint}") from None


def _delete_change_sets(cfn, stack_id: str) -> None:
    summaries = _call("ListChangeSets", cfn.list_change_sets, StackName=stack_id).get("Summaries") or []
    for cs in summaries:
        _call("DeleteChangeSet", cfn.delete_change_set, ChangeSetName=cs["ChangeSetId"], StackName=stack_id)


def _delete(cfn, name: str, stack_id: str, timeout: float = 1800) -> None:
    """Delete by id (a name may already point at a newer stack) and wait until it is gone."""
    _call("DeleteStack", cfn.delete_stack, StackName=stack_id)
    _poll(lambda: _describe(cfn, stack_id), lambda d: d is None or d["StackStatus"] == "DELETE_COMPLETE",
          timeout, f"deletion of {name}")


def print_events(events: list, seen: set, started: float, name: str) -> None:
    """DescribeStackEvents' events (newest first) not printed yet and not older than `started`, oldest first,
    one line each: `  <resource> <status> - <reason>` (on a terminal, live.py draws them Copilot-style);
    `seen` (event ids) is updated."""
    from . import live
    show = live.display()
    for e in reversed(events):
        ts = e.get("Timestamp")
        if e["EventId"] in seen or (ts is not None and ts.timestamp() < started - 1):
            continue
        seen.add(e["EventId"])
        reason = f" - {e['ResourceStatusReason']}" if e.get("ResourceStatusReason") else ""
        show.stack_event(name, e, f"  {e.get('LogicalResourceId', name)} {e.get('ResourceStatus')}{reason}")


def _stream(cfn, name: str, started: float, timeout: float, progress=None) -> dict:
    seen: set[str] = set()

    def step():
        events = _call("DescribeStackEvents", cfn.describe_stack_events, StackName=name).get("StackEvents", [])
        print_events(events, seen, started, name)
        if progress is not None:
            progress()
        return _describe(cfn, name)

    return _poll(step, lambda s: s is not None and not s["StackStatus"].endswith("_IN_PROGRESS"), timeout,
                 f"stack {name}")


def _failure_reasons(cfn, name: str, started: float) -> str:
    events = _call("DescribeStackEvents", cfn.describe_stack_events, StackName=name).get("StackEvents", [])
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")
              and (e.get("Timestamp") is None or e["Timestamp"].timestamp() >= started - 1)]
    return "; ".join(f"{e.get('LogicalResourceId')}: {e.get('ResourceStatusReason', '')}" for e in reversed(failed[-3:]))


def _stack_resource(target: Target, stack_name: str, logical_id: str) -> dict:
    return target.client("cloudformation").describe_stack_resource(
        StackName=stack_name, LogicalResourceId=logical_id)["StackResourceDetail"]


def physical_id(target: Target, stack_name: str, logical_id: str) -> str:
    res = _call("DescribeStackResource", _stack_resource, target=target, stack_name=stack_name, logical_id=logical_id)
    return res.get("PhysicalResourceId") or "?"


def physical_id_if_created(target: Target, stack_name: str, logical_id: str) -> str | None:
    """The resource's physical id, or None while the stack has not created it yet (a deploy in progress).
    Any other failure is the API's own exception: the caller (rollout.ServiceProgress) retries a throttled
    call at its next poll."""
    try:
        res = _stack_resource(target, stack_name, logical_id)
    except Exception as exc:
        if "does not exist" in str(exc) and type(exc).__name__ == "ClientError":
            return None
        raise
    return res.get("PhysicalResourceId") or None


def force_new_deployment(target: Target, stack_name: str, cluster: str, since: float) -> str:
    """Copilot's --force: roll the ECS service unless this run's stack update already did."""
    ecs = target.client("ecs")
    service = physical_id(target, stack_name, "Service")
    desc = _call("DescribeServices", ecs.describe_services, cluster=cluster, services=[service])["services"]
    if desc:
        deployments = desc[0].get("deployments") or []
        updated = deployments[0].get("updatedAt") if deployments else None
        if updated is not None and updated.timestamp() > since:
            return f"service {service} was already redeployed by this stack update"
    _call("UpdateService", ecs.update_service, cluster=cluster, service=service, forceNewDeployment=True)
    if target.waits_for_services:
        _poll(lambda: _call("DescribeServices", ecs.describe_services, cluster=cluster, services=[service])["services"][0],
              lambda s: len(s.get("deployments") or []) == 1 and s["desiredCount"] == s["runningCount"],
              1200, f"service {service} to become stable")
        return f"forced a new deployment of service {service}; it is stable"
    return (f"forced a new deployment of service {service} (the local target's ECS does not run tasks: "
            "not waiting for stability)")
