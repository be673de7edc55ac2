"""live.py (issue #13): the plain lines stay byte for byte what copilot-doit printed; on a terminal the live
view shows each stage with its spinner and time, the last build steps, a bar per pushed layer, the stack's
resources Copilot-style and the ECS rollout, and collapses a finished stage to its result. Driven here with
synthetic events on a rich Console writing to a StringIO (no engine, no emulator)."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from copilot_doit import live, rollout, stacks

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def console():
    from rich.console import Console
    return Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None, highlight=False)


def shown(con, display=None) -> str:
    """What the terminal holds: the scrollback so far, then (when given) the live area as drawn now."""
    if display is not None:
        con.print(display.renderable())
    return con.file.getvalue()


def event(lid, status, kind, reason=None, sec=0.0, n=[0]):
    n[0] += 1
    e = {"EventId": f"{lid}-{status}-{n[0]}", "LogicalResourceId": lid, "ResourceStatus": status,
         "ResourceType": kind, "Timestamp": T0 + timedelta(seconds=sec)}
    if reason:
        e["ResourceStatusReason"] = reason
    return e


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_descriptions_are_copilots_by_logical_id_then_by_type():
    assert live.describe("Service", "AWS::ECS::Service") == \
        "An ECS service to run and maintain your tasks in the environment cluster"
    assert live.describe("LogGroup", "AWS::Logs::LogGroup") == "A CloudWatch log group to hold your service logs"
    assert live.describe("TaskRole", "AWS::IAM::Role") == \
        "An IAM role to control permissions for the containers in your tasks"
    # a numbered or named id falls back to its type's words
    assert live.describe("TargetGroup1", "AWS::ElasticLoadBalancingV2::TargetGroup") == \
        "A target group to connect the load balancer to your service"
    assert live.describe("SomeRole", "AWS::IAM::Role").startswith("An IAM role")
    assert live.describe("X", "Custom::Thing") == "A custom resource (Thing)"
    assert live.describe("X", "AWS::New::Kind") == "AWS::New::Kind"


def test_plain_display_prints_exactly_the_lines_of_before(capsys):
    out = io.StringIO()
    d = live.PlainDisplay(out.write)
    d.stage_started("build:api@test", "  (1 context file changed: a.txt)")
    d.stage_skipped("env:test", "  (stack demo-test is CREATE_COMPLETE)")
    d.stage_done("build:api@test", True)
    d.push_chunk({"status": "Pushing", "id": "abc", "progressDetail": {"current": 1, "total": 2}})
    d.build_line("  #1 [internal] load build definition")
    d.write("summary\n")
    assert out.getvalue() == (".  build:api@test  (1 context file changed: a.txt)\n"
                              "-- env:test  (stack demo-test is CREATE_COMPLETE)\n"
                              "summary\n")
    assert capsys.readouterr().out == "  #1 [internal] load build definition\n"


def test_plain_stack_events_and_rollout_lines_are_unchanged(capsys, monkeypatch):
    monkeypatch.setattr(live, "_DISPLAY", None)
    events = [event("Service", "UPDATE_FAILED", "AWS::ECS::Service", "boom", sec=2),
              event("demo-test-api", "UPDATE_IN_PROGRESS", "AWS::CloudFormation::Stack", sec=1)]
    stacks.print_events(events, set(), T0.timestamp(), "demo-test-api")
    assert capsys.readouterr().out == "  demo-test-api UPDATE_IN_PROGRESS\n  Service UPDATE_FAILED - boom\n"

    from test_rollout_in_deploy import CLUSTER, SERVICE, RecordedEcs
    said: list[str] = []
    rollout.ServiceProgress(RecordedEcs(T0), CLUSTER, lambda: SERVICE, T0, "api", out=said.append)()
    rollout.ServiceProgress(RecordedEcs(T0), CLUSTER, lambda: SERVICE, T0, "api")()   # the display's print
    assert capsys.readouterr().out == "".join(line + "\n" for line in said)
    assert any("exit code 1" in line for line in said) and any("circuit breaker" in line for line in said)


def test_a_running_build_shows_its_last_steps_then_collapses():
    con, clock = console(), Clock()
    d = live.RichDisplay(console=con, live=False, clock=clock, capture_stdout=False)
    d.stage_skipped("env:test", "  (stack demo-test is CREATE_COMPLETE)")
    d.stage_started("build:api@test", "  (1 context file changed: www/index.html)")
    d.line("building api from api/src/Dockerfile: 1 context file changed: www/index.html")
    for i in range(1, 9):
        d.build_line(f"  #{i} [stage-1 {i}/8] RUN step {i}")
    clock.now += 3.25
    frame = shown(con, d)
    assert "-- env:test  (stack demo-test is CREATE_COMPLETE)" in frame
    assert "build:api@test  (1 context file changed: www/index.html)" in frame and "3.2s" in frame
    assert any(ch in frame for ch in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")                       # the spinner
    assert "#8 [stage-1 8/8] RUN step 8" in frame and "#4 [stage-1 4/8]" in frame
    assert "#3 [stage-1 3/8]" not in frame                                   # the last 5 steps only

    con.file.truncate(0), con.file.seek(0)
    d.stage_done("build:api@test", True)
    after = shown(con)
    assert after.startswith("✔ build:api@test  (1 context file changed: www/index.html)  3.2s\n"), after
    assert "building api from api/src/Dockerfile" in after and "#8" not in after   # collapsed to its result
    assert shown(console(), d).strip() == ""                                   # nothing left running


def test_push_shows_a_bar_per_layer_with_bytes():
    con = console()
    d = live.RichDisplay(console=con, live=False, capture_stdout=False)
    d.stage_started("push:api@test", "  (new image)")
    d.push_chunk({"status": "The push refers to repository [127.0.0.1:5000/demo/api]"})
    d.push_chunk({"status": "Preparing", "progressDetail": {}, "id": "3f2a1b9c0d1e2f"})
    d.push_chunk({"status": "Pushing", "progressDetail": {"current": 1_200_000, "total": 3_400_000},
                  "progress": "[==>   ]", "id": "3f2a1b9c0d1e2f"})
    d.push_chunk({"status": "Layer already exists", "progressDetail": {}, "id": "9e8d7c6b5a49"})
    d.push_chunk({"aux": {"Tag": "latest", "Digest": "sha256:ab", "Size": 528}})
    frame = shown(con, d)
    assert "The push refers to repository [127.0.0.1:5000/demo/api]" in frame
    row = next(line for line in frame.splitlines() if "3f2a1b9c0d1e" in line)
    assert "Pushing" in row and "1.2 MB/3.4 MB" in row and "━" in row, row
    assert "3f2a1b9c0d1e2f" not in frame                                     # ids as docker shows them: 12
    assert "Layer already exists" in next(line for line in frame.splitlines() if "9e8d7c6b5a49" in line)
    d.push_chunk({"status": "Pushed", "progressDetail": {}, "id": "3f2a1b9c0d1e2f"})
    d.push_chunk({"status": "latest: digest: sha256:ab size: 528"})
    frame = shown(console(), d)
    row = next(line for line in frame.splitlines() if "3f2a1b9c0d1e" in line)
    assert "Pushed" in row and "3.4 MB" in row and "/" not in row.split("Pushed", 1)[1], row
    assert "latest: digest: sha256:ab size: 528" in frame


def test_stack_resources_copilot_style_with_the_rollout_under_the_service():
    from test_rollout_in_deploy import CLUSTER, SERVICE, RecordedEcs
    con, clock = console(), Clock()
    d = live.RichDisplay(console=con, live=False, clock=clock, capture_stdout=False)
    d.stage_started("deploy:api@test", "  (template changed)")
    name = "demo-test-api"
    for e in [event(name, "UPDATE_IN_PROGRESS", "AWS::CloudFormation::Stack"),
              event("LogGroup", "CREATE_IN_PROGRESS", "AWS::Logs::LogGroup", sec=1),
              event("LogGroup", "CREATE_COMPLETE", "AWS::Logs::LogGroup", sec=2.5),
              event("TargetGroup", "UPDATE_IN_PROGRESS", "AWS::ElasticLoadBalancingV2::TargetGroup", sec=2),
              event("TargetGroup", "UPDATE_FAILED", "AWS::ElasticLoadBalancingV2::TargetGroup",
                    "Resource handler returned message: health check path is invalid", sec=3),
              event("Service", "UPDATE_IN_PROGRESS", "AWS::ECS::Service", sec=3)]:
        d.stack_event(name, e, "(plain line)")
    # The rollout, as ServiceProgress reports it through the display: a task stopped with exit code 1, and
    # the circuit breaker's rollback.
    live._DISPLAY, before = d, live._DISPLAY
    try:
        rollout.ServiceProgress(RecordedEcs(T0), CLUSTER, lambda: SERVICE, T0, "api")()
    finally:
        live._DISPLAY = before
    frame = shown(con, d)
    lines = frame.splitlines()
    top = next(line for line in lines if "the infrastructure for stack demo-test-api" in line)
    assert "Updating the infrastructure for stack demo-test-api" in top and "[update in progress]" in top
    log = next(line for line in lines if "- LogGroup  " in line)
    assert "A CloudWatch log group to hold your service logs" in log and "[create complete]" in log
    assert "1.5s" in log and "✔" in log
    tg = next(line for line in lines if "target group" in line)
    assert "[update failed]" in tg and "✘" in tg, tg
    assert "health check path is invalid" in " ".join(frame.split())          # wrapped, not cut
    svc = next(i for i, line in enumerate(lines) if "An ECS service to run and maintain your tasks" in line)
    under = " ".join(" ".join(lines[svc + 1:]).split())
    assert "service api: 0/1 running, 0 pending, 3 failed" in under
    assert "task 3f2a1b9c stopped: Essential container in task exited" in under and "exit code 1" in under
    assert "circuit breaker" in under and "FAILED" in under
    assert "(plain line)" not in frame

    # A failed stage keeps its details in the scrollback (why it failed), not only its ✘ line.
    d.stage_done("deploy:api@test", False)
    after = con.file.getvalue()[len(frame):]
    assert after.startswith("✘ deploy:api@test  (template changed)"), after
    after = " ".join(after.split())
    assert "health check path is invalid" in after and "exit code 1" in after


def test_a_successful_deploy_collapses_to_what_the_stack_did():
    con = console()
    d = live.RichDisplay(console=con, live=False, capture_stdout=False)
    d.stage_started("deploy:api@test", "")
    name = "demo-test-api"
    for e in [event(name, "UPDATE_IN_PROGRESS", "AWS::CloudFormation::Stack"),
              event("TaskDefinition", "UPDATE_COMPLETE", "AWS::ECS::TaskDefinition"),
              event("LogGroup", "CREATE_COMPLETE", "AWS::Logs::LogGroup"),
              event("Service", "UPDATE_COMPLETE", "AWS::ECS::Service"),
              event(name, "UPDATE_COMPLETE", "AWS::CloudFormation::Stack")]:
        d.stack_event(name, e, "")
    d.line("deployed service api to test: stack demo-test-api (UPDATE_COMPLETE)")
    d.stage_done("deploy:api@test", True)
    out = con.file.getvalue()
    assert "stack demo-test-api UPDATE_COMPLETE: 2 updated, 1 created" in out, out
    assert out.rstrip().endswith("deployed service api to test: stack demo-test-api (UPDATE_COMPLETE)")
    assert "An ECS service" not in out


def test_stage_prints_go_to_the_stage_and_other_lines_above():
    con = console()
    d = live.RichDisplay(console=con, live=False, capture_stdout=True)
    real = sys.stdout
    try:
        d.stage_started("package:api@test", "")
        print("packaging api for test")
        assert sys.stdout is not real
        d.stage_done("package:api@test", True)
        print("between stages")
    finally:
        d.close()
    assert sys.stdout is real
    assert con.file.getvalue() == "✔ package:api@test  0.0s\n    packaging api for test\nbetween stages\n"


@pytest.mark.parametrize("env,quiet,argv,tty,want", [
    ({}, False, ["deploy"], True, True),
    ({}, False, ["deploy"], False, False),                       # a pipe, CI
    ({"COPILOT_DOIT_PLAIN": "1"}, False, ["deploy"], True, False),
    ({"TERM": "dumb"}, False, ["deploy"], True, False),
    ({}, True, ["deploy"], True, False),                         # --quiet
    ({}, False, ["-n", "2", "-P", "thread", "deploy"], True, False),   # -j 2: lines of parallel tasks
    ({}, False, ["--process=3", "deploy"], True, False),
])
def test_when_the_live_view_is_used(monkeypatch, env, quiet, argv, tty, want):
    monkeypatch.delenv("COPILOT_DOIT_PLAIN", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    class Stream(io.StringIO):
        def isatty(self):
            return tty
    assert live.wants_rich(Stream(), quiet, argv) is want


def test_rich_is_loaded_only_when_a_stage_runs():
    """On a terminal a no-op prints its `--` lines without importing rich (its ~0.1 s stays off the no-op)."""
    probe = """
import io, os, sys
class Tty(io.StringIO):
    def isatty(self): return True
from copilot_doit import live
out = Tty()
d = live.open_display(out, False, ["deploy"])
d.stage_skipped("env:test", "  (up to date)")
before = "rich" in sys.modules
d.stage_started("build:api@test", "")
print("inside the stage")
d.stage_done("build:api@test", True)
d.close()
sys.__stdout__.write(f"{type(d).__name__} {before} {'rich' in sys.modules}\\n")
sys.__stdout__.write(repr(out.getvalue()) + "\\n")
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm"}
    env.pop("COPILOT_DOIT_PLAIN", None)
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    first, second = p.stdout.splitlines()[:2]
    assert first == "RichDisplay False True", p.stdout + p.stderr
    assert second.startswith("'-- env:test  (up to date)\\n"), second
    assert "build:api@test" in second and "inside the stage" in second
