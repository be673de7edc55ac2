"""`copilot-doit svc delete` / `job delete`: Copilot's workload deletion (internal/pkg/cli/svc_delete.go,
job_delete.go) for the stacks copilot-doit or Copilot deployed.

Copilot's order:
  1. each selected environment: delete the stack `<app>-<env>-<name>` and wait until it is gone (a job:
     then stop its running tasks, as `copilot job delete` does);
  2. only without -e (the workload leaves the application): the ECR repository `<app>/<name>` — Copilot
     empties it and its application stack set deletes it; copilot-doit deletes it (force: images included)
     only with --delete-repo and otherwise keeps it — then Copilot's SSM entry
     `/copilot/applications/<app>/components/<name>` when it names this workload.

Everything is looked at first and changes nothing (`find`): a stack of that name another tool made, or
one another operation holds, stops the command before anything is deleted. The local cache needs no
change afterwards: the deploy stage's live check finds the stack gone and deploys it again.

    find(ws, target_of, kind, name, envs, whole, delete_repo) -> Deletion   read-only
    summary(d) -> str                                                      what will be deleted, in words
    execute(d, target_of)                                                  the deletions, in Copilot's order
    main(kind, argv) -> exit code                                          the command line
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from . import stacks
from .errors import StageFailed, UserError
from .values import field, value

DELETE_TIMEOUT = 3600.0  # seconds: a stack deletion that takes longer is reported, not waited for
WORDS = {"svc": "service", "job": "job"}
JOB_TYPE = "Scheduled Job"

HELP = """\
Deletes a {word} from an application.

Usage:
  copilot-doit {kind} delete [flags]

Flags:
  -a, --app string    Name of the application.
      --delete-repo   Optional. Also delete the ECR repository <app>/<name> with its images
                      (copilot-doit; only without -e: the workload leaves the application).
  -e, --env string    Name of the environment (a comma list is allowed). Without it the {word} is
                      deleted from every environment of the workspace and from the application.
  -h, --help          help for delete
  -n, --name string   Name of the {word}.
      --yes           Skips confirmation prompt.

Examples:
  Delete the "{example}" {word} from the application.
  $ copilot-doit {kind} delete --name {example}
  Delete the "{example}" {word} from just the prod environment.
  $ copilot-doit {kind} delete --name {example} --env prod
  Delete the "{example}" {word} without confirmation prompt.
  $ copilot-doit {kind} delete --name {example} --yes
"""


def help_text(kind: str) -> str:
    return HELP.format(kind=kind, word=WORDS[kind], example="mailer" if kind == "job" else "api")


@value
class EnvStack:
    """The workload's stack in one environment, as found before anything is deleted."""
    env: str
    stack: str
    status: str | None        # None: no stack of that name
    owner: str | None         # stacks.COPILOT_DOIT | stacks.COPILOT | None


@value
class Place:
    """One account and region the selected environments deploy to (the ECR repository and Copilot's SSM
    entry live once per place, not per environment)."""
    where: str                # in words: "local us-east-1", "aws eu-west-1 (profile prod) account 1111…"
    env: str                  # the first environment there: its target is used


@value
class Deletion:
    kind: str                 # "svc" | "job"
    app: str
    name: str
    envs: list[str]
    whole: bool               # no -e: the workload leaves the application (repository, SSM entry)
    delete_repo: bool
    manifest: str | None      # the workspace's manifest of this workload, if it is still there
    stacks: list[EnvStack] = field(default_factory=list)
    repos: list[Place] = field(default_factory=list)      # --delete-repo: where the repository exists
    kept_repos: list[Place] = field(default_factory=list)  # without --delete-repo: where it exists, kept
    entries: list[Place] = field(default_factory=list)    # where Copilot's SSM entry names this workload
    notes: list[str] = field(default_factory=list)

    @property
    def word(self) -> str:
        return WORDS[self.kind]

    @property
    def repository(self) -> str:
        return f"{self.app}/{self.name}"

    @property
    def entry_path(self) -> str:
        from .registry import workload_path
        return workload_path(self.app, self.name)

    @property
    def nothing(self) -> bool:
        return not any(s.status for s in self.stacks) and not self.repos and not self.entries


def all_environments(ws) -> list[str]:
    """The workspace's environments: its `environments/` folders and the ones copilot-doit.yml names."""
    return list(ws.environments) + sorted(e for e in ws.settings if e not in ws.environments)


