"""stages.prefetch sizes its pool of workload checks by the selected environments' targets (round trips of
milliseconds to the local peers, tens of milliseconds to AWS), and warms an S3 client only when some
selected workload's check will look for its uploads (addons or an env file)."""
from __future__ import annotations

import threading

import pytest

from conftest import scratch_session
from copilot_doit import stages
from copilot_doit.session import Options, Session
from copilot_doit.targets.aws import AwsTarget
from copilot_doit.targets.local import LocalTarget
from copilot_doit.targets.local.endpoint import EmulatedAwsTarget


class FakeStage:
    def __init__(self, status, name="deploy"):
        self.status, self.name = status, name


class FakeTarget:
    def __init__(self, concurrent_checks):
        self.concurrent_checks = concurrent_checks
        self.warmed = []

    def warm_up(self, uploads=True, walk=False):
        self.warmed.append(uploads)
        self.walks = walk
        return None

    def stacks_changed(self):
        pass


def session(tmp_path, monkeypatch, names):
    return scratch_session(tmp_path, monkeypatch, "conc", names)


def peak_of_checks(monkeypatch, s, concurrent_checks) -> tuple[int, FakeTarget]:
    """Run prefetch with workload checks that each wait a little, and return how many ran at once at most."""
    fake = FakeTarget(concurrent_checks)
    s._targets["test"] = fake
    running, peak, lock = [0], [0], threading.Lock()
    everyone = threading.Barrier(min(concurrent_checks, len(s.names)), timeout=10)

    def workload_status(session, name, env):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            everyone.wait()      # the first `concurrent_checks` checks meet: they really run at once
        except threading.BrokenBarrierError:
            pass                 # later rounds are smaller: they need not meet
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(stages, "ENV", FakeStage(lambda *a: None))
    monkeypatch.setattr(stages, "WORKLOAD_STAGES", (FakeStage(workload_status),))
    stages.prefetch(s)
    return peak[0], fake


@pytest.mark.parametrize("allowed", [3, 12])
def test_the_target_says_how_many_workload_checks_run_at_once(tmp_path, monkeypatch, allowed):
    names = [f"w{i:02d}" for i in range(12)]
    _, s = session(tmp_path, monkeypatch, names)
    peak, _ = peak_of_checks(monkeypatch, s, allowed)
    assert peak == allowed


def test_the_aws_path_runs_more_checks_at_once_than_the_local_target():
    # Both are the targets' own numbers (no instance needed); the emulated AWS path is the AWS path's.
    assert AwsTarget.concurrent_checks > LocalTarget.concurrent_checks
    assert EmulatedAwsTarget.concurrent_checks == AwsTarget.concurrent_checks


def test_botocore_keeps_a_connection_per_check(tmp_path):
    """A connection pool smaller than the checks in flight would open and drop a connection per call (a TLS
    handshake each on AWS)."""
    from copilot_doit.workspace import EnvSettings
    for cls in (AwsTarget, LocalTarget):
        t = cls(EnvSettings(name="test", target=cls.kind, region="us-east-1"), tmp_path)
        assert t.client_config()["max_pool_connections"] > cls.concurrent_checks


@pytest.mark.parametrize("count", [2, 5])
def test_the_warm_up_starts_the_walk_when_the_run_walks_the_region(tmp_path, monkeypatch, count):
    """A run of one or two workloads reads its stacks by name (Session.stacks): no walk to start early."""
    names = [f"w{i:02d}" for i in range(count)]
    _, s = session(tmp_path, monkeypatch, names)
    _, fake = peak_of_checks(monkeypatch, s, 2)
    assert fake.walks is (count > 2)


def test_no_s3_client_is_warmed_when_no_selected_workload_has_uploads(tmp_path, monkeypatch):
    _, s = session(tmp_path, monkeypatch, ["aa", "bb"])
    _, fake = peak_of_checks(monkeypatch, s, 8)
    assert fake.warmed == [False]


