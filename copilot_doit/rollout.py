"""Watch an ECS service roll out after its stack deploys, as Copilot's progress does
(internal/pkg/stream/ecs.go, internal/pkg/term/progress/ecs.go): running/desired/pending per deployment,
the deployment's rollout state, the service's failure events, every stopped task with its stopped reason
and its essential containers' exit codes, and circuit-breaker rollbacks named as such.

Plain functions over a boto3 ECS client passed in (the caller owns the client, its region and retries):
`snapshot` (one DescribeServices), `stopped_tasks` (ListTasks + DescribeTasks), `lines` (what changed, in
plain words) and `watch` (poll until the rollout ends; raises StageFailed when it fails or times out).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from .errors import StageFailed
from .values import field, value

PRIMARY = "PRIMARY"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
SHORT_TASK_ID = 8          # Copilot's ecs.ShortTaskID
DESCRIBE_BATCH = 100       # DescribeTasks takes at most 100 tasks per call
POLL_INTERVAL = 5.0        # seconds between polls (Copilot: ~3-4 s with jitter)
REASONS_IN_ERROR = 3       # stopped tasks named in a StageFailed message
# A task stopped by the scheduler to make room for the new deployment (or to scale in) is not a failure:
# Copilot leaves these out too (stream/ecs.go, ecsScalingActivity).
SCALING_ACTIVITY = "Scaling activity initiated by"
# Copilot's keywords for a service event worth showing (stream/ecs.go, ecsEventFailureKeywords).
FAILURE_KEYWORDS = ("fail", "unhealthy", "error", "throttle", "unable", "missing", "alarm detected", "rolling back")
THROTTLED = ("Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
             "TooManyRequestsException")
CIRCUIT_BREAKER = "circuit breaker"


@value(frozen=True)
class Deployment:
    """One entry of DescribeServices' `deployments`."""

    id: str
    status: str                 # PRIMARY (the one ECS converges to), ACTIVE (being drained), INACTIVE
    rollout_state: str | None   # IN_PROGRESS | COMPLETED | FAILED; absent for non-rolling controllers
    rollout_state_reason: str
    task_definition: str
    running: int
    desired: int
    pending: int
    failed_tasks: int
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def revision(self) -> str:
        """`family:revision` of the task definition ARN (Copilot shows the revision)."""
        return self.task_definition.rsplit("/", 1)[-1]


@value(frozen=True)
class ServiceEvent:
    id: str
    created_at: datetime | None
    message: str


@value(frozen=True)
class Rollout:
    """One DescribeServices of a service: its PRIMARY deployment, the others, its recent failure events."""

    name: str                          # what the lines call the service (the workload name, say)
    service_status: str                # ACTIVE | DRAINING | INACTIVE
    primary: Deployment
    others: tuple[Deployment, ...] = ()
    events: tuple[ServiceEvent, ...] = ()   # failure events (Copilot's keywords), oldest first
    rollback: bool = False             # the circuit breaker rolls a failed deployment back

    deployment_id = property(lambda self: self.primary.id)
    status = property(lambda self: self.primary.status)
    rollout_state = property(lambda self: self.primary.rollout_state)
    rollout_state_reason = property(lambda self: self.primary.rollout_state_reason)
    running = property(lambda self: self.primary.running)
    desired = property(lambda self: self.primary.desired)
    pending = property(lambda self: self.primary.pending)
    failed_tasks = property(lambda self: self.primary.failed_tasks)

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        return (self.primary,) + self.others

    def find(self, deployment_id: str) -> Deployment | None:
        return next((d for d in self.deployments if d.id == deployment_id), None)


@value(frozen=True)
class ContainerExit:
    name: str
    exit_code: int | None
    reason: str


@value(frozen=True)
class StoppedTask:
    """A stopped task of the service: why ECS stopped it, and how its essential containers ended."""

    task_id: str                 # short id (Copilot's 8 characters)
    task_arn: str
    stopped_reason: str
    stop_code: str
    stopped_at: datetime | None
    started_by: str              # the deployment that started it (ecs-svc/...)
    containers: tuple[ContainerExit, ...] = field(default=())