def manifest_type(ws, name: str) -> str | None:
    """The `type:` of the workload's manifest, or None when it cannot be read (a broken manifest must not
    stop its own deletion)."""
    from . import yamlsrc
    path = ws.manifest_path(name)
    try:
        data, _ = yamlsrc.load(path, yamlsrc.read_text(path), variables=None)
    except UserError:
        return None
    t = data.get("type") if isinstance(data, dict) else None
    return t if isinstance(t, str) else None


def check_kind(kind: str, name: str, wtype: str | None) -> None:
    """`svc delete` deletes services, `job delete` jobs (Copilot's commands select by kind); a workload no
    longer in the workspace has no manifest to tell, and either command deletes it."""
    if wtype is None:
        return
    if kind == "svc" and wtype == JOB_TYPE:
        raise UserError(f"'{name}' is a Scheduled Job, not a service", field="name",
                        allowed=f"copilot-doit job delete -n {name}")
    if kind == "job" and wtype != JOB_TYPE:
        raise UserError(f"'{name}' is a {wtype}, not a job", field="name",
                        allowed=f"copilot-doit svc delete -n {name}")


def _places(target_of: Callable, envs: list[str]) -> list[Place]:
    """The distinct accounts/regions of `envs` (two local environments share one emulator)."""
    seen: dict = {}
    for env in envs:
        st = target_of(env).settings  # the bound target's: its region may come from Copilot's SSM entry
        key = (st.target, st.region, st.profile, st.account)
        if key not in seen:
            where = " ".join(x for x in (st.target, st.region, st.profile and f"(profile {st.profile})",
                                         st.account and f"account {st.account}") if x)
            seen[key] = Place(where, env)
    return list(seen.values())


def _registry_key(target) -> tuple:
    """Environments whose registry is the same SSM store (one account's home region) share one entry."""
    st = target.settings
    region = target.registry_region()
    return (st.target, st.profile, st.account, region)


def _listed(described: dict | None) -> dict | None:
    """A DescribeStacks answer in the listing's shape `stacks.owner` reads."""
    if described is None:
        return None
    return {"status": described["StackStatus"], "tags": stacks._tags(described)}


def _busy(status: str | None) -> bool:
    """Another operation holds the stack (a deletion in progress is waited for, a create never run is
    deleted like any other stack)."""
    return bool(status) and status.endswith("_IN_PROGRESS") and status not in ("DELETE_IN_PROGRESS",
                                                                                "REVIEW_IN_PROGRESS")


def _refuse_busy(stack: str, status: str) -> None:
    raise StageFailed(f"stack {stack} is {status}: another operation holds it; nothing was deleted — try again "
                      "when it has finished")


def _call_unless_absent(what: str, fn, absent: type, **kwargs) -> bool:
    """One AWS call: True when it answered, False when what it acts on does not exist (`absent`); any other
    failure is one sentence with AWS's message."""
    try:
        fn(**kwargs)
        return True
    except absent:
        return False
    except Exception as exc:
        failed = stacks.api_failure(what, exc)
        if failed is None:
            raise
        raise failed from None


def _ecr_repository_call(target, what: str, method: str, repo: str, **kwargs) -> bool:
    ecr = target.client("ecr")
    return _call_unless_absent(f"{what} {repo}", getattr(ecr, method), ecr.exceptions.RepositoryNotFoundException,
                               **kwargs)


def _repository_exists(target, repo: str) -> bool:
    return _ecr_repository_call(target, "DescribeRepositories", "describe_repositories", repo, repositoryNames=[repo])


