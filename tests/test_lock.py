"""The cache lock: one writing run per cache root, the holder named, a dead holder's lock taken over (issue 10 #5)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone

import pytest

from copilot_doit.errors import UserError
from copilot_doit.lock import HOLDER_NAME, CacheLock, describe_holder, read_holder

# A run in its own process: takes the lock (waiting, printing the wait line), says so, and holds it
# until a line arrives on stdin (or it is killed).
HOLDER = textwrap.dedent("""
    import sys, time
    from copilot_doit.lock import CacheLock
    lock = CacheLock(sys.argv[1], sys.argv[2]).acquire(on_wait=lambda m: print(m, flush=True))
    print("held", time.time(), flush=True)
    sys.stdin.readline()
    print("releasing", time.time(), flush=True)
    lock.release()
""")


def start_holder(root, command="doit deploy name=frontend"):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), command], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    return p


def wait_for_line(p, prefix, timeout=20):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(prefix):
            return line, seen
    raise AssertionError(f"no line starting with {prefix!r}; got {seen}")


def finish(p):
    if p.poll() is None:
        p.stdin.write("\n")
        p.stdin.flush()
    p.wait(timeout=20)


def test_holder_file_names_pid_command_and_since(tmp_path):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    with CacheLock(tmp_path / "cache", "doit deploy name=api").acquire() as lock:
        assert lock.held
        h = read_holder(tmp_path / "cache")
        assert h.pid == os.getpid() and h.command == "doit deploy name=api"
        since = datetime.fromisoformat(h.since)
        assert before <= since <= datetime.now(timezone.utc) + timedelta(seconds=1)
        raw = json.loads((tmp_path / "cache" / HOLDER_NAME).read_text())
        assert set(raw) == {"pid", "command", "since", "host"}
    assert not (tmp_path / "cache" / HOLDER_NAME).exists()      # released: no label left behind
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp-")] == []


def test_cache_root_is_created_with_its_gitignore(tmp_path):
    with CacheLock(tmp_path / "new-cache", "x"):
        assert (tmp_path / "new-cache" / ".gitignore").read_text().endswith("*\n")


def test_no_wait_fails_at_once_naming_the_holder(tmp_path):
    root = tmp_path / "cache"
    a = start_holder(root, "doit deploy name=frontend")
    try:
        wait_for_line(a, "held")
        t0 = time.monotonic()
        with pytest.raises(UserError) as err:
            CacheLock(root, "doit deploy name=api").acquire(wait=False)
        assert time.monotonic() - t0 < 2
        msg = str(err.value)
        assert f"pid {a.pid} (doit deploy name=frontend) since " in msg and "--no-wait" in msg, msg
        assert "\n" not in msg
    finally:
        finish(a)


def test_second_run_waits_with_one_line_then_proceeds_after_release(tmp_path):
    root = tmp_path / "cache"
    a = start_holder(root, "doit deploy name=frontend")
    b = None
    try:
        wait_for_line(a, "held")
        b = start_holder(root, "doit deploy name=api")
        waiting, _ = wait_for_line(b, "waiting")
        assert waiting.startswith(f"waiting for the cache lock held by pid {a.pid} (doit deploy name=frontend) since ")
        time.sleep(0.5)
        assert b.poll() is None                                   # still waiting while A holds it
        finish(a)
        released_at = None
        for line in a.stdout.read().splitlines():
            if line.startswith("releasing"):
                released_at = float(line.split()[1])
        held, seen = wait_for_line(b, "held")
        assert float(held.split()[1]) >= released_at
        assert [l for l in seen if l.startswith("waiting")] == []   # the wait line was printed once
        assert read_holder(root).pid == b.pid
    finally:
        finish(a)
        if b:
            finish(b)


def test_holder_killed_by_sigkill_leaves_a_lock_taken_at_once(tmp_path):
    root = tmp_path / "cache"
    a = start_holder(root, "doit deploy name=frontend")
    wait_for_line(a, "held")
    os.kill(a.pid, signal.SIGKILL)
    a.wait(timeout=20)
    stale = read_holder(root)
    assert stale.pid == a.pid and not stale.alive()               # the label outlived its holder
    t0 = time.monotonic()
    with CacheLock(root, "doit deploy name=api").acquire(wait=False):
        assert time.monotonic() - t0 < 2
        assert read_holder(root).pid == os.getpid()


def test_a_stale_label_is_not_named_as_a_live_holder(tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket
    (root / HOLDER_NAME).write_text(json.dumps({"pid": dead.pid, "command": "doit deploy", "host": socket.gethostname(),
                                                "since": "2026-01-01T00:00:00+00:00"}))
    text = describe_holder(root)
    assert "has exited" in text and "(doit deploy)" not in text, text
    (root / HOLDER_NAME).unlink()
    assert describe_holder(root) == "another process (not yet recorded)"


def test_wait_with_timeout_gives_up_with_a_sentence(tmp_path):
    root = tmp_path / "cache"
    a = start_holder(root)
    try:
        wait_for_line(a, "held")
        lines = []
        with pytest.raises(UserError) as err:
            CacheLock(root, "x").acquire(timeout=0.3, on_wait=lines.append)
        assert len(lines) == 1 and f"pid {a.pid}" in lines[0]
        assert str(err.value).startswith("gave up after 0.3 s waiting for the cache lock held by pid")
    finally:
        finish(a)


def test_nested_lock_in_one_process_does_not_wait_for_itself(tmp_path):
    root = tmp_path / "cache"
    outer = CacheLock(root, "copilot-doit deploy").acquire(wait=False)
    inner = CacheLock(root, "doit deploy").acquire(wait=False)    # would deadlock without the registry
    outer.release()                                                # out of order: still held by inner
    probe = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from copilot_doit.lock import CacheLock
        try:
            CacheLock({str(root)!r}, "probe").acquire(wait=False)
            print("acquired")
        except Exception as e:
            print("refused")
    """)], capture_output=True, text=True, timeout=30)
    assert probe.stdout.strip() == "refused"
    inner.release()
    with CacheLock(root, "again").acquire(wait=False):
        pass