@pytest.mark.parametrize("kind", ["addons", "env_file"])
def test_an_s3_client_is_warmed_when_a_selected_workload_has_uploads(tmp_path, monkeypatch, kind):
    ws, _ = session(tmp_path, monkeypatch, ["aa", "bb"])
    if kind == "addons":
        (ws.root / "copilot" / "bb" / "addons").mkdir()
        (ws.root / "copilot" / "bb" / "addons" / "t.yml").write_text("Resources: {}\n")
    else:
        (ws.root / "copilot" / "bb" / "bb.env").write_text("A=1\n")
        m = ws.root / "copilot" / "bb" / "manifest.yml"
        m.write_text(m.read_text() + "env_file: copilot/bb/bb.env\n")
    s = Session(Options(names=["aa", "bb"], envs=["test"]))
    _, fake = peak_of_checks(monkeypatch, s, 8)
    assert fake.warmed == [True]
    # ... and not when the workload with uploads is not selected
    s = Session(Options(names=["aa"], envs=["test"]))
    _, fake = peak_of_checks(monkeypatch, s, 8)
    assert fake.warmed == [False]


@pytest.mark.parametrize("building", [False, True])
def test_the_push_check_never_starts_git_the_build_s_run_does(tmp_path, monkeypatch, building):
    """Checks do not start git for the tag (a plan, or a deploy of up-to-date images, needs none, and its two
    processes took CPU from the checks); a build that runs starts it before the CLI builds, so the answer is
    in by the time the push runs."""
    from copilot_doit import git
    from copilot_doit.stages import build, push
    from copilot_doit.stages.base import Status
    _, s = session(tmp_path, monkeypatch, ["aa"])
    monkeypatch.setattr(build, "status", lambda session, name, env: Status(True, "why", build.Key("t", "00" * 16),
                                                                           None, {}) if building else
                        Status(False, "as is", None, {"location": "public.ecr.aws/x/y:1"}))
    events = []
    monkeypatch.setattr(git, "start_run_tag", lambda session: events.append(("git", session)))
    assert push.status(s, "aa", "test").run is building
    assert events == []
    if building:
        monkeypatch.setattr(build.engine, "warm_client", lambda: None)
        monkeypatch.setattr(build, "build_image", lambda *a, **k: events.append(("build", None)) or {"image_id": "sha256:1"})
        monkeypatch.setattr(s, "record", lambda *a, **k: None)
        build.run(s, "aa", "test")
        assert events == [("git", s), ("build", None)]


def test_every_image_check_is_taken_before_any_workload_s_whole_chain(tmp_path, monkeypatch):
    """The rest of a workload's chain waits for the environment's check (its stack: the DescribeStacks walk);
    a thread waiting there must not hold up other workloads' image checks (push: the registry or ECR)."""
    names = [f"w{i:02d}" for i in range(10)]
    _, s = session(tmp_path, monkeypatch, names)
    s._targets["test"] = FakeTarget(3)
    started, lock = [], threading.Lock()
    walked = threading.Event()

    def push_status(session, name, env):
        with lock:
            started.append(("push", name))

    def deploy_status(session, name, env):
        with lock:
            started.append(("deploy", name))
        walked.wait(0.05)          # the chain's end waits on the environment's check

    monkeypatch.setattr(stages, "ENV", FakeStage(lambda *a: None, "env"))
    monkeypatch.setattr(stages, "WORKLOAD_STAGES", (FakeStage(push_status, "push"), FakeStage(deploy_status)))
    stages.prefetch(s)
    kinds = [k for k, _ in started]
    assert sorted(started) == sorted([("push", n) for n in names] + [("deploy", n) for n in names])
    # Taken in that order by 3 threads: at most the 2 other threads' last pushes are recorded after the
    # first deploy began.
    assert kinds.index("deploy") >= 10 - 2 and "deploy" not in kinds[:8], started
