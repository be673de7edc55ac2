"""The checks of every selected stage (stages.prefetch) go on in the background while doit asks for them one
by one: a doit check waits for its own answer only, so a stage that must run starts while the other
workloads' checks are still going (issue 12's P3: one changed workload among fifty). What runs in the
background is waited for before a fork (doit's `-P process` workers), before every answer is forgotten,
and at exit (Session.settle)."""
from __future__ import annotations

import os
import threading
import time

from conftest import scratch_session
from copilot_doit import noop, stages, tasks
from copilot_doit.stages.base import Status

NAMES = ["aa", "bb", "cc"]


class FakeStage:
    def __init__(self, name, status):
        self.name, self.status = name, status


class FakeTarget:
    concurrent_checks = 8

    def warm_up(self, uploads=True, walk=False):
        return None

    def stacks_changed(self):
        pass


def slow_workload(monkeypatch, tmp_path, must_run: set[str]):
    """A session over aa, bb, cc whose only workload stage answers at once, except cc's, which waits for
    `release` (at most 10 s). Returns (session, release, cc_done)."""
    _, s = scratch_session(tmp_path, monkeypatch, "bg", NAMES)
    s._targets["test"] = FakeTarget()
    release, cc_done = threading.Event(), threading.Event()

    def deploy_status(session, name, env):
        def compute():
            if name == "cc":
                release.wait(10)
                cc_done.set()
            return Status(name in must_run, "changed" if name in must_run else "as is")
        return session.memo(("deploy", name, env), compute)

    env = FakeStage("env", lambda session, name, env: session.memo(("env", env), lambda: Status(False, "as is")))
    deploy = FakeStage("deploy", deploy_status)
    monkeypatch.setattr(stages, "ENV", env)
    monkeypatch.setattr(stages, "WORKLOAD_STAGES", (deploy,))
    monkeypatch.setattr(tasks, "STAGES", {"env": env, "deploy": deploy})
    monkeypatch.setattr(noop, "ENV", env)
    monkeypatch.setattr(noop, "WORKLOAD_STAGES", (deploy,))
    monkeypatch.setattr(noop, "STAGES", {"env": env, "deploy": deploy})
    return s, release, cc_done


def test_a_doit_check_does_not_wait_for_the_other_workloads_checks(tmp_path, monkeypatch):
    s, release, cc_done = slow_workload(monkeypatch, tmp_path, {"aa"})
    monkeypatch.setattr(tasks, "session", lambda: s)
    try:
        check = tasks.StageCheck("deploy", "aa", "test")
        assert check() is False and check.reason == "will run: changed"
        assert not cc_done.is_set()        # answered while cc's check was still going on
        assert tasks.StageCheck("deploy", "bb", "test")() is True
    finally:
        release.set()
        s.settle()
    assert cc_done.is_set()
    assert tasks.StageCheck("deploy", "cc", "test")() is True   # its answer, computed in the background


def test_the_no_op_check_hands_over_at_the_first_stage_that_must_run(tmp_path, monkeypatch):
    s, release, cc_done = slow_workload(monkeypatch, tmp_path, {"aa"})
    try:
        assert noop.up_to_date_lines(s) is None
        assert not cc_done.is_set()
    finally:
        release.set()
        s.settle()


def test_a_no_op_still_waits_for_every_answer(tmp_path, monkeypatch):
    s, release, cc_done = slow_workload(monkeypatch, tmp_path, set())
    threading.Timer(0.2, release.set).start()
    lines = noop.up_to_date_lines(s)
    assert cc_done.is_set() and len(lines) == 1 + len(NAMES)


def _background(s, seconds: float) -> threading.Event:
    done = threading.Event()

    def work():
        threading.Event().wait(seconds)
        done.set()
    s.in_background(work, "test-background")
    return done


def test_a_fork_waits_for_the_background_checks(tmp_path, monkeypatch):
    _, s = scratch_session(tmp_path, monkeypatch, "bgfork", ["aa"])
    monkeypatch.setattr(tasks, "HANDED_OVER", s)
    done = _background(s, 0.3)
    pid = os.fork()
    if pid == 0:   # the child: the checks had ended before the fork copied this process
        os._exit(0 if done.is_set() else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_forgetting_every_answer_waits_for_the_background_checks(tmp_path, monkeypatch):
    _, s = scratch_session(tmp_path, monkeypatch, "bgforget", ["aa"])
    done = _background(s, 0.3)
    s.forget_everything()
    assert done.is_set()


def test_at_the_end_of_a_run_the_background_takes_no_new_check_and_is_not_waited_for(tmp_path, monkeypatch):
    """doit stopped early (a failure, a Ctrl-C) with checks still queued: the exit neither waits for a check
    stuck on an endpoint nor lets the queued ones start."""
    _, s = scratch_session(tmp_path, monkeypatch, "bgstop", NAMES)
    target = FakeTarget()
    target.concurrent_checks = 1            # one thread: the checks are taken in order, one at a time
    s._targets["test"] = target
    release, started = threading.Event(), []

    def deploy_status(session, name, env):
        started.append(name)
        if name == "aa":
            release.wait(10)
        return Status(False, "as is")

    monkeypatch.setattr(stages, "ENV", FakeStage("env", lambda session, name, env: Status(False, "as is")))
    monkeypatch.setattr(stages, "WORKLOAD_STAGES", (FakeStage("deploy", deploy_status),))
    stages.prefetch(s, background=True)
    for _ in range(1000):                   # aa's check has started (at most 10 s)
        if started:
            break
        time.sleep(0.01)
    s.stop_background()                     # returns at once: aa's check is still stuck
    assert started == ["aa"] and not release.is_set()
    release.set()
    s.settle()
    assert started == ["aa"]                # bb and cc were never started


def test_a_failure_in_the_background_is_no_traceback_and_left_to_the_check(tmp_path, monkeypatch):
    """A thread's uncaught exception is printed as a traceback (threading.excepthook): none escapes."""
    _, s = scratch_session(tmp_path, monkeypatch, "bgfail", ["aa"])
    escaped = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)

    def broken(session, hashed=None):
        raise RuntimeError("a bug in the checks")

    monkeypatch.setattr(stages, "_prefetch", broken)
    stages.prefetch(s, background=True)
    s.settle()
    assert escaped == []


