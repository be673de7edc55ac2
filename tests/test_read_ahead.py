"""Session.read_ahead: in a run that reads stacks by name (one or two workloads), the workloads' stacks are
asked for at the start, beside the other checks, not at the end of each workload's chain of checks."""
from __future__ import annotations

import threading
import textwrap

from copilot_doit.session import Options, Session


def workspace(root, names):
    ws = root / "copilot"
    (ws / "environments" / "test").mkdir(parents=True)
    (ws / ".workspace").write_text("application: ahead\n")
    (ws / "copilot-doit.yml").write_text("environments:\n  test: {target: local, region: us-east-1}\n")
    (ws / "environments/test/manifest.yml").write_text("name: test\ntype: Environment\n")
    for n in names:
        (ws / n).mkdir()
        (ws / n / "manifest.yml").write_text(textwrap.dedent(f"""\
            name: {n}
            type: Backend Service
            image: {{location: public.ecr.aws/nginx/nginx:latest, port: 80}}
            """))


class FakeTarget:
    def __init__(self):
        self.by_name, self.walks = [], 0

    def describe_stack(self, name):
        self.by_name.append((name, threading.current_thread() is threading.main_thread()))
        return None

    def describe_stacks(self):
        self.walks += 1
        return {}

    def stacks_changed(self):
        pass


def session(tmp_path, monkeypatch, names):
    workspace(tmp_path, names)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COPILOT_DOIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COPILOT_DOIT_WORKSPACE", raising=False)
    s = Session(Options(names=list(names), envs=["test"]))
    fake = FakeTarget()
    s._targets["test"] = fake
    return s, fake


def test_a_run_of_one_or_two_workloads_reads_their_stacks_ahead_in_other_threads(tmp_path, monkeypatch):
    s, fake = session(tmp_path, monkeypatch, ["api", "web"])
    threads = s.read_ahead("test")
    for t in threads:
        t.join()
    assert sorted(fake.by_name) == [("ahead-test-api", False), ("ahead-test-web", False)] and fake.walks == 0
    assert s.stacks("test").get("ahead-test-api") is None    # remembered: asked once
    assert len(fake.by_name) == 2


def test_a_run_that_walks_the_region_reads_nothing_ahead(tmp_path, monkeypatch):
    s, fake = session(tmp_path, monkeypatch, ["aa", "bb", "cc"])
    assert s.read_ahead("test") == [] and fake.by_name == [] and fake.walks == 0


def test_after_this_run_changed_a_stack_each_stack_is_read_by_name_not_the_region_walked_again(tmp_path, monkeypatch):
    """A run of many workloads walks the region once; once it changed one of the env's stacks (a deploy:
    changed(env) drops the listing), each later check reads its own stack by name — one round trip —
    instead of walking every page again (once per deployed workload under -j N)."""
    s, fake = session(tmp_path, monkeypatch, ["aa", "bb", "cc", "dd"])
    assert s.stacks("test").get("ahead-test-aa") is None and fake.walks == 1
    assert s.stacks("test").get("ahead-test-bb") is None and fake.walks == 1      # the walk is remembered
    s.changed("test", name="aa")                                                   # aa was deployed
    assert s.stacks("test").get("ahead-test-bb") is None
    assert s.stacks("test").get("ahead-test-cc") is None
    assert s.stacks("test").get("ahead-test-bb") is None                          # remembered by name too
    assert fake.walks == 1 and [n for n, _ in fake.by_name] == ["ahead-test-bb", "ahead-test-cc"]
    s.changed("test", name="bb")                                                   # read again after a change
    assert s.stacks("test").get("ahead-test-cc") is None and fake.walks == 1
    assert [n for n, _ in fake.by_name] == ["ahead-test-bb", "ahead-test-cc", "ahead-test-cc"]
    assert "ahead-test-dd" not in s.stacks("test", every=True) and fake.walks == 2  # plan's orphan search walks
