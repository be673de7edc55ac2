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
