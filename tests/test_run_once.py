"""tasks._action's run lock: a stage whose check said "run" runs with that answer (its status is not computed
again at run time), and identical work — two tasks with one key, e.g. two workloads built from the same inputs,
or two environments sharing an image — is done once: the second to take the key asks its status again, finds
the first one's result, and does not run."""
from __future__ import annotations

import threading

from conftest import scratch_session

from copilot_doit import tasks
from copilot_doit.hashing import Key
from copilot_doit.stages.base import Status


class OneKeyStage:
    """A stage of the table's shape whose every workload has one key: its result is recorded per key, as a
    stage's record in the cache is."""

    name, upstream, ordering = "build", (), None

    def __init__(self):
        self.key = Key.of("test/1", {"inputs": "the same for every workload"})
        self.done: dict[str, str] = {}      # key -> the workload whose run made it
        self.computed: list[str] = []       # workloads whose status was computed, in order
        self.ran: list[str] = []

    def status(self, s, name, env):
        def compute():
            self.computed.append(name)
            if self.key.hex in self.done:
                return Status(False, f"made by {self.done[self.key.hex]}", self.key, {"by": self.done[self.key.hex]})
            return Status(True, "never ran with these inputs", self.key)
        return s.memo(("build", name, env), compute)

    def run(self, s, name, env):
        st = self.status(s, name, env)
        if not st.run:
            return st.result
        self.ran.append(name)
        self.done[self.key.hex] = name
        s.changed(name=name, stage="build", facts=())
        return {"by": name}


def setup(tmp_path, monkeypatch, names):
    s = scratch_session(tmp_path, monkeypatch, "runonce", names)[1]
    stage = OneKeyStage()
    monkeypatch.setattr(tasks, "session", lambda: s)
    monkeypatch.setattr(tasks, "STAGES", {"build": stage})
    monkeypatch.setattr(tasks, "WORKLOAD_STAGES", (stage,))
    monkeypatch.setattr(tasks, "prefetch", lambda session, background=False: None)
    return s, stage


def checked(name):
    """doit's check, then the action (what doit does for one task), as one callable."""
    check = tasks.StageCheck("build", name, "test")

    def task():
        if not check():
            return tasks._action(check)()
        return None
    return check, task


def test_the_first_to_run_a_key_runs_with_its_check_s_answer(tmp_path, monkeypatch):
    s, stage = setup(tmp_path, monkeypatch, ["aa"])
    check, task = checked("aa")
    assert task() is None
    assert stage.ran == ["aa"]
    # Computed once, by the check: the action ran with that answer (before, it was dropped and computed
    # again under the run lock: a build's context listed once more, its registry asked again).
    assert stage.computed == ["aa"]


def test_the_second_task_with_the_same_key_asks_again_and_does_not_run(tmp_path, monkeypatch):
    s, stage = setup(tmp_path, monkeypatch, ["aa", "bb"])
    check_a, _ = checked("aa")
    check_b, _ = checked("bb")
    assert not check_a() and not check_b()          # both checked before either ran: both say "run"
    assert tasks._action(check_a)() is None
    assert tasks._action(check_b)() is None
    assert stage.ran == ["aa"]                      # the work was done once
    assert stage.computed == ["aa", "bb", "bb"]     # bb's status asked again once it held the key


def test_in_threads_one_runs_and_the_other_waits_for_it_then_finds_it_done(tmp_path, monkeypatch):
    s, stage = setup(tmp_path, monkeypatch, ["aa", "bb"])
    check_a, _ = checked("aa")
    check_b, _ = checked("bb")
    assert not check_a() and not check_b()
    inside, proceed = threading.Event(), threading.Event()
    real_run = stage.run

    def slow_run(s_, name, env):
        inside.set()
        assert proceed.wait(10)
        return real_run(s_, name, env)

    stage.run = slow_run
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("aa", tasks._action(check_a)()))
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=lambda: results.setdefault("bb", tasks._action(check_b)()))
    second.start()
    second.join(0.3)
    assert second.is_alive()                        # waits for the key's lock while aa runs
    proceed.set()
    first.join(10)
    second.join(10)
    assert results == {"aa": None, "bb": None}
    assert stage.ran == ["aa"]


# --- a changed build context is hashed once per run: its key and its explanation from one look at its files ---

class NoRegistry:
    def tag_digest(self, repository, tag):
        return None


def test_a_changed_context_is_listed_once_for_its_key_and_its_explanation(tmp_path, monkeypatch):
    from copilot_doit import hashing
    from copilot_doit.stages import build
    ws, s = scratch_session(tmp_path, monkeypatch, "once", ["aa"])
    monkeypatch.setattr(s, "target", lambda env: NoRegistry())
    context = ws.root / "copilot" / "aa" / "src"
    (context / "more.txt").write_text("an edit just now: racy for a second, so its digest is not trusted yet\n")
    looks = []
    real = hashing._context_stats
    monkeypatch.setattr(hashing, "_context_stats", lambda *a: looks.append(a[0]) or real(*a))

    st = build.status(s, "aa", "test")

    assert st.run and "never ran" in st.reason
    assert looks == [str(context)]                 # one listing and lstat pass, not one per question
    # ... and the entries recorded are those of a fresh listing of the same files.
    fresh = hashing.context_entries(str(context), "Dockerfile", hashing.StatCache(tmp_path / "other.db"))
    assert st.inputs["context_entries"] == fresh
    assert hashing.tree_digest(fresh) == st.inputs["context"]
