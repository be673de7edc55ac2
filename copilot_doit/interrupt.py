"""Ctrl-C during a stack operation, as Copilot handles it (internal/pkg/deploy/cloudformation:
waitForSignalAndHandleInterrupt).

The first SIGINT while a stack operation runs is not a crash: the stack is described and
- UPDATE_IN_PROGRESS: the update is cancelled (CancelUpdateStack) and the rollback waited for, to
  UPDATE_ROLLBACK_COMPLETE: the stack is back at its previous template, parameters and tags;
- CREATE_IN_PROGRESS (or REVIEW_IN_PROGRESS: a create whose change set was not executed yet): the
  half-created stack is deleted (by id) and its deletion waited for;
- anything else in progress (UPDATE_COMPLETE_CLEANUP_IN_PROGRESS, a rollback already running, ...)
  cannot be cancelled: it is waited for;
- a stack already settled is left as it is.
A line says which, and that a second Ctrl-C stops waiting at once while CloudFormation carries on.
Either way the run ends with `Interrupted` (a StageFailed, exit code 130) saying what was done.

The describe and the cancel or delete request are shielded: a second Ctrl-C that arrives during
those API calls takes effect right after them, so an update is never left running with nobody having
asked for it to stop.

Signal handlers can only be installed from the main thread (`signal.signal` raises ValueError
elsewhere): in another thread (doit `-n N -P thread`), or when SIGINT is ignored (SIG_IGN, e.g. a
background job) or held by a handler Python cannot restore, the guard does nothing special and a
Ctrl-C behaves as it did before.
"""
from __future__ import annotations

import signal
import threading
import time

from .errors import StageFailed

EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for a process stopped by Ctrl-C

_last: Interrupted | None = None


class Interrupted(StageFailed):
    """A deploy stopped by Ctrl-C; the message says what became of the stack.

    outcome: "rolled-back" (update cancelled, UPDATE_ROLLBACK_COMPLETE), "deleted" (half-created
    stack removed), "finished" (an operation that could not be cancelled ran to its end), "unchanged"
    (nothing was in progress), "abandoned" (a second Ctrl-C: CloudFormation carries on alone) or
    "failed" (the cancel/delete, or its wait, failed or timed out)."""

    exit_code = EXIT_CODE

    def __init__(self, message: str, *, stack: str, outcome: str, status: str | None = None):
        super().__init__(message)
        self.stack = stack
        self.outcome = outcome
        self.status = status


def last_interrupted() -> Interrupted | None:
    """The last Interrupted raised in this process (for a command line that maps it to exit 130)."""
    return _last


class _CtrlC(KeyboardInterrupt):
    """Raised by our handler inside the guarded block. A KeyboardInterrupt, so that if it ever escapes
    (a signal in the few bytecodes before __exit__ starts) it is an ordinary Ctrl-C, and so that the
    `except Exception` clauses on the way (botocore, our _call) let it through."""


