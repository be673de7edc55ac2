"""Output under `-n N -P thread`: lines stay whole, and sys.stdout never changes while tasks run
(tasks.WholeLines, tasks._stage_task's "capture": CPython 3.11's print() crashed when another thread
swapped sys.stdout under it)."""
from __future__ import annotations

import io
import threading

from copilot_doit.tasks import WholeLines


def test_lines_printed_by_many_threads_stay_whole():
    real = io.StringIO()
    out = WholeLines(real, threading.RLock())

    def talk(n):
        for i in range(300):
            print(f"thread {n} line {i}", "with", "words", file=out)

    threads = [threading.Thread(target=talk, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = real.getvalue().splitlines()
    assert len(lines) == 6 * 300
    assert all(line.startswith("thread ") and line.endswith(" with words") for line in lines)


def test_a_partial_line_waits_for_its_newline_or_a_flush():
    real = io.StringIO()
    out = WholeLines(real, threading.RLock())
    out.write("hashing: 10 entries")
    assert real.getvalue() == ""
    out.flush()
    assert real.getvalue() == "hashing: 10 entries"
    out.write("a")
    other = threading.Thread(target=lambda: out.write("other\n"))
    other.start()
    other.join()
    out.write("b\n")
    out.close_lines()
    assert sorted(real.getvalue()[len("hashing: 10 entries"):].splitlines()) == ["ab", "other"]


def test_a_task_s_lines_go_out_as_one_block_when_it_ends():
    """-j N: what a task's worker thread prints (stdout and stderr alike) is held while the task runs and
    written together when it ends; lines of threads running no task go out at once."""
    from copilot_doit.tasks import TaskBlocks
    lock = threading.RLock()
    blocks = TaskBlocks(lock)
    real_out, real_err = io.StringIO(), io.StringIO()
    out, err = WholeLines(real_out, lock, blocks), WholeLines(real_err, lock, blocks)
    started = threading.Barrier(4, timeout=10)

    def task(n):
        blocks.hold()
        started.wait()                       # all three tasks print at the same time
        for i in range(50):
            print(f"task {n} line {i}", file=out)
            if i == 25:
                print(f"task {n} warning", file=err, flush=True)
        blocks.release()

    threads = [threading.Thread(target=task, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    started.wait()
    print("not in a task", file=out)        # goes out at once, whatever the tasks do
    for t in threads:
        t.join()
    lines = real_out.getvalue().splitlines()
    assert lines.count("not in a task") == 1 and len(lines) == 3 * 50 + 1
    tasks_lines = [line for line in lines if line != "not in a task"]
    for n in range(3):
        first = tasks_lines.index(f"task {n} line 0")
        assert tasks_lines[first:first + 50] == [f"task {n} line {i}" for i in range(50)]
    assert sorted(real_err.getvalue().splitlines()) == [f"task {n} warning" for n in range(3)]


def test_lines_held_by_a_run_stopped_mid_task_still_go_out():
    from copilot_doit.tasks import TaskBlocks
    lock = threading.RLock()
    blocks = TaskBlocks(lock)
    real = io.StringIO()
    out = WholeLines(real, lock, blocks)
    blocks.hold()
    print("deploying stack x", file=out)
    out.flush()
    assert real.getvalue() == ""
    blocks.release_all()
    assert real.getvalue() == "deploying stack x\n"
