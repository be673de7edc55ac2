"""One writing run at a time per cache root.

The cache root is what two runs share: records, the stat cache, doit's dependency file and the local
target's services (`<cache>/local/`). Two deploys writing it at once race on the registry, on stack
creation and on doit's state, so a run that writes takes this lock first; read-only commands (`plan`,
`doit list`/`info`, `cache usage`) do not.

The lock is an OS-level file lock (flock(2) on `<cache>/.lock`), so the kernel frees it when its holder dies,
even by SIGKILL: a stale lock is taken over simply by acquiring it. Next to it, `.lock.holder.json` says
who holds it (pid, command, since, host) so a second run can say whom it waits for. That file is only a
label: it can outlive a killed holder, so it is believed only while the lock is actually held and its pid
is alive.

    with CacheLock(cache_root, "doit deploy name=frontend").acquire(wait=not no_wait):
        ...
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from .errors import UserError
from .values import value

LOCK_NAME = ".lock"
HOLDER_NAME = ".lock.holder.json"
# How many times the lock has been taken: a run that checked without the lock (noop.py) and then took it
# knows whether another run held it in between (its own take adds exactly one).
GENERATION_NAME = ".lock.generation"


def generation(root: str | os.PathLike) -> int:
    """The lock's generation at `root` (0 before the first take); a plain read, no lock library."""
    try:
        return int((Path(root) / GENERATION_NAME).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0

# Lock files this process holds: path -> [FileLock, depth, generation]. A second CacheLock of the same root in the
# same process (the CLI around doit, then a task) must not wait for itself; the last release unlocks.
_held: dict[str, list] = {}


@value(frozen=True)
class Holder:
    """Who holds (or last held) the lock, as written in the holder file."""

    pid: int
    command: str
    since: str          # ISO 8601, UTC
    host: str

    def alive(self) -> bool:
        """False when this host has no process of that pid (another host's pid cannot be checked)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # someone else's process: it exists
        return True

    def describe(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"pid {self.pid}{where} ({self.command}) since {_clock(self.since)}"


def _clock(iso: str) -> str:
    """The holder's start as the reader's local clock time; the date too when it is not today."""
    try:
        t = datetime.fromisoformat(iso).astimezone()
    except (TypeError, ValueError):
        return str(iso)
    today = datetime.now().astimezone().date()
    return t.strftime("%H:%M:%S" if t.date() == today else "%Y-%m-%d %H:%M:%S")


def read_holder(root: str | os.PathLike) -> Holder | None:
    """The holder file's content, or None if missing or unreadable. Not proof that the lock is held."""
    try:
        data = json.loads((Path(root) / HOLDER_NAME).read_bytes())
        return Holder(int(data["pid"]), str(data["command"]), str(data["since"]), str(data.get("host", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def describe_holder(root: str | os.PathLike) -> str:
    """Who holds the lock, for a run that found it taken. A holder file naming a dead process is stale
    (the real holder took the lock a moment ago and has not written its own yet): it is not named."""
    holder = read_holder(root)
    if holder is None:
        return "another process (not yet recorded)"
    if not holder.alive():
        return f"another process (the last recorded holder, pid {holder.pid}, has exited)"
    return holder.describe()


def default_command() -> str:
    """This process's command line as a user typed it: `doit deploy name=frontend`, `copilot-doit deploy`."""
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if prog == "__main__.py":
        prog = Path(sys.argv[0]).parent.name       # python -m doit
    text = " ".join([prog, *sys.argv[1:]])
    return text if len(text) <= 200 else text[:199] + "…"


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp + rename, without fsync: these files are advisory, and a crash frees the lock anyway. The temp
    name is the cache's `.tmp-` pattern, so `cache verify` sweeps leftovers."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix or ".txt")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FileLock:
    """An exclusive flock(2) on one file, held by this process (not a thread: doit may run tasks in threads,
    and the lock belongs to the run). Its descriptor is not inherited by programs this process starts (the
    local target's services outlive the run), and a forked child that exits without `release()` leaves the
    parent's lock held: flock belongs to the open file, which the parent still has open. Not the `filelock`
    package: its import was ~12 ms of every deploy that runs a stage (issue #12's P3), for this much."""

    POLL_SECONDS = 0.05

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take it if nobody holds it; False at once otherwise."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)   # O_CLOEXEC by default (PEP 446)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Take it, polling, for at most `timeout` seconds (None: as long as it takes); False when it stayed
        held. Polling, not a blocking flock: a timeout and Ctrl-C work alike, and the wait is for a deploy."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_acquire():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(self.POLL_SECONDS if deadline is None else
                       max(0.0, min(self.POLL_SECONDS, deadline - time.monotonic())))
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class CacheLock:
    """The lock of one cache root. `acquire()` returns self, so `with CacheLock(...).acquire():` works;
    `with CacheLock(...):` acquires waiting, printing one line while it waits."""

    def __init__(self, root: str | os.PathLike, command: str | None = None):
        self.root = Path(root)
        self.command = command or default_command()
        self._key = ""
        self._taken = 0       # acquisitions of this object not yet released
        self.generation = 0   # the lock's generation this process's take made (generation())

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    def acquire(self, wait: bool = True, timeout: float | None = None, on_wait=print) -> "CacheLock":
        """Take the lock. Held by another run: with `wait`, call `on_wait` once with a line naming the
        holder and block (at most `timeout` seconds when given); without, raise a `UserError` at once."""
        from .cache import ensure_root
        self._key = str(ensure_root(self.root).resolve() / LOCK_NAME)
        if self._key in _held:
            _held[self._key][1] += 1
            self._taken += 1
            self.generation = _held[self._key][2]
            return self
        file_lock = FileLock(self._key)
        if not file_lock.try_acquire():
            holder = describe_holder(self.root)
            if not wait:
                raise UserError(f"the cache {self.root} is in use by {holder}; not waiting (--no-wait)") from None
            on_wait(f"waiting for the cache lock held by {holder} …")
            if not file_lock.wait(timeout):
                raise UserError(f"gave up after {timeout:g} s waiting for the cache lock held by "
                                f"{describe_holder(self.root)}") from None
        _held[self._key] = [file_lock, 1, 0]
        self._taken += 1
        try:
            self._write_holder()
        except OSError as exc:  # the label is a courtesy; the lock itself is held
            print(f"warning: could not record the cache lock's holder in {self.root / HOLDER_NAME}: {exc}",
                  file=sys.stderr)
        self.generation = generation(self.root) + 1
        try:
            _write_atomically(self.root / GENERATION_NAME, str(self.generation).encode())
        except OSError:
            self.generation = -1   # unknown: a caller comparing generations must assume another run came
        _held[self._key][2] = self.generation
        return self

    @property
    def held(self) -> bool:
        return self._taken > 0

    def release(self) -> None:
        if not self._taken:
            return
        self._taken -= 1
        entry = _held[self._key]
        entry[1] -= 1
        if entry[1]:
            return
        del _held[self._key]
        # The label goes first: once the lock is free, nobody must read it as ours.
        holder = read_holder(self.root)
        if holder and holder.pid == os.getpid():
            (self.root / HOLDER_NAME).unlink(missing_ok=True)
        entry[0].release()

    def _write_holder(self) -> None:
        data = json.dumps({"pid": os.getpid(), "command": self.command, "host": socket.gethostname(),
                           "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode()
        _write_atomically(self.root / HOLDER_NAME, data)

    def __enter__(self) -> "CacheLock":
        if not self._taken:   # `with CacheLock(...).acquire(...)` has taken it already
            self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
