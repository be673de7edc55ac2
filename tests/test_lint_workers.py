"""cfn-lint in worker processes for parallel runs (`copilot-doit deploy -j N`): cfn-lint holds the GIL for
~1 s per template, so threads lint one at a time; workers lint side by side, with the same report."""
from __future__ import annotations

import json
import os
import threading

import pytest

from copilot_doit import linting
from copilot_doit.cache import Cache
from copilot_doit.errors import StageFailed

WARNS = {"Parameters": {"Unused": {"Type": "String"}},
         "Resources": {"Log": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}}}}
FAILS = {"Resources": {"Log": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 8}}}}


@pytest.fixture
def workers():
    linting.use_workers(2)
    yield
    linting.shutdown()
    linting.use_workers(0)


def test_parallel_runs_lint_in_worker_processes_with_the_same_report(workers):
    if (os.cpu_count() or 1) < 2:
        pytest.fail("this machine has one CPU: no second worker to lint on")
    texts = [json.dumps(WARNS, indent=1), json.dumps(FAILS, indent=1)]
    reports: dict[int, list] = {}

    def lint(i):
        reports[i] = linting.run(texts[i], "us-east-1")
    threads = [threading.Thread(target=lint, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pids = {p.pid for p in linting._pool._processes.values()}
    assert pids and os.getpid() not in pids, "linted in this process, not in workers"
    with linting._LINT_LOCK:   # the same templates in this process: the same rows
        assert reports == {i: linting.lint_report(texts[i], "us-east-1") for i in range(2)}
    assert {r["rule"] for r in reports[0]} == {"W2001"} and any(r["level"] == "error" for r in reports[1])
    linting.shutdown()
    assert linting._pool is None


def _what_a_worker_holds():
    import sys
    return os.getppid(), [m for m in linting.WORKER_PRELOAD if m in sys.modules]


def test_workers_are_forked_from_a_server_that_imported_cfn_lint_once(workers):
    """Not forked from this process (its threads would be copied mid-flight) and not each a fresh interpreter
    importing cfn-lint (~1 s each): the fork server imported it, its workers have it before any template."""
    parent, loaded = linting._get_pool().submit(_what_a_worker_holds).result(timeout=120)
    assert parent != os.getpid()
    assert loaded == linting.WORKER_PRELOAD


def test_an_error_found_by_a_worker_fails_the_stage_as_in_process(workers, tmp_path):
    cache = Cache(tmp_path / "cache")
    with pytest.raises(StageFailed, match=r"cfn-lint found \d+ error"):
        linting.lint_template(cache, json.dumps(FAILS, indent=1), "us-east-1", "t.yml")
    assert linting._pool is not None   # it went through the workers


def test_one_job_lints_in_this_process():
    linting.use_workers(1)
    assert linting.run(json.dumps(WARNS, indent=1), "us-east-1")[0]["rule"] == "W2001"
    assert linting._pool is None


def test_one_runner_per_process_reports_what_cfn_lint_api_reports_for_every_template():
    """lint_report keeps cfn-lint's Runner (its rules loaded once per process and region) where
    `cfnlint.api.lint` makes one per template: the rows must be the same, template after template, in either
    order (no state carried from one template to the next), and for YAML that does not parse."""
    from cfnlint.api import lint
    yaml_warns = "Parameters:\n  Unused:\n    Type: String\nResources:\n  Log:\n    Type: AWS::Logs::LogGroup\n"
    texts = [json.dumps(WARNS, indent=1), json.dumps(FAILS, indent=1), yaml_warns,
             "Resources:\n  Bad: [unclosed\n", json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}})]

    def api_rows(text, region):
        return sorted(({"rule": m.rule.id, "level": m.rule.severity, "line": m.linenumber,
                        "column": m.columnnumber, "message": m.message, "path": [str(p) for p in (getattr(m, "path", None) or [])]}
                       for m in lint(text, regions=[region])),
                      key=lambda r: (r["line"] or 0, r["rule"], r["message"]))
    for region in ("us-east-1", "eu-west-1"):
        for text in texts + texts[::-1]:
            assert linting.lint_report(text, region) == api_rows(text, region), (region, text)
    assert linting._runner.cache_info().currsize == 2        # one Runner per region, reused


def _pool_of(**kwargs):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"), **kwargs)


def test_a_worker_that_exits_before_answering_fails_the_stage_and_the_next_lint_starts_new_workers(workers):
    linting._pool = _pool_of(initializer=os._exit, initargs=(3,))   # every worker dies as it starts
    with pytest.raises(StageFailed, match="worker process exited before it answered"):
        linting.run(json.dumps(WARNS, indent=1), "us-east-1")
    assert linting._pool is None
    assert linting.run(json.dumps(WARNS, indent=1), "us-east-1")[0]["rule"] == "W2001"


def test_a_worker_that_never_answers_fails_the_stage_in_bounded_time_and_is_stopped(workers, monkeypatch):
    import time
    monkeypatch.setattr(linting, "WORKER_TIMEOUT", 1.0)
    stuck = _pool_of(initializer=time.sleep, initargs=(3600,))        # the worker never takes the template
    linting._pool = stuck
    t0 = time.monotonic()
    with pytest.raises(StageFailed, match="no answer within 1 s"):
        linting.run(json.dumps(WARNS, indent=1), "us-east-1")
    assert time.monotonic() - t0 < 30
    assert linting._pool is None
    import multiprocessing
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not multiprocessing.active_children(), "the stuck worker was left running"


UNGUARDED = """\
import multiprocessing, sys
from copilot_doit.cli import main
if __name__ == "__mp_main__":          # the spawned child, re-running this script as it starts
    print("child main returned", main(["deploy", "-e", "test"]), file=sys.stderr)
    sys.exit(7)
child = multiprocessing.get_context(sys.argv[1]).Process(target=print, args=("worker ran",))
child.start()
child.join(60)
print("worker exit", child.exitcode)
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])   # forkserver: how cfn-lint's workers start
def test_main_called_while_a_spawned_worker_starts_runs_nothing_and_says_why(tmp_path, method):
    """A script that calls main() without `if __name__ == "__main__":` is run again by every spawned worker
    (cfn-lint's under -j N) as it starts: main() there deploys nothing (it would wait for the cache lock its
    parent holds, for ever) and says what to change."""
    import subprocess
    import sys
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    p = subprocess.run([sys.executable, str(script), method], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    # The child stopped in the script's `__mp_main__` branch (its own exit code under spawn; the fork server
    # reports a start-up that raised SystemExit as 1), never running the worker's target.
    assert p.stdout.strip() == {"spawn": "worker exit 7", "forkserver": "worker exit 1"}[method], (p.stdout, p.stderr)
    assert "child main returned 2" in p.stderr
    assert 'call it under `if __name__ == "__main__":`' in p.stderr
    assert "workspace" not in p.stderr.lower()   # it did not go looking for a workspace to deploy
