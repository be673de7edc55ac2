"""The no-op answered without doit: `copilot-doit deploy` first asks every selected stage whether it must
run; when none must, it prints the lines doit's run would print (`-- <task>  (<reason>)`, in doit's order)
and stops there. doit's import, its plugin scans and its task creation cost ~0.15-0.2 s of a 0.5 s no-op on
this machine (issue #12); they buy nothing when nothing runs.

Exactly as strict as the doit run: the same Session, the same stage `status` functions (the same keys, the
same live checks, computed concurrently by `stages.prefetch`). Anything else — a stage that must run, a bad
input, an API failure — answers "not a no-op", and the caller runs doit, which checks everything again
under the cache lock and reports as it always did.
"""
from __future__ import annotations

import sys

from .session import Session
from .stages import ENV, STAGES, WORKLOAD_STAGES, prefetch, stage_id


def task_order(names: list[str], envs: list[str]) -> list[tuple[str, str | None, str]]:
    """(stage, workload, env) in the order doit reports a `deploy` run: the environments, then each
    workload stage for every workload × environment (tasks.py's groups)."""
    order = [(ENV.name, None, env) for env in envs]
    order += [(st.name, name, env) for st in WORKLOAD_STAGES for name in names for env in envs]
    return order


def up_to_date_lines(s: Session) -> list[str] | None:
    """doit's `--` line of every selected stage when all are up to date, else None: at the first stage that
    must run, while the other checks go on in the background (the doit run that follows takes them over)."""
    prefetch(s, background=True)
    lines = []
    for stage, name, env in task_order(s.names, s.envs):
        st = STAGES[stage].status(s, name, env)
        if st.run:
            return None
        lines.append(f"-- {stage_id(stage, name, env)}  ({st.reason})")
    return lines


def answer(s: Session, quiet: bool = False) -> bool:
    """True when the deploy was a no-op and has been reported; False when doit must run it (the session,
    its memos filled, can then be handed to the doit run: tasks.session).

    The cache lock is not taken (a take writes two files, and would wait behind a running deploy): like `plan`,
    this only reads and answers "up to date" only when the records match the inputs and the world matches the
    records. A run holding the lock mid-deploy shows as a stage to run (a stack in progress, a record not yet
    written), and the doit run that follows waits for the lock as it always did."""
    from .yamlsrc import flush_memo
    try:
        lines = up_to_date_lines(s)
    except Exception:  # noqa: BLE001 — a bad input, a failed check or a bug: the doit run reports it in its words
        return False
    if lines is None:
        return False
    if not quiet:
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
    s.settle()
    s.flush()
    flush_memo()   # as the doit reporter does after a run without errors
    return True
