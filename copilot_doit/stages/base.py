"""What every stage module shares: the `Status` value and the task ids."""
from __future__ import annotations

from typing import Callable

from ..errors import StageFailed
from ..hashing import Key
from ..values import field, value


@value
class Status:
    """Whether a stage must run and why, with its key and (when up to date) its result.

    A stage whose upstream must run cannot be judged yet: it has `run=True`, the reason "after <task>"
    and no key.
    """
    run: bool
    reason: str
    key: Key | None = None
    result: dict | None = None
    inputs: dict | None = None
    # A deferred check of an up-to-date result's claim, run by a downstream stage before it acts on it
    # (e.g. re-rendering a cached template before it is deployed). Raises StageFailed when it fails.
    check: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    @property
    def word(self) -> str:
        return "run" if self.run else "skip"


def stage_id(stage: str, name: str | None, env: str) -> str:
    return f"env:{env}" if stage == "env" else f"{stage}:{name}@{env}"


def must_run(st: Status, task: str) -> Status | None:
    """The status if the stage must run now, None if it is up to date. A stage whose upstream has not
    produced its result yet cannot run: that is doit being asked for it out of order."""
    if not st.run:
        return None
    if st.key is None:
        raise StageFailed(f"{task} cannot run before its upstream stages: {st.reason}")
    return st