def find(ws, target_of: Callable, kind: str, name: str, envs: list[str], whole: bool,
         delete_repo: bool = False) -> Deletion:
    """What `delete` would do, read-only: the account check and one DescribeStacks per environment, and
    without -e the repository and Copilot's SSM entry per account/region. Raises UserError for an unknown
    workload, a workload of the other kind or credentials of another account, StageFailed for a stack
    another tool made or another operation holds — before anything is deleted."""
    from . import registry
    in_ws = name in ws.workloads
    check_kind(kind, name, manifest_type(ws, name) if in_ws else None)
    d = Deletion(kind, ws.app, name, list(envs), whole, delete_repo,
                 f"{ws.dir.name}/{name}/manifest.yml" if in_ws else None)
    for env in envs:
        target_of(env).account_id()  # credentials of another account than copilot-doit.yml's stop here
    for env in envs:
        stack = stacks.workload_stack_name(ws.app, env, name)
        cfn = target_of(env).client("cloudformation")
        listed = _listed(stacks._describe(cfn, stack))
        stacks.refuse_foreign(listed, stack, ws.app, env, name)
        status = listed["status"] if listed else None
        if _busy(status):
            _refuse_busy(stack, status)
        d.stacks.append(EnvStack(env, stack, status, stacks.owner(listed, ws.app, env, name)))
    if whole:
        registries: set = set()
        for place in _places(target_of, envs):
            target = target_of(place.env)
            if _repository_exists(target, d.repository):
                (d.repos if delete_repo else d.kept_repos).append(place)
            if target.copilot_app(ws.app) is None:  # no Copilot application there (the local target has none)
                continue
            if _registry_key(target) in registries:
                continue
            registries.add(_registry_key(target))
            entry = stacks._call(f"GetParameter {d.entry_path}",
                                 lambda: registry.read_workload(target.registry_client(), ws.app, name))
            if entry is None:
                continue
            if entry.app == ws.app and entry.name == name:
                d.entries.append(place)
            else:
                d.notes.append(f"Copilot's SSM entry {d.entry_path} ({place.where}) names application "
                               f"'{entry.app}' and workload '{entry.name}', not {ws.app}/{name}: left alone")
    if not in_ws and d.nothing and not d.kept_repos:
        where = ", ".join(envs)
        stack = stacks.workload_stack_name(ws.app, "<env>", name)
        raise UserError(f"no {d.word} named '{name}': it is not in the workspace ({ws.dir}) and no stack "
                        f"{stack} exists in environment{'s' if len(envs) > 1 else ''} {where}", field="name",
                        allowed=", ".join(ws.workloads) or "none found")
    return d


def summary(d: Deletion) -> str:
    """What will be deleted (and what will not), one line each."""
    out = [f"{d.kind} delete {d.name} from "
           + (f"application {d.app}:" if d.whole else
              f"environment{'s' if len(d.envs) > 1 else ''} {', '.join(d.envs)} of application {d.app}:")]
    for s in d.stacks:
        if s.status is None:
            out.append(f"  no stack {s.stack} in environment {s.env}: nothing to delete there")
        else:
            out.append(f"  stack {s.stack} (environment {s.env}, {s.status}, deployed by {s.owner}): deleted")
    if d.whole:
        for p in d.repos:
            out.append(f"  ECR repository {d.repository} ({p.where}): deleted with its images (--delete-repo)")
        for p in d.kept_repos:
            out.append(f"  ECR repository {d.repository} ({p.where}): kept with its images (--delete-repo "
                       "deletes it)")
        for p in d.entries:
            out.append(f"  Copilot's SSM entry {d.entry_path} ({p.where}): removed")
    out += [f"  {n}" for n in d.notes]
    if d.manifest:
        out.append(f"  note: {d.name} is still in the workspace ({d.manifest}): the next deploy of it creates "
                   "its stack again; remove its folder to keep it deleted")
    return "\n".join(out) + "\n"


def question(d: Deletion) -> str:
    """Copilot's confirmation question."""
    what = d.name if d.kind == "svc" else f"job {d.name}"
    if d.whole:
        return f"Are you sure you want to delete {what} from application {d.app}?"
    envs = f"environment{'s' if len(d.envs) > 1 else ''} {', '.join(d.envs)}"
    return f"Are you sure you want to delete {what} from {envs}?"


def delete_stack(target, stack: str, app: str, env: str, name: str, timeout: float = DELETE_TIMEOUT) -> bool:
    """Delete the workload's stack and wait until it is gone (bounded). Described again first: a stack of
    that name another tool made since `find` is still refused. True when a stack was deleted.
    DELETE_FAILED raises with CloudFormation's reasons (a second run retries the deletion). In an
    environment Copilot registered, CloudFormation deletes as its execution role (Copilot's
    `DeleteAndWaitWithRoleARN`)."""
    cfn = target.client("cloudformation")
    copilot_env = target.copilot_env(app, env)
    role = {"RoleARN": copilot_env.execution_role_arn} if copilot_env and copilot_env.execution_role_arn else {}
    deleted = False
    for _ in range(5):  # an emulator may hold more than one stack of a name: each is removed in turn
        current = stacks._describe(cfn, stack)
        if current is None:
            return deleted
        listed = _listed(current)
        stacks.refuse_foreign(listed, stack, app, env, name)
        if _busy(listed["status"]):
            _refuse_busy(stack, listed["status"])
        stack_id = current["StackId"]
        started = time.time()
        if listed["status"] != "DELETE_IN_PROGRESS":
            stacks._call(f"DeleteStack {stack}", cfn.delete_stack, StackName=stack_id, **role)
        final = _wait_deleted(cfn, stack, stack_id, started, timeout)
        if final is not None and final["StackStatus"] != "DELETE_COMPLETE":
            reasons = stacks._failure_reasons(cfn, stack_id, started)
            raise StageFailed(f"stack {stack} ended {final['StackStatus']}: "
                              f"{reasons or final.get('StackStatusReason') or 'no reason given'} — fix what it names "
                              "and run the delete again (it retries the deletion)")
        deleted = True
    return deleted


