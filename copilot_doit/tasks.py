"""The doit face of the pipeline: the only module that speaks doit.

    env:<env>                     the environment stack <app>-<env>
    build:<name>@<env>            docker build            push:<name>@<env>     push to ECR
    package:<name>@<env>          render CloudFormation   lint:<name>@<env>     cfn-lint
    deploy:<name>@<env>           create/update the stack <app>-<env>-<name>
    deploy                        the group: every selected deploy:<name>@<env>
    plan                          print what would run and why, with template and parameter diffs

Variables: name= (comma list), env= (comma list; `all` for every environment: a run that may change
anything, without env=, in a workspace with more than one environment, stops with exit 2), app=, tag=, force=1, no-rollback=1,
resource-tags=k=v,k2=v2, deploy-env=1 (replace an env stack Copilot created), detach=1 (start the workload
stacks' operations and return without waiting; not recorded, the next run checks them again), no-wait=1 (fail at once if another run holds the cache lock). Each task's `uptodate` is a `StageCheck`, whose text is the reason doit shows
in `doit info`; the reporter prints the same reason beside doit's `.` / `--` marks.
"""
from __future__ import annotations

import atexit
import inspect
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from doit import get_var
from doit.exceptions import InvalidCommand, TaskFailed
from doit.reporter import ConsoleReporter

from . import linting, live
from .cache import ensure_root
from .errors import StageFailed, UserError
from .session import Options, Session, cache_root_for, parse_resource_tags
from .stages import ENV, STAGES, WORKLOAD_STAGES, prefetch
from .yamlsrc import flush_memo

# Stages spawn processes (docker build, the local services) from doit's worker threads and from the
# concurrent status checks, while other threads import modules and write SQLite. CPython 3.11's vfork
# path was suspected of the -j tests' SIGSEGVs (in _posixsubprocess): fork. (Their cause was found later:
# doit swapping sys.stdout from worker threads, see _stage_task.)
subprocess._USE_VFORK = False

_SESSION: tuple | None = None


def _settle_before_fork() -> None:
    """A fork (doit's `-P process` workers, a multiprocessing pool) first waits for the checks going on in
    the background (stages.prefetch): a thread copied mid-flight would leave its locks held in the child.
    subprocess's fork + exec runs no such hook (no preexec_fn here), so a build does not wait."""
    for s in (HANDED_OVER, _SESSION[1] if _SESSION is not None else None):
        if s is not None:
            s.settle()


os.register_at_fork(before=_settle_before_fork)
_MAIN_PID = os.getpid()   # doit's dispatching process (a `-P process` worker is a fork of it)
_CHECK_AHEAD = False      # tasks run in threads (-n N -P thread): _check_next checks the next stage early
# doit's command line as given (cli.py sets it; under `doit` it is sys.argv): decides whether this run
# may change anything and so must hold the cache lock.
COMMAND_ARGV: list[str] | None = None
# The Session `copilot-doit deploy` made to check for a no-op (noop.py) when something must run: its
# statuses are computed already, so this run takes it over instead of checking everything again.
HANDED_OVER: Session | None = None
# doit commands that change nothing we own: they never wait for the lock. `run` (the default) does,
# unless every task named is `plan`.
READ_ONLY_COMMANDS = {"list", "info", "help", "dumpdb", "strace", "tabcompletion", "forget", "ignore",
                      "clean", "reset-dep", "auto"}
_OPTIONS_WITH_VALUE = {"-n", "--process", "-P", "--parallel-type", "-f", "--file", "-d", "--dir", "-k",
                       "--seek-file", "-s", "-v", "--verbosity", "-r", "--reporter", "-o", "--output-file",
                       "--db-file", "--dep-file", "--backend", "--check_file_uptodate", "--codec-cls"}


def _words(argv: list[str]) -> list[str]:
    """The command and task names of a doit command line (no options, no name=value variables)."""
    words, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in _OPTIONS_WITH_VALUE:
            skip = True
        elif not a.startswith("-") and "=" not in a:
            words.append(a)
    return words


def _targets(words: list[str]) -> list[str]:
    """The task names of a `run` (doit's default command) among the command line's words."""
    return words[1:] if words and words[0] == "run" else words


