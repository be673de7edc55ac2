"""Content hashing: stage keys, file digests, tree digests, and the persistent stat cache.

Nothing here talks to Docker or AWS; the docker SDK's `.dockerignore` matcher is loaded on its own
(see `_docker_build_utils`) so that hashing a context does not pay for importing the whole SDK.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import stat as statmod
import sys
import threading
import time
import types
from dataclasses import dataclass

import xxhash

# Bump when the framing below changes: every key of every stage changes with it.
HASH_SCHEMA = "copilot-doit/hash/1"
CHUNK = 1 << 20


def canonical_json(value) -> str:
    """One text per value: sorted keys, no whitespace, so dict order and YAML layout never matter."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest_bytes(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def digest_value(value) -> str:
    return digest_bytes(canonical_json(value).encode())


@dataclass(frozen=True)
class Key:
    """A versioned content key of one stage: `salt` names the stage's key recipe, `hex` the inputs."""

    salt: str
    hex: str

    @classmethod
    def of(cls, salt: str, inputs) -> "Key":
        # The salt is framed in: a recipe change (new salt) can never collide with old entries.
        return cls(salt, digest_value([HASH_SCHEMA, salt, inputs]))

    @property
    def short(self) -> str:
        return self.hex[:12]

    def __str__(self) -> str:
        return self.hex


def digest_file(path: str | os.PathLike) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class StatCache:
    """Persistent map (path, dev, inode, size, mtime_ns, ctime_ns) -> file digest, in SQLite.

    A no-op costs one `stat` per file. A touched-but-unchanged file is re-hashed once and its new stat
    recorded (doit #431 re-hashes on every later run). Racy-clean rule, as git's index: an entry whose
    mtime is not clearly older than the moment it was hashed may hide a same-size edit made in the same
    clock tick, so it is re-hashed next time. Filesystem clocks are coarse (a jiffy or more), hence the
    window rather than a strict comparison.
    """

    RACY_WINDOW_NS = 1_000_000_000

    def __init__(self, db_path: str | os.PathLike | None):
        self.db_path = str(db_path) if db_path else None
        self._rows: dict[str, tuple] | None = None
        self._dirty: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self.files_hashed = 0  # content reads since construction: what the warm-cache tests measure
        self.bytes_hashed = 0

    def _connect(self):
        con = sqlite3.connect(self.db_path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER,"
                    " size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT, recorded_ns INTEGER)")
        return con

    def _load(self) -> dict[str, tuple]:
        if self._rows is None:
            rows: dict[str, tuple] = {}
            if self.db_path and os.path.exists(self.db_path):
                try:
                    con = self._connect()
                    try:
                        for row in con.execute("SELECT path, dev, ino, size, mtime_ns, ctime_ns, digest,"
                                               " recorded_ns FROM files"):
                            rows[row[0]] = row[1:]
                    finally:
                        con.close()
                except sqlite3.DatabaseError as exc:  # a corrupt state DB only costs re-hashing
                    print(f"warning: stat cache {self.db_path} unreadable ({exc}); re-hashing", file=sys.stderr)
                    rows = {}
            self._rows = rows
        return self._rows

    def file_digest(self, path: str, st: os.stat_result | None = None) -> str:
        st = st or os.stat(path)
        rows = self._load()
        sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        row = rows.get(path)
        if row is not None and row[:5] == sig and st.st_mtime_ns + self.RACY_WINDOW_NS < row[6]:
            return row[5]
        recorded = time.time_ns()
        digest = digest_file(path)
        with self._lock:
            self.files_hashed += 1
            self.bytes_hashed += st.st_size
            entry = sig + (digest, recorded)
            rows[path] = entry
            self._dirty[path] = entry
        return digest

    def flush(self) -> None:
        """Write new entries in one transaction. Safe to call from several processes (SQLite locking)."""
        if not self._dirty or not self.db_path:
            return
        os.makedirs(os.path.dirname(self.db_path) or ".", exist_ok=True)
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        con = self._connect()
        try:
            with con:
                con.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?)",
                                [(p,) + v for p, v in dirty.items()])
        finally:
            con.close()


