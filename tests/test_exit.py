"""The package's last exit handler freezes what is left before CPython's teardown (which otherwise runs the
cyclic collector over every object a run made: ~0.1 s after boto3's clients). A normal exit otherwise:
every other handler runs, output is flushed, the exit status is kept."""
from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent("""
    import atexit, gc, sys
    # registered before the package's import: runs after its handler (handlers run last-in, first-out)
    atexit.register(lambda: print("frozen at the end:", gc.get_freeze_count() > 0, flush=True))
    import copilot_doit
    atexit.register(lambda: print("a later handler still runs"))
    junk = [[i] for i in range(50000)]
    sys.stdout.write("unflushed output")
    sys.exit(3)
""")


def test_exit_freezes_before_teardown_and_is_otherwise_a_normal_exit():
    r = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert "unflushed output" in r.stdout
    assert "a later handler still runs" in r.stdout
    assert "frozen at the end: True" in r.stdout, r.stdout
