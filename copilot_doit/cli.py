"""`copilot-doit`: Copilot's `deploy` command line over the doit tasks, plus a few maintenance commands.

    copilot-doit deploy -n frontend -e test [--force] [--no-rollback] [--resource-tags k=v] [--tag T]
                        [--all] [--all-envs] [--diff | --diff-yes] [--detach]
    copilot-doit plan -n frontend -e test
    copilot-doit svc|job package -n frontend -e test [--tag T] [--output-dir DIR] [--upload-assets]
    copilot-doit env package -n test [--output-dir DIR] [--upload-assets]
    copilot-doit svc|job delete -n api [-e test] [--yes] [--delete-repo]
    copilot-doit local status|stop|reset
    copilot-doit cache usage|prune --older-than DAYS

`deploy` and `plan` run exactly the doit tasks `doit deploy name=... env=...` would.
"""
from __future__ import annotations

import argparse
import sys

DEPLOY_HELP = """\
Deploy a Copilot job or service.

Usage:
  copilot-doit deploy [flags]

Flags:
  -a, --app string                     Name of the application.
      --all                            Optional. Deploy all workloads with manifests in the current Copilot workspace.
      --all-envs                       Optional. Deploy to every environment of the workspace (copilot-doit;
                                       without -e and with more than one environment, deploy asks which on
                                       a terminal and otherwise stops).
      --detach                         Optional. Skip displaying CloudFormation deployment progress
                                       (start the stack operations and return without waiting).
      --diff                           Compares the generated CloudFormation template to the deployed stack.
      --diff-yes                       Skip interactive approval of diff before deploying.
  -e, --env string                     Name of the environment.
      --force                          Optional. Force a new service deployment using the existing image.
  -h, --help                           help for deploy
  -n, --name string                    Name of the service or job. Without it, deploy asks which on a
                                       terminal and otherwise deploys all workloads (and says so).
      --no-rollback bool               Optional. Disable automatic stack
                                       rollback in case of deployment failure.
                                       We do not recommend using this flag for a
                                       production environment.
      --resource-tags stringToString   Optional. Labels with a key and value separated by commas.
                                       Allows you to categorize resources. (default [])
      --tag string                     Optional. The container image tag.
  -j, --jobs int                       Optional. Deploy up to N independent workloads at once
                                       (copilot-doit; doit's -n N -P thread). (default 1)
      --deploy-env                     Optional. Deploy the environment stack too: also replace the
                                       template of one Copilot created, and update one Copilot marks
                                       prod without asking (by default Copilot's is used as it is and
                                       a prod one is updated only after a yes on a terminal).
      --no-deploy-env                  Optional. Never update an existing environment stack (a
                                       missing one is still created).
      --quiet                          Optional. Print errors and the final summary only.
      --no-wait                        Optional. Fail at once if another run holds the cache lock
                                       (copilot-doit; by default the run waits for it).

Examples:
  Deploys a service named "frontend" to a "test" environment.
  `$ copilot-doit deploy --name frontend --env test`
  Deploys a job named "mailer" with additional resource tags to a "prod" environment.
  `$ copilot-doit deploy -n mailer -e prod --resource-tags source/revision=bb133e7,deployment/initiator=manual`
"""

USAGE = """\
usage: copilot-doit <command> [flags]

commands:
  deploy    build, push, package, lint and deploy workloads (see `copilot-doit deploy -h`)
  plan      print what deploy would run and why, with template and parameter diffs; changes nothing
  svc package | job package | env package
            print or write the stack template and parameters (Copilot's file names); changes nothing
            unless --upload-assets (see `copilot-doit svc package -h`)
  svc delete | job delete
            delete a workload's stack from an environment (-e) or from every one and the application
            (Copilot's SSM entry; its ECR repository with --delete-repo); asks first (see `svc delete -h`)
  local     status | stop | reset   the embedded moto server and registry of the local target
  cache     usage | prune --older-than DAYS | verify [--temp-older-than SECONDS] (every object and record
            checked, stray temp files older than an hour, or SECONDS, removed)
"""


