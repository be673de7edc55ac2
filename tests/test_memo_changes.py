"""Session.memo under concurrency: an answer computed while a stage changed what it depends on (Session.changed,
from another thread: `-j N` runs stages beside the checks) is returned to the thread that asked, which asked
before the change, but never kept for later askers — the next one computes it again. Answers the change does
not touch are kept."""
from __future__ import annotations

import threading

import pytest

from conftest import scratch_session


def session(tmp_path, monkeypatch):
    return scratch_session(tmp_path, monkeypatch, "memo", ["aa", "bb"])[1]


def computed_across(s, key, change) -> tuple[str, object]:
    """(value returned, value memoised after) for `key` when `change()` runs in another thread while its
    answer is being computed."""
    started, proceed = threading.Event(), threading.Event()

    def compute():
        started.set()
        assert proceed.wait(10)
        return "before the change"

    out = {}
    asker = threading.Thread(target=lambda: out.setdefault("value", s.memo(key, compute)))
    asker.start()
    assert started.wait(10)
    changer = threading.Thread(target=change)
    changer.start()
    changer.join(10)
    proceed.set()
    asker.join(10)
    return out["value"], s.memo(key, lambda: "computed again")


@pytest.mark.parametrize("key, changed, kept", [
    (("push", "aa", "test"), "aa", False),                   # the workload's own answer: dropped by its change
    (("push", "aa", "test"), "bb", True),                    # another workload's change leaves it
    (("in-registry", "app/aa", "sha256:1"), "bb", False),    # a shared fact: any workload's change drops it
])
def test_an_answer_computed_across_a_workload_s_change_is_kept_only_if_that_change_leaves_it(
        tmp_path, monkeypatch, key, changed, kept):
    s = session(tmp_path, monkeypatch)
    returned, after = computed_across(s, key, lambda: s.changed(name=changed))
    assert returned == "before the change"   # the asker asked before the change: its answer stands
    assert after == ("before the change" if kept else "computed again")


def test_nothing_computed_across_a_change_of_everything_or_a_forget_is_kept(tmp_path, monkeypatch):
    s = session(tmp_path, monkeypatch)
    assert computed_across(s, ("deploy", "aa", "test"), lambda: s.changed(env="test"))[1] == "computed again"
    s = session(tmp_path / "again", monkeypatch)
    assert computed_across(s, ("deploy", "aa", "test"), s.forget_everything)[1] == "computed again"


def test_a_stack_listing_read_across_a_forget_is_read_again(tmp_path, monkeypatch):
    s = session(tmp_path, monkeypatch)
    reads = []

    def read():
        reads.append(1)
        if len(reads) == 1:
            s.forget_everything()   # as a handed-over session does when another run came in between
        return {"n": len(reads)}
    assert s._remember("test", "test", read) == {"n": 2}
    assert len(reads) == 2


def test_without_a_change_an_answer_is_computed_once(tmp_path, monkeypatch):
    s = session(tmp_path, monkeypatch)
    calls = []
    assert s.memo(("build", "aa", "test"), lambda: calls.append(1) or "x") == "x"
    assert s.memo(("build", "aa", "test"), lambda: calls.append(1) or "y") == "x"
    assert calls == [1]