# --- reading ---------------------------------------------------------------------------------------------
def _utc(value) -> datetime | None:
    """botocore gives aware datetimes; a naive one (a caller's `since`) is taken as UTC."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _deployment(d: dict) -> Deployment:
    return Deployment(
        id=d.get("id", ""), status=d.get("status", ""), rollout_state=d.get("rolloutState") or None,
        rollout_state_reason=d.get("rolloutStateReason", ""), task_definition=d.get("taskDefinition", ""),
        running=d.get("runningCount", 0), desired=d.get("desiredCount", 0), pending=d.get("pendingCount", 0),
        failed_tasks=d.get("failedTasks", 0), created_at=_utc(d.get("createdAt")), updated_at=_utc(d.get("updatedAt")))


def _is_failure_event(message: str) -> bool:
    return any(k in message for k in FAILURE_KEYWORDS)


def snapshot(ecs, cluster: str, service: str, *, name: str | None = None, since: datetime | None = None) -> Rollout:
    """The service's rollout as one DescribeServices sees it. `since` keeps only the failure events
    created at or after it (the events of earlier deploys stay out of this one's lines)."""
    resp = ecs.describe_services(cluster=cluster, services=[service])
    services = resp.get("services") or []
    if not services:
        why = ", ".join(f.get("reason", "") for f in resp.get("failures") or []) or "not found"
        raise StageFailed(f"ECS service {service} in cluster {cluster}: {why}")
    svc = services[0]
    deployments = [_deployment(d) for d in svc.get("deployments") or []]
    primary = next((d for d in deployments if d.status == PRIMARY), None)
    if primary is None:
        raise StageFailed(f"ECS service {service} in cluster {cluster} has no PRIMARY deployment "
                          f"(service status {svc.get('status', '?')})")
    since = _utc(since)
    events = []
    for e in svc.get("events") or []:  # newest first, up to 100
        created = _utc(e.get("createdAt"))
        if since is not None and created is not None and created < since:
            break
        if _is_failure_event(e.get("message", "")):
            events.append(ServiceEvent(id=e.get("id", ""), created_at=created, message=e.get("message", "")))
    breaker = (svc.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker") or {}
    return Rollout(name=name or svc.get("serviceName", service), service_status=svc.get("status", ""),
                   primary=primary, others=tuple(d for d in deployments if d is not primary),
                   events=tuple(reversed(events)), rollback=bool(breaker.get("enable") and breaker.get("rollback")))


def _essential_containers(ecs, task_definition: str, cache: dict) -> set | None:
    """Names of the essential containers of a task definition (None: unknown, show every container).
    DescribeTasks does not say which containers are essential; the task definition does."""
    if task_definition not in cache:
        try:
            td = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
            cache[task_definition] = {c["name"] for c in td.get("containerDefinitions") or []
                                      if c.get("essential", True)}
        except Exception as exc:  # no ecs:DescribeTaskDefinition: the exit codes still help
            if _error_code(exc) is None:
                raise
            cache[task_definition] = None
    return cache[task_definition]


def stopped_tasks(ecs, cluster: str, service: str, since: datetime, seen: set, *,
                  essentials: dict | None = None) -> list[StoppedTask]:
    """The service's tasks that stopped at or after `since` and are not in `seen`, oldest first.

    ListTasks(desiredStatus=STOPPED) pages through every task ECS still remembers (about an hour);
    only the ARNs not in `seen` are described, in batches of 100. `seen` (task ARNs) is updated in place
    with every task that is settled: stopped before `since`, stopped by a scaling activity (the old tasks
    a rolling deploy replaces, left out as Copilot does), or returned here. A task still stopping (no
    `stoppedAt` yet, so no exit code) stays out of `seen` and comes back once it has stopped.
    `essentials` caches task definition ARN -> essential container names across calls."""
    since = _utc(since)
    essentials = {} if essentials is None else essentials
    arns: list[str] = []
    kwargs = {"cluster": cluster, "serviceName": service, "desiredStatus": "STOPPED", "maxResults": 100}
    while True:
        page = ecs.list_tasks(**kwargs)
        arns += [a for a in page.get("taskArns") or [] if a not in seen]
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    out = []
    for i in range(0, len(arns), DESCRIBE_BATCH):
        resp = ecs.describe_tasks(cluster=cluster, tasks=arns[i:i + DESCRIBE_BATCH])
        seen.update(f["arn"] for f in resp.get("failures") or [] if f.get("arn"))  # gone: never ask again
        for t in resp.get("tasks") or []:
            arn = t["taskArn"]
            stopped_at = _utc(t.get("stoppedAt"))
            stopping_at = _utc(t.get("stoppingAt"))
            if stopped_at is None:
                if stopping_at is not None and since is not None and stopping_at < since:
                    seen.add(arn)
                continue
            seen.add(arn)
            if since is not None and stopped_at < since:
                continue
            reason = t.get("stoppedReason", "")
            if reason.startswith(SCALING_ACTIVITY):
                continue
            wanted = _essential_containers(ecs, t.get("taskDefinitionArn", ""), essentials) \
                if t.get("taskDefinitionArn") else None
            containers = tuple(
                ContainerExit(name=c.get("name", ""), exit_code=c.get("exitCode"), reason=c.get("reason", ""))
                for c in t.get("containers") or []
                if (wanted is None or c.get("name") in wanted) and (c.get("exitCode") is not None or c.get("reason")))
            out.append(StoppedTask(task_id=arn.rsplit("/", 1)[-1][:SHORT_TASK_ID], task_arn=arn,
                                   stopped_reason=reason, stop_code=t.get("stopCode", ""), stopped_at=stopped_at,
                                   started_by=t.get("startedBy", ""), containers=containers))
    out.sort(key=lambda s: s.stopped_at)
    return out


# --- words -----------------------------------------------------------------------------------------------
def task_line(task: StoppedTask) -> str:
    """`task 3f2a1b9c stopped: Essential container in task exited (container app exit code 1)`."""
    why = task.stopped_reason or task.stop_code or "no reason given"
    parts = []
    for c in task.containers:
        text = f"container {c.name}"
        if c.exit_code is not None:
            text += f" exit code {c.exit_code}"
        if c.reason:
            text += f": {c.reason}"
        parts.append(text)
    return f"task {task.task_id} stopped: {why}" + (f" ({'; '.join(parts)})" if parts else "")


def counts(r: Rollout) -> str:
    """`service api: 1/2 running, 1 pending (deployment ecs-svc/123 IN_PROGRESS)`."""
    text = f"service {r.name}: {r.running}/{r.desired} running, {r.pending} pending"
    if r.failed_tasks:
        text += f", {r.failed_tasks} failed"
    state = r.rollout_state or r.status
    others = "".join(f"; {d.id} {d.status}{' ' + d.rollout_state if d.rollout_state else ''}: {d.running} running"
                     for d in r.others)
    return f"{text} (deployment {r.deployment_id} {state}{others})"


def _shape(r: Rollout) -> tuple:
    return tuple((d.id, d.status, d.rollout_state, d.running, d.desired, d.pending, d.failed_tasks)
                 for d in r.deployments)


def _reason(text: str) -> str:
    return text.strip().rstrip(".")


def _failure_text(now: Rollout, failed: Deployment) -> str:
    """`deployment X FAILED: <reason>`, and what ECS did about it: the circuit breaker's rollback."""
    text = f"deployment {failed.id} FAILED"
    if failed.rollout_state_reason:
        text += f": {_reason(failed.rollout_state_reason)}"
    breaker = CIRCUIT_BREAKER in (failed.rollout_state_reason + now.rollout_state_reason).lower()
    if failed.id != now.deployment_id:
        who = "the circuit breaker rolled back" if breaker else "ECS rolled back"
        text += f" — {who} to deployment {now.deployment_id} ({now.primary.revision})"
    elif now.rollback:
        text += " — the circuit breaker rolls back to the last completed deployment (its rollback is on)"
    return text


def lines(prev: Rollout | None, now: Rollout, stopped: list[StoppedTask] | tuple = (), *,
          since: datetime | None = None) -> list[str]:
    """The plain-words lines for what changed from `prev` to `now` (everything, when `prev` is None),
    plus one line per newly stopped task. With `since`, a deployment's FAILED or COMPLETED line is said
    only when that happened after it (an old deployment's state is not news of this deploy)."""
    since = _utc(since)
    out = []
    if prev is None or _shape(prev) != _shape(now):
        out.append(counts(now))
    out += [task_line(t) for t in stopped]
    old_events = {e.id for e in prev.events} if prev else set()
    out += [f"service {now.name} event: {e.message}" for e in now.events if e.id not in old_events]
    primary_changed = prev is not None and prev.deployment_id != now.deployment_id
    failed = [d for d in now.deployments if d.rollout_state == FAILED and _after(d.updated_at, since)]
    for d in failed:
        before = prev.find(d.id) if prev else None
        if before is None or before.rollout_state != FAILED or primary_changed:
            out.append(_failure_text(now, d))
    if primary_changed and prev.find(now.deployment_id) and not failed:
        # An older deployment is PRIMARY again: ECS rolled back (the failed one may already be gone).
        breaker = CIRCUIT_BREAKER in now.rollout_state_reason.lower()
        out.append(f"service {now.name}: {'the circuit breaker rolled back' if breaker else 'ECS rolled back'} to "
                   f"deployment {now.deployment_id} ({now.primary.revision})")
    if now.rollout_state == COMPLETED and _after(now.primary.updated_at, since) and (
            prev is None or prev.rollout_state != COMPLETED or primary_changed
            or not _after(prev.primary.updated_at, since)):
        out.append(f"deployment {now.deployment_id} COMPLETED: {now.running}/{now.desired} running")
    return out


# --- the watch -------------------------------------------------------------------------------------------
def _error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (None for anything else)."""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict) and isinstance(resp.get("Error"), dict):
        return resp["Error"].get("Code") or "?"
    return None


def _error_text(exc: BaseException) -> str:
    err = exc.response["Error"]  # type: ignore[attr-defined]
    return f"{err.get('Code')}: {err.get('Message', '')}"


def _after(t: datetime | None, since: datetime | None) -> bool:
    return t is None or since is None or t >= since


def _fresh(d: Deployment, since: datetime | None) -> bool:
    """Created by this deploy (at or after `since`)."""
    return since is None or (d.created_at is not None and d.created_at >= since)


def _outcome(r: Rollout, since: datetime | None, target: str | None) -> tuple[str, Deployment | None]:
    """("failed", the failed deployment) | ("done", None) | ("running", None).

    `target` is this deploy's deployment: the last PRIMARY created at or after `since` (a forced new
    deployment after the stack's replaces the stack's). An older deployment PRIMARY again after it is a
    rollback. Before this deploy's deployment shows up, the old PRIMARY is COMPLETED but not updated
    since `since`: still running (Copilot's rule: a deployment counts only when updated after the start)."""
    for d in r.deployments:
        if d.rollout_state == FAILED and (d.id == target or (d is r.primary and _after(d.updated_at, since))
                                          or (d is not r.primary and d.created_at and _fresh(d, since))):
            return "failed", d
    p = r.primary
    if target is not None and p.id != target:
        # Our deployment is no longer PRIMARY: rolled back (the failed one may be drained and gone already).
        return "failed", r.find(target) or Deployment(
            id=target, status="INACTIVE", rollout_state=FAILED, rollout_state_reason="", task_definition="",
            running=0, desired=0, pending=0, failed_tasks=0)
    if not _after(p.updated_at, since):
        return "running", None
    done = p.rollout_state == COMPLETED or (p.rollout_state is None and p.running == p.desired and not r.others)
    if done:
        # Stable, yet a service event since `since` says ECS rolled back: the failed deployment was drained
        # before a poll saw it (a watch started late, or a rollback that made a new deployment).
        back = next((e for e in r.events if "rolling back to" in e.message), None)
        if back is not None:
            return "failed", Deployment(id="(this deploy's)", status="INACTIVE", rollout_state=FAILED,
                                        rollout_state_reason=back.message, task_definition="", running=0,
                                        desired=0, pending=0, failed_tasks=0)
    return ("done" if done else "running"), None


def watch(ecs, cluster: str, service: str, since: datetime, timeout: float, out=print, sleep=time.sleep,
          clock=time.monotonic, *, name: str | None = None, interval: float = POLL_INTERVAL) -> Rollout:
    """Poll the service until this deploy's deployment is COMPLETED (or, without a rollout state, runs
    its desired count as the only deployment), printing a line through `out` whenever something changes.

    `since` is when the deploy started (a little before the stack operation: ECS times are the server's);
    deployments and tasks older than it belong to earlier deploys. Call it only when the stack operation
    updates the ECS service: a service the update leaves alone never gets a new deployment, and the watch
    ends at `timeout` (seconds) with a StageFailed saying what it saw last. A FAILED deployment (the
    circuit breaker's, with its rollback) raises StageFailed with the reason and the last stopped tasks."""
    since = _utc(since)
    deadline = clock() + timeout
    seen: set = set()
    essentials: dict = {}
    stopped: list[StoppedTask] = []
    prev: Rollout | None = None
    target: str | None = None
    read_tasks = True
    while True:
        try:
            now = snapshot(ecs, cluster, service, name=name, since=since)
        except StageFailed:
            raise
        except Exception as exc:
            code = _error_code(exc)
            if code is None:
                raise
            if code not in THROTTLED:
                raise StageFailed(f"DescribeServices {service} in cluster {cluster} failed: "
                                  f"{_error_text(exc)}") from None
            now = None  # throttled: try again at the next poll
        if now is not None:
            new: list[StoppedTask] = []
            if read_tasks:
                try:
                    new = stopped_tasks(ecs, cluster, service, since, seen, essentials=essentials)
                except Exception as exc:
                    code = _error_code(exc)
                    if code is None:
                        raise
                    if code not in THROTTLED:  # e.g. no ecs:ListTasks: carry on without the reasons
                        read_tasks = False
                        out(f"service {now.name}: cannot read its stopped tasks ({_error_text(exc)}); "
                            f"watching without them")
            stopped += new
            for line in lines(prev, now, new, since=since):
                out(line)
            if now.primary.created_at is not None and _fresh(now.primary, since):
                target = now.deployment_id
            verdict, failed = _outcome(now, since, target)
            if verdict == "done":
                return now
            if verdict == "failed":
                raise StageFailed(f"service {now.name}: {_failure_text(now, failed)}{_last_tasks(stopped)}")
            prev = now
        left = deadline - clock()
        if left <= 0:
            seen_text = counts(prev) if prev else "DescribeServices was throttled every time"
            raise StageFailed(f"service {name or service}: the rollout did not finish within {timeout:.0f}s "
                              f"(ECS carries on with it); last seen: {seen_text}{_last_tasks(stopped)}")
        sleep(min(interval, left))


def _last_tasks(stopped: list[StoppedTask]) -> str:
    """The last few stopped tasks, newest first, tasks that stopped alike in one entry (as Copilot groups
    them by stopped reason)."""
    if not stopped:
        return ""
    groups: dict[str, list[str]] = {}
    for t in reversed(stopped[-REASONS_IN_ERROR:]):
        groups.setdefault(task_line(t).split(" stopped: ", 1)[1], []).append(t.task_id)
    return "; last stopped tasks: " + "; ".join(
        f"{'task' if len(ids) == 1 else 'tasks'} {', '.join(ids)} stopped: {why}" for why, ids in groups.items())


class ServiceProgress:
    """The rollout of one workload's ECS service shown while its stack deploys: called on every poll of
    the stack (copilot_doit/stacks.py), it prints what changed (counts, deployment state, failure events,
    each stopped task's reason and exit codes) and keeps the stopped tasks for the failure message.

    `find_service()` returns the service's ARN or name once the stack has created it (None before). The
    watch is an aid: any error reading ECS is said once and the watch stops; the deploy's outcome is the
    stack's (CloudFormation waits for the service to stabilise, and its circuit breaker fails the stack)."""

    def __init__(self, ecs, cluster: str, find_service, since: datetime, name: str, out=None):
        self.ecs, self.cluster, self.find_service, self.name, self.out = ecs, cluster, find_service, name, out
        self.since = _utc(since)
        self.service: str | None = None
        self.prev: Rollout | None = None
        self.seen: set = set()
        self.essentials: dict = {}
        self.stopped: list[StoppedTask] = []
        self.off = False

    def __call__(self) -> None:
        if self.off:
            return
        try:
            if self.service is None:
                self.service = self.find_service()
                if self.service is None:
                    return
            now = snapshot(self.ecs, self.cluster, self.service, name=self.name, since=self.since)
            new = stopped_tasks(self.ecs, self.cluster, self.service, self.since, self.seen,
                                essentials=self.essentials)
        except Exception as exc:
            if isinstance(exc, StageFailed) or _error_code(exc) is not None:
                if _error_code(exc) in THROTTLED:
                    return  # the next poll tries again
                self.off = True
                self._say(None, [f"  service {self.name}: rollout not shown ({str(exc)[:200]})"])
                return
            raise
        self.stopped += new
        self._say(counts(now), [f"  {line}" for line in lines(self.prev, now, new, since=self.since)])
        self.prev = now

    def _say(self, counts_line: str | None, said: list[str]) -> None:
        """Through `out` when one was given, else the run's display (plain lines, or live on a terminal)."""
        if self.out is None:
            from . import live
            live.display().rollout(self.name, counts_line, said)
        else:
            for line in said:
                self.out(line)

    def failure_text(self) -> str:
        """`; last stopped tasks: …` for a failed deploy's message ("" when no task stopped)."""
        return _last_tasks(self.stopped)
