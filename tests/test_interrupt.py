"""Ctrl-C during a stack operation (issue #10 scope 4), as Copilot handles it: an update is cancelled
(CancelUpdateStack) and its rollback waited for, a create is deleted, a second Ctrl-C stops waiting at
once, and the run ends with `Interrupted` (exit code 130).

Unit tests drive the guard around stacks._stream (the deploy's own wait) with recorded CloudFormation
answers and a real SIGINT sent to this process at a chosen call; the e2e tests hold an operation in
progress on the moto server (patch 7 of targets/local/moto_server.py) and cancel it for real.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from copilot_doit import interrupt, stacks
from copilot_doit.errors import StageFailed
from copilot_doit.interrupt import Interrupted, cancel_on_interrupt

NAME = "app-test-svc"
SID = "arn:aws:cloudformation:us-east-1:123456789012:stack/app-test-svc/1"


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


class RecordedCfn:
    """DescribeStacks answers in sequence (the last repeats; None: the stack does not exist).
    `ctrl_c_at`: the numbers (1-based) of the DescribeStacks calls at which Ctrl-C is pressed, before
    answering; `ctrl_c_in`: API names during which it is pressed (the call itself completes)."""

    def __init__(self, *answers, ctrl_c_at=(), ctrl_c_in=(), cancel_error=None):
        self.answers = list(answers)
        self.ctrl_c_at = set(ctrl_c_at)
        self.ctrl_c_in = set(ctrl_c_in)
        self.cancel_error = cancel_error
        self.calls: list[tuple[str, dict]] = []
        self.describes = 0

    def describe_stacks(self, StackName):
        self.describes += 1
        if self.describes in self.ctrl_c_at:
            ctrl_c()           # the handler raises here, as it would inside a real HTTP call
        self.calls.append(("DescribeStacks", {"StackName": StackName}))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer is None:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": f"Stack with id {StackName} does not exist"}},
                              "DescribeStacks")
        return {"Stacks": [{"StackName": NAME, "StackId": SID, "StackStatus": answer}]}

    def describe_stack_events(self, StackName):
        self.calls.append(("DescribeStackEvents", {"StackName": StackName}))
        return {"StackEvents": []}

    def _mutating(self, op, kw, error=None):
        self.calls.append((op, kw))
        if op in self.ctrl_c_in:
            ctrl_c()           # a second press while the request is being made: shielded
        if error:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": error}}, op)

    def cancel_update_stack(self, **kw):
        self._mutating("CancelUpdateStack", kw, self.cancel_error)

    def delete_stack(self, **kw):
        self._mutating("DeleteStack", kw)

    def ops(self):
        return [c[0] for c in self.calls if c[0] not in ("DescribeStacks", "DescribeStackEvents")]

    def answered(self):
        """DescribeStacks calls answered (a press at a call raises before it is answered)."""
        return sum(1 for c in self.calls if c[0] == "DescribeStacks")


def deploy_wait(cfn, **kw):
    """What stacks.deploy does after ExecuteChangeSet, guarded."""
    lines: list[str] = []
    with cancel_on_interrupt(cfn, NAME, stack_id=SID, timeout=30, say=lines.append, max_interval=0.01, **kw) as g:
        assert g.active
        final = stacks._stream(cfn, NAME, time.time(), 30)
    return final, lines


@pytest.fixture(autouse=True)
def handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    yield
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_during_an_update_cancels_it_and_waits_for_the_rollback(capsys):
    cfn = RecordedCfn("UPDATE_IN_PROGRESS",                              # the deploy's wait; Ctrl-C at its 2nd call
                      "UPDATE_IN_PROGRESS",                              # the guard's describe
                      "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
                      "UPDATE_ROLLBACK_COMPLETE", ctrl_c_at=[2])
    with pytest.raises(Interrupted) as exc:
        deploy_wait(cfn)
    assert exc.value.outcome == "rolled-back" and exc.value.status == "UPDATE_ROLLBACK_COMPLETE"
    assert exc.value.exit_code == 130 and isinstance(exc.value, StageFailed)
    assert "cancelled and rolled back to the previous configuration" in str(exc.value)
    assert cfn.ops() == ["CancelUpdateStack"]
    assert ("CancelUpdateStack", {"StackName": SID}) in cfn.calls
    assert cfn.answered() == 5 and cfn.answers == ["UPDATE_ROLLBACK_COMPLETE"]   # waited to the rollback's end
    assert interrupt.last_interrupted() is exc.value


def test_the_line_printed_says_what_happens_and_what_a_second_ctrl_c_does():
    cfn = RecordedCfn("UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE", ctrl_c_at=[1])
    lines: list[str] = []
    with pytest.raises(Interrupted):
        with cancel_on_interrupt(cfn, NAME, stack_id=SID, say=lines.append, max_interval=0.01):
            stacks._stream(cfn, NAME, time.time(), 30)
    text = "\n".join(lines)
    assert f"cancelling the update of stack {NAME} (CancelUpdateStack)" in text
    assert f"Pressing Ctrl-C again will exit immediately but stack {NAME} rollback will continue" in text


def test_ctrl_c_during_a_create_deletes_the_half_created_stack():
    cfn = RecordedCfn("CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "DELETE_IN_PROGRESS", None, ctrl_c_at=[2])
    with pytest.raises(Interrupted) as exc:
        deploy_wait(cfn)
    assert exc.value.outcome == "deleted"
    assert "the half-created stack app-test-svc was deleted" in str(exc.value)
    deleted_at = cfn.calls.index(("DeleteStack", {"StackName": SID}))              # by id
    assert [c[0] for c in cfn.calls[deleted_at:] if c[0] == "DescribeStacks"] == ["DescribeStacks"] * 2  # until gone
    assert cfn.ops() == ["DeleteStack"]


def test_ctrl_c_before_the_create_ran_deletes_the_review_stack():
    cfn = RecordedCfn("REVIEW_IN_PROGRESS", "DELETE_COMPLETE", ctrl_c_at=[1])
    with pytest.raises(Interrupted) as exc:
        deploy_wait(cfn)
    assert exc.value.outcome == "deleted" and cfn.ops() == ["DeleteStack"]


def test_a_second_ctrl_c_stops_waiting_at_once():
    cfn = RecordedCfn("UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
                      ctrl_c_at=[1, 3])          # first press in the deploy's wait, second in the rollback's
    started = time.monotonic()
    with pytest.raises(Interrupted) as exc:
        deploy_wait(cfn)
    assert time.monotonic() - started < 2
    assert exc.value.outcome == "abandoned" and exc.value.exit_code == 130
    assert f"interrupted twice (Ctrl-C): stopped waiting for the rollback of stack {NAME}" in str(exc.value)
    assert "CloudFormation carries on" in str(exc.value)
    assert cfn.ops() == ["CancelUpdateStack"]    # the cancel was requested before giving up
    assert cfn.describes == 3 and cfn.answered() == 1   # the guard's describe; nothing after the 2nd press


def test_a_second_ctrl_c_during_the_cancel_request_lets_it_through_then_exits():
    cfn = RecordedCfn("UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
                      ctrl_c_at=[1], ctrl_c_in=["CancelUpdateStack"])
    with pytest.raises(Interrupted) as exc:
        deploy_wait(cfn)
    assert exc.value.outcome == "abandoned"
    assert cfn.ops() == ["CancelUpdateStack"]
    assert cfn.answered() == 1                   # the guard's describe; no wait after the request


def test_an_update_that_finished_meanwhile_cannot_be_cancelled_and_says_so():
    cfn = RecordedCfn("UPDATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE", ctrl_c_at=[1],
                      cancel_error="CancelUpdateStack cannot be called from current stack status")
    with pytest.raises(Interrupted) as exc:
        deploy_wait(cfn)
    assert exc.value.outcome == "finished" and "had already completed (UPDATE_COMPLETE)" in str(exc.value)


def test_a_cleanup_in_progress_is_waited_for_not_cancelled():
    cfn = RecordedCfn("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
                      "UPDATE_COMPLETE", ctrl_c_at=[1])
    with pytest.raises(Interrupted) as exc:
        deploy_wait(cfn)
    assert exc.value.outcome == "finished" and cfn.ops() == []


def test_a_failed_rollback_names_continue_update_rollback():
    cfn = RecordedCfn("UPDATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_FAILED", ctrl_c_at=[1])
    with pytest.raises(Interrupted, match=f"continue-update-rollback --stack-name {NAME}") as exc:
        deploy_wait(cfn)
    assert exc.value.outcome == "failed"


def test_a_failing_cancel_request_is_reported():
    cfn = RecordedCfn("UPDATE_IN_PROGRESS", ctrl_c_at=[1], cancel_error="User is not authorized")
    with pytest.raises(Interrupted, match="CancelUpdateStack app-test-svc failed: .*not authorized") as exc:
        deploy_wait(cfn)
    assert exc.value.outcome == "failed"


def test_the_rollback_wait_is_bounded():
    cfn = RecordedCfn("UPDATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", ctrl_c_at=[1])
    with pytest.raises(Interrupted, match=f"timed out after 0s waiting for the rollback of stack {NAME}") as exc:
        with cancel_on_interrupt(cfn, NAME, stack_id=SID, timeout=0.2, say=lambda _: None, max_interval=0.01):
            stacks._stream(cfn, NAME, time.time(), 30)
    assert exc.value.outcome == "failed"


def test_without_ctrl_c_the_guard_changes_nothing():
    cfn = RecordedCfn("UPDATE_IN_PROGRESS", "UPDATE_COMPLETE")
    final, lines = deploy_wait(cfn)
    assert final["StackStatus"] == "UPDATE_COMPLETE" and cfn.ops() == [] and lines == []


def test_another_failure_in_the_block_goes_through_unchanged():
    with pytest.raises(StageFailed, match="boom") as exc:
        with cancel_on_interrupt(RecordedCfn("UPDATE_IN_PROGRESS"), NAME, say=lambda _: None):
            raise StageFailed("boom")
    assert not isinstance(exc.value, Interrupted)


def test_outside_the_main_thread_it_does_nothing():
    seen = {}

    def run():
        before = signal.getsignal(signal.SIGINT)
        with cancel_on_interrupt(RecordedCfn("UPDATE_IN_PROGRESS"), NAME) as g:
            seen["active"] = g.active
            seen["same"] = signal.getsignal(signal.SIGINT) is before

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == {"active": False, "same": True}


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with cancel_on_interrupt(RecordedCfn("UPDATE_IN_PROGRESS"), NAME) as g:
            assert not g.active
            ctrl_c()               # ignored, as before
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


# -- on the moto server: an update held in progress (moto_server patch 7), cancelled for real --------

def _client(services_up):
    import boto3
    return boto3.client("cloudformation", endpoint_url=services_up.moto_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _template(value, hold=None):
    t = {"Parameters": {"V": {"Type": "String"}},
         "Resources": {"Log": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": {"Fn::Sub": "/i-${V}"}}}},
         "Outputs": {"V": {"Value": {"Ref": "V"}}}}
    if hold:
        t["Metadata"] = {"CopilotDoitEmulatorHold": hold}
    return json.dumps(t)


def _execute(cfn, stack, kind, value, hold=None):
    cs = cfn.create_change_set(StackName=stack, ChangeSetName="c" + uuid.uuid4().hex[:8], ChangeSetType=kind,
                               TemplateBody=_template(value, hold),
                               Parameters=[{"ParameterKey": "V", "ParameterValue": value}])
    cfn.execute_change_set(ChangeSetName=cs["Id"], StackName=stack)
    return cs["StackId"]


def _ctrl_c_after(seconds):
    timer = threading.Timer(seconds, ctrl_c)   # the handler runs in the main thread, in the deploy's wait
    timer.start()
    return timer


@pytest.mark.e2e
def test_e2e_a_held_update_is_cancelled_and_rolls_back(services_up, capsys):
    cfn = _client(services_up)
    stack = "int-" + uuid.uuid4().hex[:8]
    _execute(cfn, stack, "CREATE", "one")
    started = time.time()
    stack_id = _execute(cfn, stack, "UPDATE", "two", hold={"Seconds": 120, "RollbackSeconds": 1})
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "UPDATE_IN_PROGRESS"
    timer = _ctrl_c_after(0.5)
    with pytest.raises(Interrupted) as exc:
        with cancel_on_interrupt(cfn, stack, stack_id=stack_id, timeout=60, max_interval=0.2):
            stacks._stream(cfn, stack, started, 60)
    timer.join()
    assert exc.value.outcome == "rolled-back", exc.value
    live = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert live["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert live["Parameters"] == [{"ParameterKey": "V", "ParameterValue": "one"}]     # the previous configuration
    out = capsys.readouterr().out
    assert "Received Ctrl-C: cancelling the update" in out
    assert "UPDATE_ROLLBACK_IN_PROGRESS - Stack update cancelled" in out           # the rollback, waited for
    assert f"{stack} UPDATE_ROLLBACK_COMPLETE" in out
    assert out.count("UPDATE_IN_PROGRESS") == 1, out    # the deploy's wait printed it; the guard does not again


@pytest.mark.e2e
def test_e2e_a_held_create_is_deleted(services_up):
    cfn = _client(services_up)
    stack = "int-" + uuid.uuid4().hex[:8]
    started = time.time()
    stack_id = _execute(cfn, stack, "CREATE", "one", hold=120)
    timer = _ctrl_c_after(0.5)
    with pytest.raises(Interrupted) as exc:
        with cancel_on_interrupt(cfn, stack, stack_id=stack_id, timeout=60, max_interval=0.2, say=lambda _: None):
            stacks._stream(cfn, stack, started, 60)
    timer.join()
    assert exc.value.outcome == "deleted", exc.value
    assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    with pytest.raises(ClientError, match="does not exist"):
        cfn.describe_stacks(StackName=stack)
