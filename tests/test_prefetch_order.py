"""stages.prefetch with several workloads: the environments' checks start first, in threads of their own;
the calling thread then hashes every build context, one after another, before any workload's checks start
(a stat pass contended by eight threads cost twice the CPU); the workloads' build checks then use those
digests instead of walking the contexts again."""
from __future__ import annotations

import threading

from conftest import scratch_session
from copilot_doit import stages
from copilot_doit.stages import build


class FakeStage:
    def __init__(self, status):
        self.status = status


def test_contexts_are_hashed_by_the_caller_before_the_workload_checks_and_once(tmp_path, monkeypatch):
    names = ["aa", "bb", "cc"]
    ws, s = scratch_session(tmp_path, monkeypatch, "order", names)
    events, lock = [], threading.Lock()
    env_started = threading.Event()
    real_tree = build.context_snapshot

    def context_snapshot(context, dockerfile_in_context, stat_cache):
        # The environment's check was started before the hashing: waiting for it here cannot time out.
        assert env_started.wait(10), "the environment's check had not started when the hashing began"
        with lock:
            events.append(("hash", context.rsplit("/", 2)[-2], threading.current_thread() is threading.main_thread()))
        return real_tree(context, dockerfile_in_context, stat_cache)

    def env_status(session, name, env):
        env_started.set()
        with lock:
            events.append(("env", None, threading.current_thread() is threading.main_thread()))

    def workload_status(session, name, env):
        cfg = session.manifests[(name, env)].build_config(session.ws.root)
        digest = build.context_digest(session, cfg)   # what build.status asks for
        with lock:
            events.append(("check", name, digest))

    monkeypatch.setattr(build, "context_snapshot", context_snapshot)
    monkeypatch.setattr(stages, "ENV", FakeStage(env_status))
    workload_stage = FakeStage(workload_status)
    jobs = [(stages.ENV, None, "test")] + [(workload_stage, n, "test") for n in names]
    stages._check_all(s, jobs, jobs[1:], 8)

    hashes = [e for e in events if e[0] == "hash"]
    checks = [e for e in events if e[0] == "check"]
    assert [(h[1], h[2]) for h in hashes] == [(n, True) for n in names]     # in the caller, in order, once each
    assert events.index(checks[0]) > events.index(hashes[-1])              # every hash before any check
    assert ("env", None, False) in events                                   # the env check: another thread
    assert sorted(c[1] for c in checks) == names
    truth = {n: real_tree(str(ws.root / "copilot" / n / "src"), "Dockerfile", s.stat_cache)[1] for n in names}
    assert {c[1]: c[2] for c in checks} == truth                            # the digests the checks used
