"""`copilot-doit`: Copilot's `deploy` command line over the doit tasks, plus a few maintenance commands.

    copilot-doit deploy -n frontend -e test [--force] [--no-rollback] [--resource-tags k=v] [--tag T]
    copilot-doit plan -n frontend -e test
    copilot-doit svc|job package -n frontend -e test [--tag T] [--output-dir DIR] [--upload-assets]
    copilot-doit env package -n test [--output-dir DIR] [--upload-assets]
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
  -e, --env string                     Name of the environment.
      --force                          Optional. Force a new service deployment using the existing image.
  -h, --help                           help for deploy
  -n, --name string                    Name of the service or job.
      --no-rollback bool               Optional. Disable automatic stack
                                       rollback in case of deployment failure.
                                       We do not recommend using this flag for a
                                       production environment.
      --resource-tags stringToString   Optional. Labels with a key and value separated by commas.
                                       Allows you to categorize resources. (default [])
      --tag string                     Optional. The container image tag.
  -j, --jobs int                       Optional. Deploy up to N independent workloads at once
                                       (copilot-doit; doit's -n N -P thread). (default 1)
      --deploy-env                     Optional. Replace the template of an environment stack that
                                       Copilot created (by default it is used as it is).
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
  local     status | stop | reset   the embedded moto server and registry of the local target
  cache     usage | prune --older-than DAYS | verify (every object and record checked, stray temp files removed)
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
    p.add_argument("-j", "--jobs", type=int, default=1)
    p.add_argument("-h", "--help", action="store_true")
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
    return argv


def run_doit(argv: list[str]) -> int:
    from doit.cmd_base import ModuleTaskLoader
    from doit.doit_cmd import DoitMain
    from . import interrupt, tasks
    tasks.COMMAND_ARGV = argv
    try:
        rc = DoitMain(ModuleTaskLoader(tasks)).run(argv)
    except KeyboardInterrupt:  # Ctrl-C outside a stack operation (a build, a push): nothing to undo
        print("interrupted", file=sys.stderr)
        return interrupt.EXIT_CODE
    return interrupt.EXIT_CODE if interrupt.last_interrupted() else rc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "deploy":
        a = deploy_parser(f"copilot-doit {cmd}").parse_args(rest)
        if a.help:
            print(DEPLOY_HELP)
            return 0
        return run_doit(doit_argv(cmd, a))
    if cmd == "plan":
        return _plan(rest)
    if cmd in ("svc", "job", "env") and rest[:1] == ["package"]:
        return _package(cmd, rest[1:])
    if cmd == "local":
        return _local(rest)
    if cmd == "cache":
        return _cache(rest)
    print(f"copilot-doit: unknown command '{cmd}'\n\n{USAGE}", file=sys.stderr)
    return 2


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
    from .session import Options, Session, parse_resource_tags
    try:
        names = [n.split("/")[0] for item in a.name or [] for n in item.split(",") if n]
        envs = [e for item in a.env or [] for e in item.split(",") if e]
        s = Session(Options(names=names or None, envs=envs or None, app=a.app, force=bool(a.force),
                            resource_tags=parse_resource_tags(",".join(a.resource_tags or [])), tag=a.tag))
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
            print(c.verify().summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