def entry_for(abs_path: str, rel: str, stat_cache: StatCache) -> tuple[str, str, str] | None:
    """(relative posix path, kind, digest) of one tree entry; kind carries the executable bit."""
    st = os.lstat(abs_path)
    mode = st.st_mode
    if statmod.S_ISLNK(mode):
        return (rel, "l", digest_bytes(os.readlink(abs_path).encode()))
    if statmod.S_ISDIR(mode):
        return (rel, "d", "")
    if statmod.S_ISREG(mode):
        kind = "x" if mode & 0o111 else "f"
        return (rel, kind, stat_cache.file_digest(abs_path, st))
    return None  # sockets, fifos: docker does not send them either


def tree_digest(entries: list[tuple[str, str, str]]) -> str:
    """Digest of sorted (relative path, kind, digest) rows: the checkout's location never enters it."""
    return digest_value(sorted(entries))


def walk_tree(root: str, stat_cache: StatCache) -> list[tuple[str, str, str]]:
    """All entries below root (no ignore rules), e.g. an addons folder."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + dirnames:
            abs_path = os.path.join(dirpath, name)
            rel = os.path.relpath(abs_path, root).replace(os.sep, "/")
            e = entry_for(abs_path, rel, stat_cache)
            if e:
                out.append(e)
    return out


# --- .dockerignore, with the docker SDK's own matcher -------------------------------------------------

_build_utils = None


def _docker_build_utils():
    """`docker.utils.build` without executing `docker/__init__` (which imports requests, ~190 ms).

    The module is loaded from the installed SDK under a private package name, so the pattern semantics
    are exactly the SDK's; if the SDK is already imported we use it directly.
    """
    global _build_utils
    if _build_utils is not None:
        return _build_utils
    if "docker.utils.build" in sys.modules:
        _build_utils = sys.modules["docker.utils.build"]
        return _build_utils
    spec = importlib.util.find_spec("docker")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the docker SDK (package 'docker') is not installed")
    root = list(spec.submodule_search_locations)[0]
    pkg_name = "_copilot_doit_dockersdk"
    pkg = types.ModuleType(pkg_name)
    pkg.__path__ = [root]
    sys.modules[pkg_name] = pkg
    utils = types.ModuleType(pkg_name + ".utils")
    utils.__path__ = [os.path.join(root, "utils")]
    sys.modules[pkg_name + ".utils"] = utils

    def load(name, path):
        s = importlib.util.spec_from_file_location(f"{pkg_name}.{name}", path)
        mod = importlib.util.module_from_spec(s)
        sys.modules[s.name] = mod
        s.loader.exec_module(mod)
        return mod

    load("version", os.path.join(root, "version.py"))
    load("constants", os.path.join(root, "constants.py"))
    load("utils.fnmatch", os.path.join(root, "utils", "fnmatch.py"))
    _build_utils = load("utils.build", os.path.join(root, "utils", "build.py"))
    return _build_utils


def read_dockerignore(context: str) -> list[str]:
    """Patterns as the docker SDK's `build()` reads them (same filtering of blanks and comments)."""
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.strip() for line in f.read().splitlines() if line.strip() and line.strip()[0] != "#"]


def context_entries(context: str, dockerfile_in_context: str | None, stat_cache: StatCache):
    """Entries docker would send for this context: `.dockerignore` applied by the SDK's matcher.

    `dockerfile_in_context` is the Dockerfile's path relative to the context when it lies inside it
    (the SDK always re-includes it); the Dockerfile's bytes are a separate key input in any case.
    """
    patterns = read_dockerignore(context)
    if patterns:
        paths = _docker_build_utils().exclude_paths(context, patterns, dockerfile=dockerfile_in_context)
    else:
        paths = None
    out = []
    if paths is None:
        return walk_tree(context, stat_cache)
    for rel in sorted(paths):
        e = entry_for(os.path.join(context, rel), rel.replace(os.sep, "/"), stat_cache)
        if e:
            out.append(e)
    return out


def changed_paths(old: list, new: list) -> list[str]:
    """Paths whose entry differs between two entry lists (added, removed or modified), sorted."""
    a = {e[0]: tuple(e[1:]) for e in old}
    b = {e[0]: tuple(e[1:]) for e in new}
    return sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))