def _wait_deleted(cfn, stack: str, stack_id: str, started: float, timeout: float) -> dict | None:
    """Poll the stack by id (a deleted stack stays describable by id) until it is no longer in progress,
    printing its events once each; None when it vanished."""
    seen: set = set()

    def step():
        try:
            events = cfn.describe_stack_events(StackName=stack_id).get("StackEvents", [])
        except Exception as exc:  # events are progress only: a stack that is gone has none to give
            if stacks.api_failure("DescribeStackEvents", exc) is None:
                raise
            events = []
        stacks.print_events(events, seen, started, stack)
        return stacks._describe(cfn, stack_id)

    return stacks._poll(step, lambda s: s is None or not s["StackStatus"].endswith("_IN_PROGRESS"), timeout,
                        f"the deletion of stack {stack}")


def stop_job_tasks(target, app: str, env: str, name: str) -> int:
    """Copilot's `job delete` stops the job's running tasks after its stack is gone (a task the state
    machine started outlives it). The cluster is the environment stack's `ClusterId` output; returns how
    many tasks were stopped."""
    env_stack = stacks._describe(target.client("cloudformation"), f"{app}-{env}")
    outputs = {o["OutputKey"]: o.get("OutputValue") for o in (env_stack or {}).get("Outputs") or []}
    cluster = outputs.get("ClusterId")
    if not cluster:
        return 0
    ecs = target.client("ecs")
    arns: list[str] = []
    family = stacks.workload_stack_name(app, env, name)
    token = None
    while True:
        page = stacks._call("ListTasks", ecs.list_tasks, cluster=cluster, family=family,
                            desiredStatus="RUNNING", **({"nextToken": token} if token else {}))
        arns += page.get("taskArns") or []
        token = page.get("nextToken")
        if not token:
            break
    for arn in arns:
        stacks._call("StopTask", ecs.stop_task, cluster=cluster, task=arn, reason=f"copilot-doit job delete -n {name}")
    return len(arns)


def delete_repository(target, repo: str) -> bool:
    """Delete the ECR repository with its images (force); False when it was already gone."""
    return _ecr_repository_call(target, "DeleteRepository", "delete_repository", repo, repositoryName=repo, force=True)


def delete_registry_entry(ssm, app: str, name: str) -> bool:
    """Remove Copilot's `/copilot/applications/<app>/components/<name>` when it still names this workload
    (read again: another tool may have changed it since `find`); False when absent or not ours.
    Copilot's `Store.DeleteService` / `DeleteJob`: DeleteParameter, ParameterNotFound is no error."""
    from . import registry
    path = registry.workload_path(app, name)
    entry = stacks._call(f"GetParameter {path}", registry.read_workload, ssm=ssm, app=app, name=name)
    if entry is None or entry.app != app or entry.name != name:
        return False
    return _call_unless_absent(f"DeleteParameter {path}", ssm.delete_parameter, ssm.exceptions.ParameterNotFound,
                               Name=path)


def execute(d: Deletion, target_of: Callable, timeout: float = DELETE_TIMEOUT) -> None:
    """Copilot's order: every environment's stack (a job's tasks after it), then — only without -e — the
    repository (with --delete-repo) and Copilot's SSM entry."""
    for s in d.stacks:
        if s.status is None:
            continue
        target = target_of(s.env)
        print(f"Deleting stack {s.stack} from environment {s.env} …", flush=True)
        delete_stack(target, s.stack, d.app, s.env, d.name, timeout)
        if d.kind == "job":
            stopped = stop_job_tasks(target, d.app, s.env, d.name)
            if stopped:
                print(f"Stopped {stopped} running task(s) of job {d.name} from environment {s.env}.")
        print(f"Deleted {d.word} {d.name} from environment {s.env}.", flush=True)
    if not d.whole:
        return
    for p in d.repos:
        if delete_repository(target_of(p.env), d.repository):
            print(f"Deleted ECR repository {d.repository} ({p.where}) with its images.", flush=True)
    for p in d.entries:
        if delete_registry_entry(target_of(p.env).registry_client(), d.app, d.name):
            print(f"Removed Copilot's SSM entry {d.entry_path} ({p.where}).", flush=True)
    print(f"Deleted {d.word} {d.name} from application {d.app}.", flush=True)