def test_a_forked_child_exiting_does_not_free_the_parents_lock(tmp_path):
    """doit -P process forks workers that inherit the descriptor; their exit must not unlock the run."""
    root = tmp_path / "cache"
    with CacheLock(root, "doit -P process").acquire():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        probe = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from copilot_doit.lock import CacheLock
            from copilot_doit.errors import UserError
            try:
                CacheLock({str(root)!r}, "probe").acquire(wait=False)
            except UserError:
                sys.exit(3)
        """)], timeout=30)
        assert probe.returncode == 3


def test_lock_module_is_cheap_to_import():
    out = subprocess.run([sys.executable, "-c", "import sys, copilot_doit.lock; "
                          "print(sorted(m for m in ('filelock', 'boto3', 'botocore', 'copilot_doit.cache') "
                          "if m in sys.modules))"], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]", out


def test_taking_the_lock_imports_no_lock_library(tmp_path):
    """A deploy that runs a stage takes the lock: its cost is two small file writes, not an import (the
    `filelock` package's was ~12 ms of each such run)."""
    out = subprocess.run([sys.executable, "-c", "import sys; from copilot_doit.lock import CacheLock; "
                          f"CacheLock({str(tmp_path)!r}).acquire().release(); "
                          "print(sorted(m for m in ('filelock', 'boto3', 'docker') if m in sys.modules))"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]", out


def test_a_daemon_started_by_the_holder_does_not_keep_the_lock(tmp_path):
    """The local target's services (moto, the registry) outlive the run that starts them: they must not
    inherit the lock, or every later run would wait for them forever. Even with close_fds=False."""
    root = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import subprocess, sys
        from copilot_doit.lock import CacheLock
        CacheLock({str(root)!r}, "copilot-doit local start").acquire()
        daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], close_fds=False,
                                  start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        print(daemon.pid, flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    daemon = int(out.stdout.strip())
    try:
        os.kill(daemon, 0)                                          # the daemon is still running
        with CacheLock(root, "doit deploy").acquire(wait=False):
            pass
    finally:
        os.kill(daemon, signal.SIGKILL)


def test_each_take_adds_one_to_the_generation_and_a_nested_take_shares_it(tmp_path):
    from copilot_doit.lock import generation
    assert generation(tmp_path) == 0
    first = CacheLock(tmp_path).acquire()
    nested = CacheLock(tmp_path).acquire()          # the same process: no wait, the same take
    assert first.generation == nested.generation == generation(tmp_path) == 1
    nested.release()
    first.release()
    with CacheLock(tmp_path) as again:
        assert again.generation == generation(tmp_path) == 2
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_handed_over_session_is_checked_again_when_another_run_came_between():
    from copilot_doit.tasks import another_run_came
    assert not another_run_came(4, 5)            # our own take only
    assert another_run_came(4, 6)                # somebody took it between
    assert another_run_came(None, 1)             # never read: assume the worst
    assert another_run_came(4, -1)               # the generation could not be written