PACKAGE_HELP = """\
Print the AWS CloudFormation template of a {what}.

Usage:
  copilot-doit {cmd} package [flags]

Flags:
  -a, --app string          Name of the application.
{env_flag}  -h, --help                help for package
  -n, --name string         Name of the {what}.
      --output-dir string   Optional. Writes the stack template and template configuration to a directory.
{tag_flag}      --upload-assets       Optional. Whether to upload assets (container images, Lambda functions, etc.).
                            Uploaded asset locations are filled in the template configuration.

Examples:
  Write the CloudFormation stack and configuration to a "infrastructure/" sub-directory instead of stdout.
  $ copilot-doit {cmd} package -n {example} --output-dir ./infrastructure
  $ ls ./infrastructure
  {files}
"""


def package_help(cmd: str) -> str:
    if cmd == "env":
        return PACKAGE_HELP.format(what="environment", cmd=cmd, env_flag="", tag_flag="", example="test",
                                   files="test.env.yml      test.env.params.json")
    what = "job" if cmd == "job" else "service"
    return PACKAGE_HELP.format(what=what, cmd=cmd, example="frontend -e test",
                               env_flag="  -e, --env string          Name of the environment.\n",
                               tag_flag="      --tag string          Optional. The container image tag.\n",
                               files="frontend-test.stack.yml      frontend-test.params.json")


class _Args(argparse.ArgumentParser):
    def error(self, message):
        print(f"copilot-doit: {message}\n", file=sys.stderr)
        if self.prog.endswith(" package"):
            print(package_help(self.prog.split()[-2]), file=sys.stderr)
        else:
            print(DEPLOY_HELP if self.prog.endswith(("deploy", "plan")) else USAGE, file=sys.stderr)
        sys.exit(2)


def _bool(value) -> bool:
    if value in (None, True):
        return True
    v = str(value).lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid bool value {value!r} (allowed: true, false)")


