"""The pipeline's stages, in order. One module per stage, each with its key recipe, `status` and `run`:

    env      the environment stack <app>-<env>           (stages/env.py)
    build    docker build of the workload's image        (stages/build.py)
    push     the image to its ECR repository             (stages/push.py)
    package  the CloudFormation template, image pinned   (stages/package.py)
    lint     cfn-lint of the template                    (stages/lint.py)
    deploy   the workload's stack <app>-<env>-<name>     (stages/deploy.py)

`status(session, name, env) -> Status` says whether a stage must run and why; a stage reads its upstream
only through the upstream's `status`. `run(session, name, env)` performs the side effect and records
the result once the world confirms it. `tasks.py` (doit) and `plan.py` read this table.
"""
from __future__ import annotations

import gc
import threading
from typing import Callable

from ..values import value
from . import build, deploy, env, lint, package, push
from .base import Status, stage_id


@value(frozen=True)
class Stage:
    name: str
    status: Callable          # (session, name, env) -> Status
    run: Callable             # (session, name, env) -> result dict
    doc: str                  # one line; {name}, {env}, {app}, {target} are filled in
    upstream: tuple[str, ...]  # stages of the same workload and env ("env" is the env's stack)
    ordering: Callable | None = None  # (session, name, env) -> more task ids to wait for

    def task_id(self, name: str | None, env: str) -> str:
        return stage_id(self.name, name, env)

    def deps(self, session, name: str | None, env: str) -> list[str]:
        ids = [stage_id(u, name, env) for u in self.upstream]  # in this order: doit runs them so
        if self.ordering is not None:
            ids = sorted(set(ids + self.ordering(session, name, env)))
        return ids


ENV = Stage("env", env.status, env.run, "environment stack {app}-{env} ({target} target)", ())
WORKLOAD_STAGES = (
    Stage("build", build.status, build.run,
          "docker build of {name}'s image for {env} (skipped when the build inputs hash the same)", ()),
    Stage("push", push.status, push.run,
          "push {name}'s image to ECR (skipped when the registry holds the digest)", ("build",)),
    Stage("package", package.status, package.run,
          "render {name}'s CloudFormation for {env} (image pinned by digest)", ("push", "env")),
    Stage("lint", lint.status, lint.run, "cfn-lint {name}'s template for {env}", ("package",)),
    Stage("deploy", deploy.status, deploy.run,
          "create/update stack {app}-{env}-{name} (skipped when template, parameters and tags are deployed)",
          ("lint",), deploy.ordering),
)
STAGES = {st.name: st for st in (ENV, *WORKLOAD_STAGES)}


def prefetch(session, background: bool = False) -> None:
    """Every selected stage's status, computed concurrently (threads: the live checks are network
    round trips — DescribeStacks per environment, registry and ECR lookups per image — that at real AWS
    latency would otherwise add up one after another). The answers land in the session's memo, where
    doit's own checks, which come one by one, find them. A failure is left for that check to report.
    Once per session (a session handed over to doit by `copilot-doit deploy` is not checked twice).

    `background`: returns once the build contexts are hashed (local CPU work that every build check needs,
    done by one thread: two hashing at once contend for the GIL) or one of them is found changed (a stage
    will run: it need not wait for the others' hashing), the live checks going on in a thread beside
    the run (Session.settle waits for them). Each of doit's checks then waits for its own answer only
    (Session.memo), so the first stage that must run starts while the other workloads are still being
    checked: a deploy of one changed workload among fifty no longer waits for the other forty-nine's round
    trips before its build."""
    with session.once_lock("prefetch"):
        if session.facts.get("prefetched"):
            return
        session.facts["prefetched"] = True
    if background:
        hashed = threading.Event()
        session.in_background(lambda: _prefetch_quietly(session, hashed), "copilot-doit-checks")
        hashed.wait()
    else:
        _prefetch(session)


def _prefetch_quietly(session, hashed: threading.Event) -> None:
    """_prefetch in the background: whatever fails there is asked again, and reported in its words, by the
    check that needs it (doit's, in the run's own thread) — not as a thread's traceback."""
    try:
        _prefetch(session, hashed)
    except Exception:  # noqa: BLE001
        pass
    finally:
        hashed.set()