class cancel_on_interrupt:  # noqa: N801 - used as a context manager, named like one
    """Guard the wait for a stack operation::

        with interrupt.cancel_on_interrupt(cfn, name, stack_id=cs.get("StackId"), timeout=timeout):
            _call("ExecuteChangeSet", ...)
            final = _stream(cfn, name, started, timeout)

    `cfn` is a boto3 CloudFormation client (or anything with describe_stacks, cancel_update_stack,
    delete_stack, describe_stack_events). `stack_id` lets the delete and the waits name this very stack
    even if another of the same name appears. `timeout` bounds the wait for the rollback or deletion;
    `say` prints a line (default: print, flushed); `max_interval` caps the polling interval.
    `active` tells whether a handler was installed.
    """

    def __init__(self, cfn, name: str, stack_id: str | None = None, *, timeout: float = 3600.0,
                 say=None, max_interval: float = 5.0):
        self.cfn = cfn
        self.name = name
        self.stack_id = stack_id
        self.timeout = timeout
        self.say = say or (lambda line: print(line, flush=True))
        self.max_interval = max_interval
        self.active = False
        self._previous = None
        self._armed = False      # the handler raises (in the guarded block, and when waiting)
        self._pending = False    # a Ctrl-C that arrived while disarmed (a shielded call, __exit__)
        self._seen: set[str] = set()

    # -- the handler ---------------------------------------------------------------------------
    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self    # signal handlers can only be installed from the main thread: do nothing
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.SIG_IGN or previous is None:
            return self    # Ctrl-C is ignored here, or held by a handler Python could not put back
        try:
            signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main interpreter's main thread after all
            return self
        self._previous = previous
        self.active = True
        self._armed = True
        return self

    def _handler(self, signum, frame):
        if not self._armed:
            self._pending = True
            return
        self._armed = False       # one raise per arming: the code that catches it re-arms
        raise _CtrlC()

    def __exit__(self, exc_type, exc, tb):
        if not self.active:
            return False
        self._armed = False
        try:
            raised = exc_type is not None and issubclass(exc_type, _CtrlC)
            if not raised and not self._pending:
                return False      # finished, or failed on its own: that exception goes on
            if not raised:
                self._pending = False   # that press was the first one (it came while disarmed)
            # else a press pending now came after the first one: a second Ctrl-C, kept for _wait
            self._handle()        # always raises Interrupted
        finally:
            signal.signal(signal.SIGINT, self._previous)
        return False

    # -- what a Ctrl-C does ----------------------------------------------------------------------
    def _handle(self) -> None:
        global _last
        try:
            self._react()
        except Interrupted as exc:
            _last = exc
            raise exc.with_traceback(None) from None

    def _react(self) -> None:
        name = self.name
        self._seen = self._event_ids()   # what the deploy's wait may have printed already
        stack = self._shielded("DescribeStacks", self._describe)
        status = stack["StackStatus"] if stack else None
        if stack and not self.stack_id:
            self.stack_id = stack.get("StackId")
        if status is None or status == "DELETE_COMPLETE":
            raise Interrupted(f"interrupted (Ctrl-C): stack {name} does not exist; nothing to cancel",
                              stack=name, outcome="unchanged", status=status)
        if status in ("CREATE_IN_PROGRESS", "REVIEW_IN_PROGRESS"):
            self.say("")
            self.say(f"Received Ctrl-C: deleting stack {name}, which this deploy was creating.\n"
                     f"Pressing Ctrl-C again will exit immediately but the deletion of stack {name} will continue.")
            self._shielded("DeleteStack", lambda: self.cfn.delete_stack(StackName=self.stack_id or name))
            final = self._wait(f"the deletion of stack {name}")
            if final in (None, "DELETE_COMPLETE"):
                raise Interrupted(f"interrupted (Ctrl-C): the half-created stack {name} was deleted",
                                  stack=name, outcome="deleted", status="DELETE_COMPLETE")
            raise Interrupted(f"interrupted (Ctrl-C): the deletion of the half-created stack {name} ended {final}; "
                              f"delete it with `aws cloudformation delete-stack --stack-name {name}`",
                              stack=name, outcome="failed", status=final)
        if status == "UPDATE_IN_PROGRESS":
            self.say("")
            self.say(f"Received Ctrl-C: cancelling the update of stack {name} (CancelUpdateStack) and waiting "
                     f"for its rollback.\nPressing Ctrl-C again will exit immediately but stack {name} rollback "
                     "will continue.")
            self._shielded("CancelUpdateStack", self._cancel_update)
            final = self._wait(f"the rollback of stack {name}")
            if final == "UPDATE_ROLLBACK_COMPLETE":
                raise Interrupted(f"interrupted (Ctrl-C): the update of stack {name} was cancelled and rolled back "
                                  "to the previous configuration (UPDATE_ROLLBACK_COMPLETE)",
                                  stack=name, outcome="rolled-back", status=final)
            if final in ("UPDATE_COMPLETE", "CREATE_COMPLETE"):
                raise Interrupted(f"interrupted (Ctrl-C): the update of stack {name} had already completed "
                                  f"({final}) and could not be cancelled", stack=name, outcome="finished", status=final)
            hint = ""
            if final == "UPDATE_ROLLBACK_FAILED":
                hint = (f"; fix the resource named in its events, then run `aws cloudformation "
                        f"continue-update-rollback --stack-name {name}`")
            raise Interrupted(f"interrupted (Ctrl-C): the update of stack {name} was cancelled but ended {final}{hint}",
                              stack=name, outcome="failed", status=final)
        if status.endswith("_IN_PROGRESS"):
            self.say("")
            self.say(f"Received Ctrl-C: stack {name} is {status}, which cannot be cancelled: waiting for it to "
                     "finish.\nPressing Ctrl-C again will exit immediately; CloudFormation will carry on.")
            final = self._wait(f"stack {name} to finish")
            raise Interrupted(f"interrupted (Ctrl-C): stack {name} was {status} (not cancellable) and ended {final}",
                              stack=name, outcome="finished", status=final)
        raise Interrupted(f"interrupted (Ctrl-C): stack {name} is {status}; nothing was in progress",
                          stack=name, outcome="unchanged", status=status)

    def _cancel_update(self) -> None:
        from botocore.exceptions import ClientError
        try:
            self.cfn.cancel_update_stack(StackName=self.stack_id or self.name)
        except ClientError as exc:
            # As Copilot: the update finished (or the stack went) between the describe and the cancel.
            text = str(exc)
            if "cannot be called from current stack status" not in text and "does not exist" not in text:
                raise

    def _shielded(self, what: str, call):
        """An API call a second Ctrl-C must not cut short (the describe, then the cancel or delete
        request): a press meanwhile is kept and stops the wait that follows, at once."""
        from botocore.exceptions import BotoCoreError, ClientError
        self._armed = False
        try:
            return call()
        except (ClientError, BotoCoreError) as exc:
            raise Interrupted(f"interrupted (Ctrl-C): {what} {self.name} failed: {exc}; the stack operation "
                              "continues in CloudFormation", stack=self.name, outcome="failed") from None

    def _abandon(self, what: str) -> None:
        raise Interrupted(f"interrupted twice (Ctrl-C): stopped waiting for {what}; CloudFormation carries on "
                          f"(see `aws cloudformation describe-stacks --stack-name {self.name}`)",
                          stack=self.name, outcome="abandoned")

    # -- waiting ---------------------------------------------------------------------------------
    def _describe(self) -> dict | None:
        from botocore.exceptions import ClientError
        try:
            return self.cfn.describe_stacks(StackName=self.stack_id or self.name)["Stacks"][0]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise

    def _wait(self, what: str) -> str | None:
        """Poll until the stack is no longer *_IN_PROGRESS (None: gone), printing its new events.
        Armed: a second Ctrl-C raises out of any sleep or API call at once."""
        from botocore.exceptions import BotoCoreError, ClientError
        deadline = time.monotonic() + self.timeout
        interval = 0.05
        try:
            self._armed = True
            if self._pending:
                self._armed = False
                self._abandon(what)
            while True:
                self._print_events()
                stack = self._describe()
                status = stack["StackStatus"] if stack else None
                if status is None or not status.endswith("_IN_PROGRESS"):
                    self._print_events()    # the events that came with the final state
                    return status
                if time.monotonic() > deadline:
                    raise Interrupted(f"interrupted (Ctrl-C): timed out after {self.timeout:.0f}s waiting for "
                                      f"{what} (still {status})",
                                      stack=self.name, outcome="failed", status=status)
                time.sleep(interval)
                interval = min(interval * 2, self.max_interval)
        except _CtrlC:
            self._abandon(what)
        except (ClientError, BotoCoreError) as exc:
            raise Interrupted(f"interrupted (Ctrl-C): waiting for {what} failed: {exc}",
                              stack=self.name, outcome="failed") from None
        finally:
            self._armed = False

    def _stack_events(self) -> list[dict]:
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            return self.cfn.describe_stack_events(StackName=self.stack_id or self.name).get("StackEvents", [])
        except (ClientError, BotoCoreError, AttributeError):
            return []

    def _event_ids(self) -> set[str]:
        self._armed = False
        return {e.get("EventId") for e in self._stack_events()}

    def _print_events(self) -> None:
        """The stack's events since the Ctrl-C, oldest first, each once (as stacks._stream prints them)."""
        for e in reversed(self._stack_events()):
            if e.get("EventId") in self._seen:
                continue
            self._seen.add(e.get("EventId"))
            reason = f" - {e['ResourceStatusReason']}" if e.get("ResourceStatusReason") else ""
            self.say(f"  {e.get('LogicalResourceId', self.name)} {e.get('ResourceStatus')}{reason}")
