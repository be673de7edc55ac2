"""tasks._check_next: after a stage ran in a doit worker thread, the workload's next stage is checked there
(doit checks statuses in its one dispatching thread, a task at a time), so the dispatcher finds the answer
memoised; never in a forked `-P process` worker, never for a stage that also waits for another workload."""
from __future__ import annotations

from copilot_doit import tasks


class FakeStage:
    """A stage of the table's shape: `ordering` names another workload's stages this one also waits for."""

    def __init__(self, name, upstream, extra=()):
        self.name, self.upstream, self.checked = name, upstream, []
        self.ordering = (lambda s, name, env: list(extra)) if extra else None

    def status(self, s, name, env):
        self.checked.append((name, env))


def stages(monkeypatch, extra=()):
    monkeypatch.setattr(tasks, "_CHECK_AHEAD", True)      # what the Reporter sets for -n N -P thread
    build, push = FakeStage("build", ()), FakeStage("push", ("build",))
    deploy = FakeStage("deploy", ("push",), extra)
    monkeypatch.setattr(tasks, "WORKLOAD_STAGES", (build, push, deploy))
    return build, push, deploy


def test_the_next_stage_is_checked_in_the_worker_that_ran_its_upstream(monkeypatch):
    build, push, deploy = stages(monkeypatch)
    tasks._check_next(None, tasks.StageCheck("build", "api", "test"))
    assert push.checked == [("api", "test")] and build.checked == [] and deploy.checked == []
    tasks._check_next(None, tasks.StageCheck("push", "api", "test"))
    assert deploy.checked == [("api", "test")]


def test_not_in_a_forked_worker_nor_for_the_env_stage_nor_a_stage_waiting_for_another_workload(monkeypatch):
    build, push, deploy = stages(monkeypatch, extra=["deploy:topics@test"])
    tasks._check_next(None, tasks.StageCheck("env", None, "test"))
    tasks._check_next(None, tasks.StageCheck("push", "api", "test"))      # deploy also waits for deploy:topics
    monkeypatch.setattr(tasks, "_MAIN_PID", -1)                           # as in a `-P process` worker
    tasks._check_next(None, tasks.StageCheck("build", "api", "test"))
    assert build.checked == push.checked == deploy.checked == []


def test_a_failing_check_is_left_to_the_dispatcher(monkeypatch):
    build, push, deploy = stages(monkeypatch)

    def boom(s, name, env):
        raise RuntimeError("no answer")
    monkeypatch.setattr(push, "status", boom)
    tasks._check_next(None, tasks.StageCheck("build", "api", "test"))     # no exception escapes


def test_not_when_tasks_run_one_at_a_time(monkeypatch):
    build, push, deploy = stages(monkeypatch)
    monkeypatch.setattr(tasks, "_CHECK_AHEAD", False)
    tasks._check_next(None, tasks.StageCheck("build", "api", "test"))
    assert push.checked == []


def test_the_reporter_says_whether_tasks_run_in_threads(monkeypatch):
    import io
    import sys
    monkeypatch.setattr(sys, "stdout", sys.stdout)    # the Reporter wraps the streams: put them back after
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    for argv, ahead in ((["deploy", "-n", "4", "-P", "thread"], True), (["deploy"], False),
                        (["deploy", "-n", "1", "-P", "thread"], False), (["deploy", "-n", "4", "-P", "process"], False)):
        monkeypatch.setattr(tasks, "COMMAND_ARGV", argv)
        tasks.Reporter(io.StringIO(), {})
        assert tasks._CHECK_AHEAD is ahead, argv
    tasks.linting.use_workers(0)