def deploy_parser(prog: str) -> argparse.ArgumentParser:
    p = _Args(prog=prog, add_help=False)
    p.add_argument("-a", "--app")
    p.add_argument("-e", "--env", action="append")
    p.add_argument("-n", "--name", action="append")
    p.add_argument("--force", nargs="?", const=True, default=False, type=_bool)
    p.add_argument("--no-rollback", nargs="?", const=True, default=False, type=_bool)
    p.add_argument("--resource-tags", action="append")
    p.add_argument("--tag")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--deploy-env", action="store_true")
    p.add_argument("--no-deploy-env", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("-j", "--jobs", type=int, default=1)
    p.add_argument("-h", "--help", action="store_true")
    if prog.endswith("deploy"):
        p.add_argument("--all", nargs="?", const=True, default=False, type=_bool)
        p.add_argument("--all-envs", nargs="?", const=True, default=False, type=_bool)
        p.add_argument("--diff", nargs="?", const=True, default=False, type=_bool)
        p.add_argument("--diff-yes", nargs="?", const=True, default=False, type=_bool)
        p.add_argument("--detach", nargs="?", const=True, default=False, type=_bool)
    return p


def doit_argv(task: str, a: argparse.Namespace) -> list[str]:
    """The doit command line equivalent to these flags (variables are doit's `name=value`)."""
    argv = [task]
    if getattr(a, "jobs", 1) and a.jobs > 1:  # independent workloads' stages at once (threads)
        argv = ["-n", str(a.jobs), "-P", "thread", task]
    if a.name:
        # Copilot's `-n fe/1` priorities order deploys; here doit orders by dependencies, so drop them.
        argv.append("name=" + ",".join(n.split("/")[0] for item in a.name for n in item.split(",")))
    if a.env:
        argv.append("env=" + ",".join(e for item in a.env for e in item.split(",")))
    if a.app:
        argv.append(f"app={a.app}")
    if a.force:
        argv.append("force=1")
    if a.no_rollback:
        argv.append("no-rollback=1")
    if a.resource_tags:
        argv.append("resource-tags=" + ",".join(a.resource_tags))
    if a.tag:
        argv.append(f"tag={a.tag}")
    if getattr(a, "no_wait", False):
        argv.append("no-wait=1")
    if getattr(a, "deploy_env", False):
        argv.append("deploy-env=1")
    elif getattr(a, "no_deploy_env", False):
        argv.append("deploy-env=0")
    if getattr(a, "prod_confirmed", None):
        argv.append("prod-confirmed=" + ",".join(a.prod_confirmed))
    if getattr(a, "detach", False):
        argv.append("detach=1")
    if getattr(a, "quiet", False):
        argv.append("quiet=1")
    return argv


def run_doit(argv: list[str], session=None) -> int:
    """doit's run of `argv`; `session`: the run's Session, already checked (noop.py), taken over by it."""
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain
    from . import interrupt, tasks
    tasks.COMMAND_ARGV = argv
    tasks.HANDED_OVER = session
    try:
        rc = DoitMain(ModuleTaskLoader(tasks)).run(argv)
    except KeyboardInterrupt:  # Ctrl-C outside a stack operation (a build, a push): nothing to undo
        print("interrupted", file=sys.stderr)
        return interrupt.EXIT_CODE
    return interrupt.EXIT_CODE if interrupt.last_interrupted() else rc


def _usage_error(message: str) -> int:
    """One line on stderr and exit code 2 (a usage error: nothing was started or changed)."""
    print(f"copilot-doit deploy: {message}", file=sys.stderr)
    return 2


def _split(values: list[str] | None) -> list[str]:
    return [v.split("/")[0] for item in values or [] for v in item.split(",") if v]


def _env_hint(ws, env: str) -> str:
    st = ws.env_settings(env)
    if st.target == "local":
        return "local target"
    return ", ".join(x for x in ("aws", st.region, st.profile and f"profile {st.profile}",
                                 st.account and f"account {st.account}") if x)


def _workload_type(ws, name: str) -> str:
    import re
    try:
        text = ws.manifest_path(name).read_text(errors="replace")
    except OSError:
        return ""
    m = re.search(r"^type:\s*['\"]?([^'\"#\n]+?)['\"]?\s*(#.*)?$", text, re.M)
    return m.group(1) if m else ""


def select_for_deploy(a: argparse.Namespace, tty: bool) -> int | None:
    """Fill in `a.name` / `a.env` when they are missing (issue #13, safe selection). Returns an exit code
    to stop with, or None to go on.

    Environments: `-e`, or `--all-envs` on purpose; a workspace with one environment needs no question;
    otherwise a terminal is asked (Copilot's "Select an environment to deploy to") and without one the run
    stops (exit 2) listing them. Workloads: `-n`, or `--all`; a terminal is asked (with an "all" choice);
    without one every workload is deployed and the first line of output says so.
    """
    from . import prompts
    from .errors import UserError
    from .session import load_workspace_with_memo
    if a.env and a.all_envs:
        return _usage_error("-e and --all-envs: name the environments or deploy to all of them, not both")
    if a.all:
        a.name = None
    if a.env and a.name:
        return None
    try:
        ws = load_workspace_with_memo(a.app)
    except UserError:
        return None  # the run itself reports what is wrong with the workspace, as it always did
    envs = ws.environments
    ask_env = not a.env and not a.all_envs and len(envs) > 1
    if ask_env and not tty:
        return _usage_error(
            f"{len(envs)} environments in the workspace ({', '.join(envs)}) and none named: name one with "
            f"-e (e.g. `-e {envs[0]}`), or pass --all-envs to deploy to every environment on purpose")
    try:
        if not a.name and not a.all and tty and len(ws.workloads) > 1:
            a.name = prompts.select_many(
                "Select one or more services or jobs in your workspace.",
                [(n, _workload_type(ws, n)) for n in ws.workloads], "Workloads")
        if ask_env:
            a.env = [prompts.select_one("Select an environment to deploy to",
                                        [(e, _env_hint(ws, e)) for e in envs], "Environment")]
    except prompts.Cancelled as exc:
        print(f"{exc}: nothing deployed", file=sys.stderr)
        from .interrupt import EXIT_CODE
        return EXIT_CODE if exc.interrupted else 1
    if not a.env:
        a.env = list(envs)   # --all-envs, or the only environment: named, so the run deploys exactly these
    if not a.name:
        a.name = list(ws.workloads)
        if not a.all and not tty and ws.workloads:
            print(f"deploying all {len(ws.workloads)} workloads of the workspace ({', '.join(ws.workloads)}): "
                  "no -n given and no terminal to ask on (as Copilot's --all)" if len(ws.workloads) > 1 else
                  f"deploying workload {ws.workloads[0]}, the only one of the workspace: no -n given", flush=True)
    return None


def _stack_changes(plan) -> tuple[list, list]:
    """(stage lines, stack plans) of the stacks a deploy would change: an environment stack whose stage
    runs; a workload stack whose template or parameters differ, which is new, whose diff is not known yet
    (a new image), or which --force redeploys."""
    from .values import replace
    by_task = {st.task: st for st in plan.stages}
    stages, stacks = [], []
    for sp in plan.stacks:
        task = f"env:{sp.env}" if sp.name is None else f"deploy:{sp.name}@{sp.env}"
        st = by_task.get(task)
        if st is None or not st.run:
            continue
        unchanged = (sp.name is not None and not sp.template_diff and not sp.parameters_diff
                     and "equal the deployed stack" in sp.note and not st.reason.startswith("force"))
        if not unchanged:
            what = [w for w, d in (("template", sp.template_diff), ("parameters", sp.parameters_diff)) if d]
            why = f"{' and '.join(what)} differ from the deployed stack" if what else st.reason
            stages.append(replace(st, reason=f"stack {sp.stack}: {why}"))
            stacks.append(sp)
    return stages, stacks


def show_diff(a: argparse.Namespace, ask: bool) -> int | None:
    """--diff / --diff-yes: print each stack the deploy would change with its template and parameter
    diffs (the plan, read-only), then ask. Returns an exit code to stop with, or None to deploy."""
    from . import plan as plan_mod
    from . import prompts
    from .errors import StageFailed, UserError
    from .session import Session
    try:
        s = Session(options_from_args(a))
        plan = plan_mod.build_plan(s)
        s.flush()
    except (UserError, StageFailed) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    stages, changed = _stack_changes(plan)
    if not changed:
        print("no changes: every selected stack's template and parameters equal the deployed ones", flush=True)
        return None
    print(f"{len(changed)} stack(s) would change: {', '.join(sp.stack for sp in changed)}")
    sys.stdout.write(plan_mod.as_text(plan_mod.Plan(plan.app, stages=stages, stacks=changed)))
    sys.stdout.flush()
    if not ask:
        print("--diff-yes: deploying", flush=True)
        return None
    try:
        go = prompts.confirm("Continue with the deployment?")
    except prompts.Cancelled as exc:
        print(f"{exc}: nothing deployed", flush=True)
        from .interrupt import EXIT_CODE
        return EXIT_CODE if exc.interrupted else 0
    if not go:
        print("nothing deployed", flush=True)
        return 0
    return None


def _deploy_env(a: argparse.Namespace) -> bool | None:
    return True if a.deploy_env else False if getattr(a, "no_deploy_env", False) else None


def confirm_prod(a: argparse.Namespace) -> int | None:
    """On a terminal, without --deploy-env / --no-deploy-env: ask before an environment Copilot marks prod
    (its SSM entry) may have its stack updated; a yes is passed on as `prod-confirmed=`. Returns an exit
    code to stop with, or None (`a.prod_confirmed` starts empty). Anything that cannot be read here is left
    for the run to report."""
    from . import prompts
    from .errors import UserError
    from .session import cache_root_for
    from .targets import target_for
    from .workspace import load_workspace
    if a.deploy_env or a.no_deploy_env:
        return None
    try:
        ws = load_workspace(app_override=a.app)
        for env in _split(a.env) or ws.environments:
            settings = ws.env_settings(env)
            if settings.target != "aws":
                continue  # no Copilot registry on the local target
            entry = target_for(settings, cache_root_for(ws.root), ws.app).copilot_env(ws.app, env)
            if entry is not None and entry.prod and prompts.confirm(
                    f"Environment {env} is marked prod in Copilot's application {ws.app}. Update its stack "
                    "if its inputs changed?"):
                a.prod_confirmed.append(env)
    except prompts.Cancelled as exc:
        print(f"{exc}: nothing deployed", file=sys.stderr)
        from .interrupt import EXIT_CODE
        return EXIT_CODE if exc.interrupted else 1
    except UserError:
        return None
    return None


def _deploy(rest: list[str]) -> int:
    a = deploy_parser("copilot-doit deploy").parse_args(rest)
    if a.help:
        print(DEPLOY_HELP)
        return 0
    from . import prompts
    tty = prompts.interactive()
    if a.deploy_env and a.no_deploy_env:
        return _usage_error("--deploy-env and --no-deploy-env: pass one of them")
    if a.diff and not a.diff_yes and not tty:
        return _usage_error("--diff asks before deploying, and there is no terminal to ask on (stdin and stdout "
                            "must be one): use --diff-yes to show the diff and deploy, or `copilot-doit plan` "
                            "to only show it")
    stop = select_for_deploy(a, tty)
    if stop is not None:
        return stop
    a.prod_confirmed = []
    if tty:
        stop = confirm_prod(a)
        if stop is not None:
            return stop
    if a.diff or a.diff_yes:
        stop = show_diff(a, ask=not a.diff_yes)
        if stop is not None:
            return stop
    answered = _answered_as_noop(a)
    if answered is True:
        return 0
    return run_doit(doit_argv("deploy", a), session=answered)


def _answered_as_noop(a: argparse.Namespace):
    """True when nothing had to run: answered without doit (noop.py). Otherwise the run's Session, its
    statuses computed (None when it could not be made): the doit run takes it over (tasks.session), so
    nothing is checked twice, and reports anything wrong in its words."""
    from . import noop
    from .errors import StageFailed, UserError
    from .session import Session
    from .lock import generation
    try:
        s = Session(options_from_args(a))
    except (UserError, StageFailed):
        return None
    s.facts["lock_generation"] = generation(s.cache_root)   # before any status is computed
    try:
        return True if noop.answer(s, quiet=a.quiet) else s
    except KeyboardInterrupt:
        from .interrupt import EXIT_CODE
        print("interrupted", file=sys.stderr)
        raise SystemExit(EXIT_CODE) from None


def options_from_args(a: argparse.Namespace):
    """The run's Options from `deploy`'s (or `plan`'s) flags: what tasks.options_from_vars reads from the
    doit variables doit_argv writes."""
    from .session import Options, parse_resource_tags
    envs = _split(a.env)
    return Options(names=_split(a.name) or None, envs=None if envs in ([], ["all"]) else envs, app=a.app,
                   force=bool(a.force), no_rollback=bool(a.no_rollback),
                   resource_tags=parse_resource_tags(",".join(a.resource_tags or [])), tag=a.tag,
                   deploy_env=_deploy_env(a), prod_confirmed=tuple(getattr(a, "prod_confirmed", None) or ()),
                   detach=bool(getattr(a, "detach", False)))


def main(argv: list[str] | None = None) -> int:
    if _starting_a_worker():
        return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "deploy":
        return _deploy(rest)
    if cmd == "plan":
        return _plan(rest)
    if cmd in ("svc", "job", "env") and rest[:1] == ["package"]:
        return _package(cmd, rest[1:])
    if cmd in ("svc", "job") and rest[:1] == ["delete"]:
        return _delete(cmd, rest[1:])
    if cmd == "local":
        return _local(rest)
    if cmd == "cache":
        return _cache(rest)
    print(f"copilot-doit: unknown command '{cmd}'\n\n{USAGE}", file=sys.stderr)
    return 2


def _starting_a_worker() -> bool:
    """Whether this process is a multiprocessing worker still starting up, re-running its parent's main script
    (the `spawn` and `forkserver` start methods run the script again as `__mp_main__`, and cfn-lint's
    workers under -j N come from the fork server). A script that calls main() without
    `if __name__ == "__main__":` would otherwise deploy again in every worker, each waiting for the cache
    lock its parent holds: a run that never ends. Said once, in the worker; the parent reports its lint
    worker's early exit."""
    mp = sys.modules.get("multiprocessing")   # not imported: not a worker (and no import on the no-op path)
    if mp is None or not getattr(mp.current_process(), "_inheriting", False):
        return False
    print("copilot-doit: main() was called while a worker process started (it re-runs the script that "
          "started copilot-doit): call it under `if __name__ == \"__main__\":`, or use the copilot-doit "
          "command", file=sys.stderr)
    return True


PLAN_HELP = """\
Print what `deploy` would run and why, with template and parameter diffs. Changes nothing.

Usage:
  copilot-doit plan [flags]

Flags: those of `copilot-doit deploy` (-a, -e, -n, --force, --resource-tags, --tag), and
      --format string   text (default), json (stages, reasons, affected workloads, ordering edges,
                        diffs: enough to build a CI matrix) or markdown (a pull-request comment)

Exit codes (like `terraform plan -detailed-exitcode`): 0 nothing would change, 2 something would,
1 an error. (`doit plan` keeps doit's own exit codes.)
"""


def _plan(rest: list[str]) -> int:
    p = deploy_parser("copilot-doit plan")
    p.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    a = p.parse_args(rest)
    if a.help:
        print(PLAN_HELP)
        return 0
    from . import plan as plan_mod
    from .errors import StageFailed, UserError
    from .session import Session
    try:
        s = Session(options_from_args(a))
        plan = plan_mod.build_plan(s)
        s.flush()
    except (UserError, StageFailed) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    render = {"text": plan_mod.as_text, "json": plan_mod.as_json, "markdown": plan_mod.as_markdown}[a.format]
    sys.stdout.write(render(plan))
    return 2 if plan.changes else 0


def _package(cmd: str, rest: list[str]) -> int:
    p = _Args(prog=f"copilot-doit {cmd} package", add_help=False)
    p.add_argument("-a", "--app")
    p.add_argument("-n", "--name")
    if cmd != "env":
        p.add_argument("-e", "--env")
        p.add_argument("--tag")
    p.add_argument("--output-dir")
    p.add_argument("--upload-assets", nargs="?", const=True, default=False, type=_bool)
    p.add_argument("-h", "--help", action="store_true")
    a = p.parse_args(rest)
    if a.help:
        print(package_help(cmd))
        return 0
    from . import packaging
    from .errors import StageFailed, UserError
    from .session import Options, Session
    try:
        if cmd == "env":
            if not a.name:
                raise UserError("which environment?", field="name", allowed="-n <environment>")
            s = Session(Options(names=[], envs=[a.name], app=a.app))
            pkg = packaging.env_package(s, a.name)
            if a.upload_assets:
                print("env package: an environment stack has no assets to upload", file=sys.stderr)
        else:
            if not a.name or not a.env:
                missing = "name" if not a.name else "env"
                raise UserError(f"which {'workload' if missing == 'name' else 'environment'}?", field=missing,
                                allowed=f"{cmd} package -n <name> -e <environment>")
            s = Session(Options(names=[a.name], envs=[a.env], app=a.app, tag=a.tag))
            packaging.check_kind(s, a.name, a.env, cmd)
            pkg = packaging.workload_package(s, a.name, a.env, upload=a.upload_assets)
        for note in pkg.notes:
            print(f"{cmd} package: {note}", file=sys.stderr)
        for path in packaging.write(pkg, a.output_dir):
            print(f"wrote {path}", file=sys.stderr)
        s.flush()
    except (UserError, StageFailed) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


def _delete(kind: str, rest: list[str]) -> int:
    """`svc delete` / `job delete` (copilot_doit/delete.py): Copilot's workload deletion."""
    from . import delete
    return delete.main(kind, rest)


def _cache_root():
    from .errors import UserError
    from .session import cache_root_for
    from .workspace import find_workspace_dir
    try:
        return cache_root_for(find_workspace_dir().parent)
    except UserError as exc:
        print(f"copilot-doit: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _local(rest: list[str]) -> int:
    from .targets.local import services
    action = rest[0] if rest else "status"
    root = _cache_root()
    if action == "status":
        st = services.status(root)
        if not st:
            print("local target: not started (it starts on the first deploy)")
        for name, s in st.items():
            print(f"{name}: {'running' if s['running'] else 'stopped'} pid {s['pid']} port {s['port']} log {s['log']}")
        return 0
    if action not in ("stop", "reset"):
        print("usage: copilot-doit local status|stop|reset", file=sys.stderr)
        return 2
    from .lock import CacheLock  # not under a running deploy: it would lose its emulator mid-way
    with CacheLock(root).acquire(on_wait=lambda line: print(line, file=sys.stderr)):
        if action == "stop":
            stopped = services.stop(root)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        else:
            services.reset(root)
            print("local target: moto state wiped (stacks, ECR records); the next deploy recreates everything")
    return 0


def _cache(rest: list[str]) -> int:
    from .cache import Cache
    p = _Args(prog="copilot-doit cache")
    p.add_argument("action", choices=["usage", "prune", "verify"])
    p.add_argument("--older-than", type=float, default=30.0, help="days (prune)")
    p.add_argument("--temp-older-than", type=float, default=3600.0,
                   help="seconds (verify): stray .tmp-* files older than this are removed; 0 removes every one "
                        "(safe while no other copilot-doit command runs on this cache, read-only ones included)")
    a = p.parse_args(rest)
    root = _cache_root()
    c = Cache(root)
    if a.action == "usage":
        for part, u in c.usage().items():
            print(f"{part:8} {u['files']:7} files {u['bytes'] / 1e6:10.2f} MB")
        return 0
    from .lock import CacheLock
    with CacheLock(root).acquire(on_wait=lambda line: print(line, file=sys.stderr)):
        if a.action == "prune":
            print(f"removed {c.prune(a.older_than)} entries not written for {a.older_than:g} days")
        else:
            print(c.verify(remove_temp_older_than=a.temp_older_than).summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
