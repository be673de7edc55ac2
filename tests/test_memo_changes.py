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
    (("in-registry", "app/aa", "sha256:1"), "bb", False),    # a shared fact: a change that names none drops it
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
    assert s._remember("test", read) == {"n": 2}
    assert len(reads) == 2


def test_without_a_change_an_answer_is_computed_once(tmp_path, monkeypatch):
    s = session(tmp_path, monkeypatch)
    calls = []
    assert s.memo(("build", "aa", "test"), lambda: calls.append(1) or "x") == "x"
    assert s.memo(("build", "aa", "test"), lambda: calls.append(1) or "y") == "x"
    assert calls == [1]


# --- what a change drops: the stage that changed and the later ones, the shared facts it names, its own stack ---

KEYS = [("build", "aa", "test"), ("push", "aa", "test"), ("package", "aa", "test"), ("lint", "aa", "test"),
        ("deploy", "aa", "test"), ("deploy", "bb", "test"), ("in-registry", "local", "us-east-1", None, "app/bb", "d"),
        ("a-fact", "aa", "test"),   # any other answer of the workload: dropped by any of its changes
        ("s3-object", "test", "bucket", "key")]


def kept_after(s, change) -> set:
    for k in KEYS:
        s.memo(k, lambda: "x")
    change()
    return {k[0] if k[1] == "aa" or len(k) > 3 else f"{k[0]}:{k[1]}" for k in KEYS if k in s._memo}


@pytest.mark.parametrize("stage, facts, kept", [
    # a stage's run changes its own status and the later stages' (they read it), never an earlier one's
    ("build", (), {"deploy:bb", "in-registry", "s3-object"}),
    ("push", ("in-registry",), {"build", "deploy:bb", "s3-object"}),
    ("package", ("s3-object",), {"build", "push", "deploy:bb", "in-registry"}),
    ("lint", (), {"build", "push", "package", "deploy:bb", "in-registry", "s3-object"}),
    ("deploy", ("s3-object",), {"build", "push", "package", "lint", "deploy:bb", "in-registry"}),
])
def test_a_stage_s_change_drops_its_own_and_later_answers_and_the_shared_facts_it_names(
        tmp_path, monkeypatch, stage, facts, kept):
    s = session(tmp_path, monkeypatch)
    assert kept_after(s, lambda: s.changed(name="aa", stage=stage, facts=facts)) == kept


def test_a_change_that_says_nothing_drops_all_of_the_workload_s_answers_and_every_shared_fact(tmp_path, monkeypatch):
    s = session(tmp_path, monkeypatch)
    assert kept_after(s, lambda: s.changed(name="aa")) == {"deploy:bb"}
    s = session(tmp_path / "env", monkeypatch)
    assert kept_after(s, lambda: s.changed(env="test")) == set()      # the env's stage: everything


def test_a_workload_s_deploy_drops_its_own_stack_and_nested_stacks_and_the_listing_not_the_others(
        tmp_path, monkeypatch):
    s = session(tmp_path, monkeypatch)
    reads = {"test": {}, ("test", "app-test-aa"): {"stack": 1}, ("test", "app-test-aa-AddonsStack-X1"): {"stack": 2},
             ("test", "app-test-aab"): {"stack": 3}, ("test", "app-test-bb"): {"stack": 4},
             ("prod", "app-prod-aa"): {"stack": 5}}
    for key, value in reads.items():
        s._remember(key, lambda v=value: v)
    s.changed("test", name="aa", stage="deploy", facts=(), stack="app-test-aa")
    assert set(s._stacks) == {("test", "app-test-aab"), ("test", "app-test-bb"), ("prod", "app-prod-aa")}
    s.changed("test")   # the env's stage: every stack read of that env
    assert set(s._stacks) == {("prod", "app-prod-aa")}


@pytest.mark.parametrize("read_stack, reads_expected", [("app-test-bb", 1), ("app-test-aa", 2)])
def test_a_stack_read_across_another_stack_s_deploy_is_kept_and_across_its_own_is_read_again(
        tmp_path, monkeypatch, read_stack, reads_expected):
    s = session(tmp_path, monkeypatch)
    reads = []

    def read():
        reads.append(1)
        if len(reads) == 1:   # another thread's deploy of aa finishes while this read is on the wire
            s.changed("test", name="aa", stage="deploy", facts=(), stack="app-test-aa")
        return {"stack": len(reads)}
    assert s._remember(("test", read_stack), read) == {"stack": reads_expected}
    assert len(reads) == reads_expected
    assert s._stacks[("test", read_stack)] == {"stack": reads_expected}