def _hashed_once_before(tmp_path, monkeypatch, prefix: str):
    """A session over aa, bb, cc whose contexts were hashed by an earlier run (their files dated a minute
    back: not racy), so this run finds them as they were."""
    from copilot_doit.session import Options, Session
    from copilot_doit.stages import build
    ws, first = scratch_session(tmp_path, monkeypatch, prefix, NAMES)
    past = time.time() - 60
    for folder, _, files in os.walk(ws.root):
        for f in files:
            os.utime(os.path.join(folder, f), (past, past))
    for name in NAMES:
        build.hash_context(first, name, "test")
    first.flush()
    s = Session(Options(names=list(NAMES), envs=["test"]))
    s._targets["test"] = FakeTarget()
    return ws, s


def _record_hashing(monkeypatch, hold: str | None = None):
    """Patch the context hashing to record (workload, thread) and, for `hold`'s context, wait for the returned
    event (at most 10 s)."""
    from copilot_doit.stages import build
    hashed, release = [], threading.Event()
    real_tree = build.context_snapshot

    def context_snapshot(context, dockerfile_in_context, stat_cache):
        name = os.path.basename(os.path.dirname(context.rstrip("/")))
        if name == hold:
            release.wait(10)
        hashed.append((name, threading.current_thread().name))
        return real_tree(context, dockerfile_in_context, stat_cache)

    monkeypatch.setattr(build, "context_snapshot", context_snapshot)
    return hashed, release


def _listed_anew(s) -> list[str]:
    """The workloads whose contexts this run's hashing listed anew (changed since their last hashing)."""
    return sorted(os.path.basename(os.path.dirname(k[1].rstrip("/"))) for k, v in list(s._memo.items())
                  if k[0] == "context-tree" and v[0] is not None)


def test_in_the_background_the_contexts_are_hashed_by_one_thread_before_prefetch_returns(tmp_path, monkeypatch):
    """Every build check needs its context's digest: when no context changed (a no-op), prefetch(background=True)
    returns once the checks' thread hashed them all, so the run's thread does not hash beside it (two threads
    statting at once contend for the GIL); the live checks go on after."""
    _, s = _hashed_once_before(tmp_path, monkeypatch, "bghash")
    hashed, _ = _record_hashing(monkeypatch)
    release = threading.Event()

    def deploy_status(session, name, env):
        release.wait(10)               # the live checks: still going on when prefetch returns
        return Status(False, "as is")

    monkeypatch.setattr(stages, "ENV", FakeStage("env", lambda session, name, env: Status(False, "as is")))
    monkeypatch.setattr(stages, "WORKLOAD_STAGES", (FakeStage("deploy", deploy_status),))
    try:
        stages.prefetch(s, background=True)
        assert hashed == [(n, "copilot-doit-checks") for n in NAMES]
        assert _listed_anew(s) == []
    finally:
        release.set()
        s.settle()


def test_at_the_first_changed_context_prefetch_returns_without_waiting_for_the_others(tmp_path, monkeypatch):
    """A changed context means that workload's build is likely to run: doit's checks go on from there while
    the checks' thread hashes the others (one changed workload among 500 no longer waits for the other 499
    contexts before its build). Here bb changed, and cc's hashing is held: prefetch returns all the same."""
    ws, s = _hashed_once_before(tmp_path, monkeypatch, "bgchanged")
    (ws.root / "copilot" / "bb" / "src" / "hello.txt").write_text("edited\n")
    hashed, release = _record_hashing(monkeypatch, hold="cc")
    monkeypatch.setattr(stages, "ENV", FakeStage("env", lambda session, name, env: Status(False, "as is")))
    monkeypatch.setattr(stages, "WORKLOAD_STAGES", (FakeStage("deploy", lambda session, name, env: Status(False, "as is")),))
    try:
        t0 = time.monotonic()
        stages.prefetch(s, background=True)
        assert time.monotonic() - t0 < 5          # cc's hashing is held for up to 10 s
        assert [n for n, _ in hashed] == ["aa", "bb"]
        assert _listed_anew(s) == ["bb"]
    finally:
        release.set()
        s.settle()
    assert [n for n, _ in hashed] == NAMES      # the rest hashed all the same, by the same thread, once each
    assert {t for _, t in hashed} == {"copilot-doit-checks"}