# --- the command line ---------------------------------------------------------------------------------
class _Args(argparse.ArgumentParser):
    def error(self, message):
        print(f"copilot-doit: {message}\n", file=sys.stderr)
        print(help_text(self.prog.split()[-2]), file=sys.stderr)
        sys.exit(2)


def parser(kind: str) -> argparse.ArgumentParser:
    p = _Args(prog=f"copilot-doit {kind} delete", add_help=False)
    p.add_argument("-a", "--app")
    p.add_argument("-n", "--name")
    p.add_argument("-e", "--env", action="append")
    p.add_argument("--yes", action="store_true")
    p.add_argument("--delete-repo", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    return p


def _usage(kind: str, message: str) -> int:
    print(f"copilot-doit {kind} delete: {message}", file=sys.stderr)
    return 2


def _select_envs(ws, named: list[str]) -> list[str]:
    envs = all_environments(ws)
    for e in named:
        if e not in envs:
            raise UserError(f"no environment named '{e}' in the workspace", field="env",
                            allowed=", ".join(envs) or "none found")
    return named or envs


def main(kind: str, argv: list[str]) -> int:
    """`copilot-doit svc|job delete`. Exit 0 done (or declined, or nothing to delete), 1 an error (nothing
    after it was deleted), 2 a usage error (nothing was looked at), 130 Ctrl-C."""
    from . import prompts
    from .interrupt import EXIT_CODE
    from .workspace import COPILOT_NAME_RE, COPILOT_NAME_RULE, load_workspace
    a = parser(kind).parse_args(argv)
    if a.help:
        print(help_text(kind))
        return 0
    named_envs = [e for item in a.env or [] for e in item.split(",") if e]
    if a.delete_repo and named_envs:
        return _usage(kind, "--delete-repo deletes the repository every environment's images come from: only "
                            "without -e (the workload then leaves the application)")
    tty = prompts.interactive()
    if not a.yes and not tty:
        return _usage(kind, "it asks before deleting, and there is no terminal to ask on (stdin and stdout must "
                            "be one): pass --yes to delete without asking")
    targets: dict = {}
    try:
        ws = load_workspace(app_override=a.app)
        if not a.name:
            if not tty:  # unreachable without --yes; with it, a name is required
                raise UserError(f"which {WORDS[kind]}?", field="name", allowed=f"-n <{WORDS[kind]} name>")
            wanted = [n for n in ws.workloads if (manifest_type(ws, n) == JOB_TYPE) == (kind == "job")]
            if not wanted:
                raise UserError(f"no {WORDS[kind]} in the workspace to choose from", field="name",
                                allowed=f"-n <{WORDS[kind]} name> (a workload no longer in the workspace)")
            a.name = prompts.select_one(f"Which {WORDS[kind]} would you like to delete?",
                                        [(n, manifest_type(ws, n) or "") for n in wanted], WORDS[kind].capitalize())
        if not COPILOT_NAME_RE.match(a.name) or "--" in a.name or a.name.endswith("-"):
            raise UserError(f"'{a.name[:60]}' is not a {WORDS[kind]} name", field="name", allowed=COPILOT_NAME_RULE)
        envs = _select_envs(ws, named_envs)
        from .session import cache_root_for
        from .targets import target_for
        root = cache_root_for(ws.root)

        def target_of(env: str):
            if env not in targets:
                targets[env] = target_for(ws.env_settings(env), root, ws.app)
            return targets[env]

        d = find(ws, target_of, kind, a.name, envs, whole=not named_envs, delete_repo=a.delete_repo)
        sys.stdout.write(summary(d))
        if d.nothing:
            print("nothing to delete", flush=True)
            return 0
        if not a.yes:
            if not prompts.confirm(question(d)):
                print(f"{kind} delete cancelled - no changes made", flush=True)
                return 0
        from .lock import CacheLock  # not while a deploy of this workspace runs
        with CacheLock(root, f"copilot-doit {kind} delete -n {a.name}").acquire(
                on_wait=lambda line: print(line, file=sys.stderr, flush=True)):
            execute(d, target_of)
    except (UserError, StageFailed) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except prompts.Cancelled as exc:
        print(f"{exc}: nothing deleted", file=sys.stderr)
        return EXIT_CODE if exc.interrupted else 1
    except KeyboardInterrupt:
        print("interrupted: a stack deletion already started goes on in CloudFormation", file=sys.stderr)
        return EXIT_CODE
    finally:
        for t in targets.values():
            t.close()
    return 0