def changes_the_world(argv: list[str]) -> bool:
    """Whether this doit command line may run a stage (so must hold the cache lock)."""
    words = _words(argv)
    if words and words[0] in READ_ONLY_COMMANDS:
        return False
    targets = _targets(words)
    return any(t != "plan" for t in targets) or not targets


def asks_which_env(argv: list[str]) -> bool:
    """A run without env= that may change anything through a group (`deploy`, `build`, …, or the default
    task): which environments is a question. A task named with its environment (`env:test`,
    `deploy:api@prod`) is no question."""
    if not changes_the_world(argv):
        return False
    targets = _targets(_words(argv))
    return not targets or any(":" not in t and t != "plan" for t in targets)


def refuse_unnamed_envs(app: str | None) -> None:
    """Exit 2 with one line when the workspace has more than one environment (issue #13: never every
    environment, production included, by default)."""
    from .workspace import load_workspace
    envs = load_workspace(app_override=app).environments
    if len(envs) > 1:
        print(f"ERROR: {len(envs)} environments in the workspace ({', '.join(envs)}) and no env= given: name "
              f"one (env={envs[0]}), or env=all to deploy to every environment on purpose", file=sys.stderr)
        raise SystemExit(2)


def _list(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _flag(value: str | None) -> bool:
    return str(value or "").lower() in ("1", "true", "yes", "on")


def options_from_vars() -> Options:
    envs = _list(get_var("env"))
    return Options(names=_list(get_var("name")), envs=None if envs == ["all"] else envs, app=get_var("app") or None,
                   force=_flag(get_var("force")), no_rollback=_flag(get_var("no-rollback")),
                   resource_tags=parse_resource_tags(get_var("resource-tags")), tag=get_var("tag") or None,
                   deploy_env=None if get_var("deploy-env") in (None, "") else _flag(get_var("deploy-env")),
                   prod_confirmed=tuple(_list(get_var("prod-confirmed")) or ()), detach=_flag(get_var("detach")))


def session() -> Session:
    """One Session per doit run (doit re-creates its variables dict on every run)."""
    global _SESSION
    import doit.doit_cmd as cmd
    marker = id(cmd._CMDLINE_VARS)
    if _SESSION is None or _SESSION[0] != marker:
        try:
            argv = COMMAND_ARGV if COMMAND_ARGV is not None else sys.argv[1:]
            opts = options_from_vars()
            if not get_var("env") and asks_which_env(argv):
                refuse_unnamed_envs(opts.app)
            handed = _taken_over(opts)
            s = handed or Session(opts)
            if changes_the_world(argv):
                lock = hold_cache_lock(s)
                if handed is not None and another_run_came(handed.facts.get("lock_generation"), lock.generation):
                    s.forget_everything()   # its statuses were checked before that run: they may be stale
        except UserError as exc:
            raise InvalidCommand(str(exc)) from None
        atexit.register(s.flush)
        atexit.register(s.stop_background)   # first (atexit: last in, first out): no new check during the flush
        _SESSION = (marker, s)
    return _SESSION[1]


def _taken_over(opts: Options) -> Session | None:
    """The Session handed over by `copilot-doit deploy` (HANDED_OVER) when it was made for these options.
    Its statuses were computed without the lock (noop.py); the lock's generation, read before they were,
    says whether another run held the lock since: then they are forgotten and checked again."""
    global HANDED_OVER
    s, HANDED_OVER = HANDED_OVER, None
    return s if s is not None and s.opts == opts and s.pid == os.getpid() else None


def another_run_came(seen: int | None, taken: int) -> bool:
    """Whether another run took the lock between a read of its generation (`seen`, before statuses were
    checked without it) and this run's own take (`taken`: exactly one more when nobody came between)."""
    return seen is None or taken != seen + 1   # `taken` is -1 when it could not be written: always unequal


def hold_cache_lock(s: Session):
    """One run at a time per cache root (the local target's services included). Taken before any
    status is computed, so a run that waited sees what the other one did; released at exit. Returns the
    CacheLock (its `generation` tells a handed-over session whether another run came in between)."""
    from .lock import CacheLock
    lock = CacheLock(s.cache_root).acquire(wait=not _flag(get_var("no-wait")),
                                           on_wait=lambda line: print(line, file=sys.stderr, flush=True))
    atexit.register(lock.release)
    return lock


class StageCheck:
    """doit `uptodate` callable for one stage; its str() is the plain-words reason."""

    # doit reads an uptodate callable's signature before every call (inspect.signature walks the bound
    # __call__: ~30 µs) and, for a parameter named `values`, loads the task's saved values from its state DB.
    # This check takes neither `task` nor `values` (its answers live in the Session): said once, here.
    __signature__ = inspect.Signature()

    def __init__(self, stage: str, name: str | None, env: str):
        self.stage, self.name, self.env = stage, name, env
        self.reason = "not checked yet"
        self.error: Exception | None = None

    def __call__(self):
        self.error = None
        try:
            s = session()
            prefetch(s, background=True)   # once per session; this check waits for its own answer only
            st = STAGES[self.stage].status(s, self.name, self.env)
        except (UserError, StageFailed) as exc:
            # Reported by the action, cleanly, instead of a traceback from inside doit's checker.
            self.error = exc
            self.reason = f"cannot check: {exc}"
            return False
        self.reason = ("will run: " if st.run else "up to date: ") + st.reason
        return not st.run

    def __str__(self):
        return self.reason

    __repr__ = __str__


class StageDoc(str):
    """A task's doc line that, once doit has checked the task, also says why it would run or skip.

    `doit list --status` formats the doc after checking the status, so the reason shows there too:
    `R build:frontend@test  docker build ... | will run: 1 context file changed: www/index.html`.
    """

    def __new__(cls, text: str, check: StageCheck):
        obj = super().__new__(cls, text)
        obj.check = check
        return obj

    def splitlines(self, *a, **k):  # doit keeps the "first line" of a doc: keep this object, not a copy
        return [self]

    def strip(self, *a):
        return self

    def __reduce__(self):  # `-P process` sends task dicts to workers: there it is a plain doc line
        return (str, (str(self),))

    def __format__(self, spec):
        if self.check.reason == "not checked yet":
            return format(str(self), spec)
        return format(f"{str(self)} | {self.check.reason}", spec)


def _where(exc: BaseException, frames: int = 6) -> str:
    """The innermost frames of an exception as `file:line in function` (no locals, no source lines)."""
    tb, out = exc.__traceback__, []
    while tb is not None:
        code = tb.tb_frame.f_code
        out.append(f"  {code.co_filename}:{tb.tb_lineno} in {code.co_name}")
        tb = tb.tb_next
    return "\n".join(out[-frames:])


def _action(check: StageCheck):
    def run():
        if check.error is not None:
            return TaskFailed(str(check.error))
        s = session()
        if s.pid != os.getpid():
            # A `-P process` worker forked before other workers ran this stage's upstream: what the
            # parent memoised is stale here, so every answer is read again from the cache and the world.
            s.pid = os.getpid()
            s.forget_everything()
        try:
            stage = STAGES[check.stage]
            st = stage.status(s, check.name, check.env)
            if st.run and st.key is not None:
                # Tasks may run in parallel (-n N -P thread, copilot-doit deploy -j N): identical work —
                # two environments sharing one image, one build key — is done once. The second waits,
                # then finds it done: its status (and the later stages') is asked again once it holds the lock.
                # The first keeps the answer its check just gave (the run reads it from the memo; a stage's
                # run drops it, and the later stages', when it has changed the world): asked again, a build's
                # status listed its context once more and asked the registry for its content tag again.
                work = ("run", check.stage, st.key.salt, st.key.hex)
                with s.lock_for(work):
                    if not s.first_to_take(work):
                        s.changed(name=check.name, stage=check.stage, facts=())
                    stage.run(s, check.name, check.env)
            else:
                stage.run(s, check.name, check.env)
            _check_next(s, check)
        except (UserError, StageFailed) as exc:
            return TaskFailed(str(exc))
        except Exception as exc:  # a bug: say where, in one block, without doit's traceback formatting
            from .stacks import api_failure  # an AWS or emulator call that failed or got no answer is no bug
            failed = api_failure(f"{check.stage}:{check.name}@{check.env}", exc)
            if failed is not None:
                return TaskFailed(str(failed))
            return TaskFailed(f"internal error in {check.stage}: {type(exc).__name__}: {exc}\n{_where(exc)}")
        finally:
            s.flush()
            if _BLOCKS is not None:
                _BLOCKS.release()   # this stage's lines, as one block (-j N)
        return None
    run.__name__ = f"run_{check.stage}"
    return run


def _check_next(s: Session, check: StageCheck) -> None:
    """Check the workload's next stage now, in this worker thread. doit checks a task's status in its one
    dispatching thread, a task at a time, before it hands the task to a worker: under -j N each check (a
    template rendered, a round trip or two) held up every idle worker (a -j 8 first deploy of 20 workloads
    started its lints ~80 ms apart). Done here, beside the other workers, the answer is memoised for the
    dispatcher, and dropped as any other by the next stage's run (Session.changed). Only when tasks run in
    threads: run one at a time, the dispatcher would check it right after anyway (and a stage's time would
    then include its successor's check). Not in a `-P process` worker (its memo is not the dispatcher's),
    and not for a stage that waits for another workload's."""
    if not _CHECK_AHEAD or check.name is None or os.getpid() != _MAIN_PID:
        return
    for stage in WORKLOAD_STAGES:
        if check.stage not in stage.upstream:
            continue
        if stage.ordering is not None and stage.ordering(s, check.name, check.env):
            continue   # it also waits for another workload's stage
        try:
            stage.status(s, check.name, check.env)
        except Exception:  # noqa: BLE001 — the dispatcher's own check reports it, cleanly
            pass


def _stage_task(stage, name: str | None, env: str) -> dict:
    s = session()
    check = StageCheck(stage.name, name, env)
    doc = stage.doc.format(name=name, env=env, app=s.ws.app, target=s.ws.env_settings(env).target)
    # "capture": False — doit captures a Python action's output by swapping the process-wide sys.stdout and
    # sys.stderr for the action's life. Under `-n N -P thread` (copilot-doit deploy -j N) N workers swap
    # them at once, and CPython 3.11's print() holds sys.stdout as a borrowed reference: a swap in one
    # thread freed the stream another thread was printing to (python/cpython#130163, not fixed in 3.11).
    # That use-after-free was the SIGSEGV of the -j tests, showing up wherever the freed memory was used
    # next (doit's Writer.write, a traceback, _posixsubprocess). Without capture, doit assigns sys.stdout
    # the object it already holds. Stages print live (verbosity 2); nothing reads a capture.
    return {"name": env if stage is ENV else f"{name}@{env}", "doc": StageDoc(doc, check),
            "actions": [_action(check)], "uptodate": [check], "task_dep": stage.deps(s, name, env),
            "verbosity": 2, "io": {"capture": False}}


def task_env():
    """deploy the environment stacks <app>-<env> (VPC, cluster, load balancers, exports)"""
    yield {"name": None, "doc": task_env.__doc__}
    for env in session().envs:
        yield _stage_task(ENV, None, env)


def _group(stage_name: str, doc: str):
    s = session()
    stage = next(st for st in WORKLOAD_STAGES if st.name == stage_name)
    yield {"name": None, "doc": doc}
    for name in s.names:
        for env in s.envs:
            yield _stage_task(stage, name, env)


def task_build():
    """docker build each selected workload's image"""
    yield from _group("build", task_build.__doc__)


def task_push():
    """push each selected image to its ECR repository <app>/<name>"""
    yield from _group("push", task_push.__doc__)


def task_package():
    """render each selected workload's CloudFormation template"""
    yield from _group("package", task_package.__doc__)


def task_lint():
    """cfn-lint each selected template"""
    yield from _group("lint", task_lint.__doc__)


def task_deploy():
    """deploy the workloads selected by name= (default all) to env= (default all): build, push, package, lint, stack"""
    yield from _group("deploy", task_deploy.__doc__)


def task_plan():
    """print what `deploy` would run for name=/env= and why, with template and parameter diffs; changes nothing"""
    def show():
        from .plan import print_plan
        try:
            print_plan(session())
        except (UserError, StageFailed) as exc:
            return TaskFailed(str(exc))
        return None
    return {"actions": [show], "uptodate": [False], "verbosity": 2}


class WholeLines:
    """A text stream that threads share: each thread's text goes out a whole line at a time (a partial line
    waits for its newline or a flush), every write and flush under one lock shared by stdout and stderr.

    Why: with `-n N -P thread` (`copilot-doit deploy -j N`) the stages of N workers, the status checks and
    the reporter all write to one stream. `print` writes its text and its newline separately, so doit's
    `.`/`--` lines were cut in two by other threads' output (and lost to `copilot-doit`'s readers); and
    CPython 3.11's TextIOWrapper mixes up its pending bytes when a write arrives while another thread's
    flush has released the GIL (python/cpython#118138, #119506).
    """

    def __init__(self, stream, lock, blocks: TaskBlocks | None = None):
        self.stream = stream
        self._lock = lock
        self._pending: dict[int, str] = {}   # thread id -> the start of a line not yet written
        self._blocks = blocks                # -j N: a running task's lines are held for its block

    def write(self, text: str) -> int:
        me = threading.get_ident()
        with self._lock:
            head, newline, tail = (self._pending.pop(me, "") + text).rpartition("\n")
            if tail:
                self._pending[me] = tail
            if newline:
                block = self._held(me)
                if block is not None:
                    block.append((self.stream, head + newline))
                else:
                    self.stream.write(head + newline)
        return len(text)

    def _held(self, me: int) -> list | None:
        """The block this thread's running task holds its lines in (-j N), or None: write them out."""
        return self._blocks.held.get(me) if self._blocks is not None else None

    def flush(self) -> None:
        me = threading.get_ident()
        with self._lock:
            if self._held(me) is not None:
                return   # held lines are flushed with their block; a partial line waits for its newline
            rest = self._pending.pop(me, "")
            if rest:
                self.stream.write(rest)
            self.stream.flush()

    def close_lines(self) -> None:
        """Write every thread's partial line (the run is over) and flush."""
        with self._lock:
            for rest in self._pending.values():
                self.stream.write(rest)
            self._pending.clear()
            self.stream.flush()

    def __getattr__(self, name):   # isatty, fileno, encoding, buffer, ...: the real stream's
        return getattr(self.stream, name)


class TaskBlocks:
    """Under -j N (tasks in threads): each stage task's lines — what its worker thread prints to stdout and
    stderr, the build's progress, the stack's events — are held while it runs and go out as one block when it
    ends, as `make --output-sync` does; its `.` line goes out as it starts. Eight builds' `#1 … #5` progress
    lines no longer interleave. The price: a long stage (a deploy waiting on CloudFormation) shows its lines
    when it is done. Shares the streams' lock: one order for stdout and stderr."""

    def __init__(self, lock):
        self._lock = lock
        self.held: dict[int, list[tuple]] = {}   # worker thread id -> [(stream, line)] of its running task

    def hold(self) -> None:
        """The calling thread starts a task: its lines are held from now on."""
        me = threading.get_ident()
        with self._lock:
            self._write(self.held.pop(me, None))   # a block left unreleased (not expected) is written, not lost
            self.held[me] = []

    def release(self) -> None:
        """The calling thread's task ended: its lines go out together."""
        with self._lock:
            self._write(self.held.pop(threading.get_ident(), None))

    def release_all(self) -> None:
        """The run is over (or stopped: a Ctrl-C, doit's runtime error): every held line goes out."""
        with self._lock:
            for me in list(self.held):
                self._write(self.held.pop(me))

    @staticmethod
    def _write(block: list[tuple] | None) -> None:
        if not block:
            return
        streams = []
        for stream, line in block:
            stream.write(line)
            if stream not in streams:
                streams.append(stream)
        for stream in streams:
            stream.flush()


_BLOCKS: TaskBlocks | None = None   # set by the Reporter when tasks run in threads (-n N -P thread)


class Reporter(ConsoleReporter):
    """doit's console output with the reason beside each `.`/`--`, and failures as one clear line; after a
    deploy that changed something, a summary table (summary.py): each workload × environment, what ran, the
    time taken and the URL to open."""

    def __init__(self, outstream, options):
        # quiet=1 (copilot-doit deploy --quiet): errors and the summary only. What stages print goes to
        # sys.stdout, which is muted (for the process's life: one run); this reporter keeps the real stream.
        self.quiet = _flag(get_var("quiet"))
        # Every stream this run writes to goes through WholeLines (see there why), installed here, in the
        # main thread before any worker starts, and put back when the run completes: sys.stdout and
        # sys.stderr must not change while tasks run (see _stage_task's "capture").
        lock = threading.RLock()   # reentrant: a signal handler may print while its thread is writing
        self._std = (sys.stdout, sys.stderr)
        argv = COMMAND_ARGV if COMMAND_ARGV is not None else sys.argv[1:]
        jobs = live.doit_option(argv, "-n", "--process")
        in_threads = jobs.isdigit() and int(jobs) > 1 and live.doit_option(argv, "-P", "--parallel-type") == "thread"
        global _BLOCKS
        _BLOCKS = self.blocks = TaskBlocks(lock) if in_threads else None
        stage_out = open(os.devnull, "w") if self.quiet else sys.stdout  # noqa: SIM115
        sys.stdout, sys.stderr = WholeLines(stage_out, lock, self.blocks), WholeLines(sys.stderr, lock, self.blocks)
        super().__init__(WholeLines(outstream, lock, self.blocks), options)
        self.ran: dict[tuple, list[str]] = {}      # (name, env) -> stages that ran, in order
        self.took: dict[tuple, float] = {}         # (name, env) -> seconds of those stages
        self.started: dict[str, float] = {}
        # Plain lines, or a live view on a terminal (live.py); every line this reporter writes goes through
        # it. The live view (never with parallel tasks) draws on the terminal itself, rich keeping its own
        # lock; plain lines go through WholeLines.
        global _CHECK_AHEAD
        _CHECK_AHEAD = in_threads
        if _CHECK_AHEAD:
            linting.use_workers(int(jobs))   # cfn-lint in processes: threads would take turns on the GIL
        self.display = live.open_display(outstream if live.wants_rich(outstream, self.quiet, argv) else self.outstream,
                                         self.quiet, argv)

    @staticmethod
    def _check_of(task) -> StageCheck | None:
        """The stage's check of a stage task; None for any other task (`plan`, the groups)."""
        for utd in getattr(task, "uptodate", []) or []:
            obj = utd[0] if isinstance(utd, tuple) else utd
            if isinstance(obj, StageCheck):
                return obj
        return None

    def _reason(self, task) -> str:
        check = self._check_of(task)
        return "" if check is None else f"  ({check.reason.split(': ', 1)[-1]})"

    def write(self, text):
        self.display.write(text)

    def execute_task(self, task):
        self.started[task.name] = time.monotonic()
        if task.actions and task.name[0] != "_" and not self.quiet:
            self.display.stage_started(task.title(), self._reason(task))
        if self.blocks is not None and self._check_of(task) is not None:
            # A stage (its action releases the block as it ends, in this worker thread: tasks._action).
            self.blocks.hold()

    def add_success(self, task):
        super().add_success(task)
        self.display.stage_done(task.title(), True)
        stage, _, rest = task.name.partition(":")
        name, _, env = rest.rpartition("@")
        if stage in ("build", "push", "package", "lint", "deploy") and name and task.name in self.started:
            self.ran.setdefault((name, env), []).append(stage)
            self.took[(name, env)] = self.took.get((name, env), 0.0) + time.monotonic() - self.started[task.name]

    def skip_uptodate(self, task):
        if task.name[0] != "_" and not self.quiet:
            self.display.stage_skipped(task.title(), self._reason(task))

    def add_failure(self, task, fail):
        self.failures.append({"task": task, "exception": fail})
        self.display.stage_done(task.title(), False)
        if isinstance(fail, TaskFailed):
            self.write(f"ERROR: {task.name}: {fail.message.strip()}\n")
        else:  # an exception escaped a stage: that is a bug, so show everything
            self.write(f"ERROR: {task.name}: internal error\n{fail.get_msg()}\n")

    def complete_run(self):
        if self.blocks is not None:
            self.blocks.release_all()   # a run stopped mid-task (Ctrl-C, a runtime error) still says it all
        self.display.close()   # the live area ends here: the summary is plain text after it
        linting.shutdown()
        if not self.failures and not self.runtime_errors:
            # The parsed-YAML memo is written only by a run without errors: a run stopped by a bad
            # input leaves the cache as it found it.
            flush_memo()
        if self.ran and not self.failures and not self.runtime_errors and "deploy" in _command_tasks():
            self.write(deploy_summary(self.ran, self.took))
        if self.failures:
            self.write(f"{len(self.failures)} stage(s) failed; nothing after them was applied.\n")
        if self.runtime_errors:
            self.write("\n".join(self.runtime_errors) + "\n")
        self._release_streams()

    def _release_streams(self) -> None:
        for stream in (self.outstream, sys.stdout, sys.stderr):
            if isinstance(stream, WholeLines):
                stream.close_lines()
        std_out, std_err = self._std
        if isinstance(sys.stdout, WholeLines) and not self.quiet:
            sys.stdout = std_out
        if isinstance(sys.stderr, WholeLines):
            sys.stderr = std_err


def _command_tasks() -> list[str]:
    """The task groups this command line asked for (doit's default: deploy); `list`, `info`, ... are no
    task and so name no group."""
    words = _words(COMMAND_ARGV if COMMAND_ARGV is not None else sys.argv[1:])
    return [t.split(":", 1)[0] for t in _targets(words)] or ["deploy"]


def deploy_summary(ran: dict, took: dict) -> str:
    """The table after a deploy that ran something: every selected workload × environment (up to date ones
    too), what ran, how long, and the URL (summary.url_for from the manifest and the env stack's outputs)."""
    from . import summary
    from .stages import env as env_stage
    s = session()
    rows = []
    for name in s.names:
        for env in s.envs:
            m = s.manifests[(name, env)]
            try:
                outputs = (env_stage.status(s, None, env).result or {}).get("outputs") or {}
                url = summary.url_for(m.type, m.data, outputs, s.ws.app, env)
            except Exception as exc:  # noqa: BLE001 — the deploy is done; a summary lookup must not undo it
                url = f"(not known: {str(exc)[:80]})"
            stages = ran.get((name, env))
            if stages and stages[-1] == "deploy" and s.opts.detach:
                url += " (detached: still deploying)"
            rows.append(summary.Row(name, env, ", ".join(stages) if stages else "up to date",
                                    took.get((name, env)), url))
    return "\n" + summary.table(rows) + "\n"


def _skip_unchanged_doit_rows() -> None:
    """doit saves every task it executed — on a no-op, the `deploy` group, whose row never changes — and
    its sqlite3 backend commits at exit whatever was set: one journal and four fdatasync calls, ~20 ms of
    a no-op on this machine. A row equal to the one the file already holds is not written again, so a
    run that changed nothing commits nothing (doit==0.37.0 is pinned; any other shape is left alone)."""
    from doit import dependency

    db = getattr(dependency, "SqliteDB", None)
    original = getattr(db, "dump", None)
    if original is None or getattr(original, "_copilot_doit", False):
        return

    def dump(self):
        try:
            for task_id in list(self._dirty):
                row = self._conn.execute("select task_data from doit where task_id=?", (task_id,)).fetchone()
                if row is not None and self.codec.encode(row["task_data"]) == self.codec.encode(self._cache[task_id]):
                    self._dirty.discard(task_id)
            if not self._dirty and not self._conn.in_transaction:
                self._conn.close()
                return None
        except Exception:  # noqa: BLE001 — unknown shape or unreadable row: doit's own dump decides
            pass
        return original(self)

    dump._copilot_doit = True
    db.dump = dump


def _dep_file() -> str:
    try:
        from .workspace import find_workspace_dir
        root = find_workspace_dir().parent
    except UserError:
        root = Path.cwd()
    return str(ensure_root(cache_root_for(root)) / ".doit.db")


_skip_unchanged_doit_rows()

DOIT_CONFIG = {
    "backend": "sqlite3",           # multi-process safe, unlike dbm (research/peers.md §7.2)
    "dep_file": _dep_file(),
    "verbosity": 2,
    "reporter": Reporter,
    "default_tasks": ["deploy"],
}

__all__ = ["DOIT_CONFIG", "task_env", "task_build", "task_push", "task_package", "task_lint", "task_deploy",
           "task_plan"]

if os.environ.get("COPILOT_DOIT_DEBUG"):
    print(f"copilot-doit tasks loaded from {__file__} (python {sys.version.split()[0]})", file=sys.stderr)