def _prefetch(session, hashed: threading.Event | None = None) -> None:
    workloads = [(WORKLOAD_STAGES[-1], name, env) for name in session.names for env in session.envs]
    jobs = [(ENV, None, env) for env in session.envs] + workloads
    warming = []
    allowed = []   # how many workloads' checks each environment's target runs at once
    for env in session.envs:
        try:
            target = session.target(env)
            allowed.append(target.concurrent_checks)
            warming.append(target.warm_up(uploads=_checks_uploads(session, env), walk=session.walks_stacks(env)))
            warming += session.read_ahead(env)   # the workloads' stacks, when read by name
        except Exception:  # noqa: BLE001 — a target that cannot be made is reported by the check itself
            pass
    # The checks make many small containers that live to the end of the run (stat rows, listings, records)
    # and few cycles: the cyclic collector's passes over them were ~10 % of a 500-workload no-op's CPU.
    collecting = gc.isenabled()
    gc.disable()
    try:
        push_stage = next((st for st in WORKLOAD_STAGES if st.name == "push"), None)
        image_checks = [] if push_stage is None else [(push_stage, name, env) for _, name, env in workloads]
        # As many at once as the selected environments' targets allow (milliseconds to local peers, tens
        # of milliseconds to AWS).
        _check_all(session, jobs, workloads, max(allowed, default=8), image_checks, hashed)
    finally:
        for thread in warming:   # no thread outlives the checks: doit may fork workers after them
            if thread is not None:
                thread.join()
        if collecting:
            # Frozen first: the first collection after a pause would otherwise visit everything the checks
            # made (~70 ms for 500 workloads) to find the few cycles among it — kept instead, a few MB.
            gc.freeze()
            gc.enable()


def _checks_uploads(session, env: str) -> bool:
    """Whether some selected workload's check in `env` will look for its uploads (S3); True when unsure."""
    try:
        return any(package.checks_uploads(session, name, env) for name in session.names)
    except Exception:  # noqa: BLE001 — a manifest that did not load is reported by its own check
        return True


def _check_all(session, jobs: list, workloads: list, concurrency: int, image_checks: list = (),
               hashed: threading.Event | None = None) -> None:
    """`jobs`' environment checks each in a thread of its own; then, with more than one workload, `concurrency`
    threads take `image_checks` (the workloads' push checks), then `workloads` (their whole chains).
    `hashed` is set once the build contexts are hashed, or at the first one found changed."""
    image_checks = list(image_checks)

    def check(job):
        stage, name, env = job
        try:
            stage.status(session, name, env)   # computes its upstream stages on the way
        except Exception:  # noqa: BLE001 — reported, cleanly, when doit asks for this stage itself
            pass

    # The environments' checks (a DescribeStacks walk, or reads by name: round trips) depend on no image:
    # each starts at once, in a thread of its own; so does the engine's listing of the app's built images,
    # which the build checks of several workloads use once it is in (build.in_the_engine).
    side = [threading.Thread(target=check, args=(job,), daemon=True) for job in jobs if job[0] is ENV]
    if len(workloads) > 1:
        side.append(threading.Thread(target=build.list_built_images, args=(session,), daemon=True))
    for t in side:
        t.start()
    workers = []
    if len(workloads) < 2:
        # One pipeline is a chain (build, push, package, lint, deploy): this thread computes it, and package
        # waits for the environment's check. No pool (its import alone costs ~2 ms).
        if hashed is not None:
            hashed.set()   # its one context is hashed by whichever thread asks first
        for job in workloads:
            check(job)
    else:
        # Meanwhile this thread hashes every build context, one after another — an lstat per file, 100,000
        # for 500 workloads: each lstat releases the GIL, and with eight threads contending for it the same
        # pass cost twice the CPU (P6 of issue 12: ~4.5 ms per 200-file context instead of ~2.2). Then
        # threads take the workloads' checks (mostly round trips now) in order. Plain threads, not a
        # ThreadPoolExecutor: concurrent.futures imports logging (~10 ms of a no-op here) for nothing this needs.
        for _, name, env in workloads:
            if session.stopping.is_set():
                break
            if build.hash_context(session, name, env) and hashed is not None:
                # A context that changed since its last hashing: that workload's build is likely to run.
                # doit's checks go on from here (the run's thread asks for the ones before it, hashed already)
                # while this thread hashes the rest: one changed workload among 500 no longer waits for the
                # other 499 contexts (~1 s of hashing here) before its build; on two cores the rest of the
                # pass then runs beside that build (the run's total: 2.74 -> 2.58 s). A no-op (no context
                # changed) still hashes alone, uncontended.
                hashed.set()
        if hashed is not None:
            hashed.set()
        # Every workload's image checks (build, push: the engine, the registry or ECR) are taken before any
        # workload's rest of the chain: package and deploy wait for the environment's check (its stack, the
        # DescribeStacks walk: one page after another), and a thread waiting there held up the image checks
        # queued behind it (a 50-workload no-op on AWS with 250 stacks in the region: 18 DescribeImages
        # started only once the walk's 6 pages were in).
        todo = iter(image_checks + workloads)
        take = threading.Lock()

        def worker():
            while True:
                with take:
                    job = next(todo, None)
                if job is None or session.stopping.is_set():
                    return
                check(job)
        workers = [threading.Thread(target=worker, daemon=True)
                   for _ in range(min(concurrency, len(workloads)))]
        for t in workers:
            t.start()
    for t in workers + side:
        t.join()

__all__ = ["ENV", "STAGES", "WORKLOAD_STAGES", "Stage", "Status", "prefetch", "stage_id"]
