"""Hashing, the stat cache, and the cache's atomicity and verification (pure, no services)."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time

import pytest

from copilot_doit.cache import Cache
from copilot_doit.hashing import Key, StatCache, context_entries, tree_digest


def make_context(root):
    (root / "app").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (root / "app" / "a.txt").write_text("a")
    (root / "app" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "app" / "run.sh", 0o755)
    (root / "notes.md").write_text("ignored")
    (root / ".dockerignore").write_text("# comment\n*.md\n")
    os.symlink("a.txt", root / "app" / "link")
    old = time.time() - 10  # older than the racy window
    for p in root.rglob("*"):
        os.utime(p, (old, old), follow_symlinks=False)
    return root


def digest(root, sc):
    return tree_digest(context_entries(str(root), "Dockerfile", sc))


def test_tree_digest_ignores_location_and_dockerignored_files(tmp_path):
    a = make_context(tmp_path / "one")
    b = tmp_path / "elsewhere" / "two"
    shutil.copytree(a, b, symlinks=True)
    sc = StatCache(None)
    assert digest(a, sc) == digest(b, sc)
    paths = [e[0] for e in context_entries(str(a), "Dockerfile", sc)]
    assert "notes.md" not in paths and "Dockerfile" in paths and "app/link" in paths
    (a / "notes.md").write_text("changed, still ignored")
    assert digest(a, sc) == digest(b, sc)


def test_tree_digest_changes_with_content_mode_and_link_target(tmp_path):
    a = make_context(tmp_path / "c")
    sc = StatCache(None)
    base = digest(a, sc)
    os.chmod(a / "app" / "a.txt", 0o755)
    assert digest(a, sc) != base
    os.chmod(a / "app" / "a.txt", 0o644)
    assert digest(a, sc) == base
    os.unlink(a / "app" / "link")
    os.symlink("run.sh", a / "app" / "link")
    assert digest(a, sc) != base


def test_warm_stat_cache_reads_no_file_and_touch_rehashes_once(tmp_path):
    ctx = make_context(tmp_path / "c")
    db = tmp_path / "state.db"
    first = StatCache(db)
    d1 = digest(ctx, first)
    first.flush()
    assert first.files_hashed == 4   # Dockerfile, .dockerignore, app/a.txt, app/run.sh
    warm = StatCache(db)
    assert digest(ctx, warm) == d1 and warm.files_hashed == 0   # one stat per file, no reads
    old = time.time() - 5
    os.utime(ctx / "app" / "a.txt", (old, old))                 # touched, content unchanged
    t1 = StatCache(db)
    assert digest(ctx, t1) == d1 and t1.files_hashed == 1
    t1.flush()
    t2 = StatCache(db)                                            # doit #431: not re-hashed again
    assert digest(ctx, t2) == d1 and t2.files_hashed == 0


def test_racy_clean_entry_is_rehashed(tmp_path):
    ctx = make_context(tmp_path / "c")
    f = ctx / "app" / "a.txt"
    f.write_text("b")                                              # mtime = now: racy when recorded
    db = tmp_path / "state.db"
    sc = StatCache(db)
    digest(ctx, sc)
    sc.flush()
    st = f.stat()
    f.write_text("c")                                              # same size, maybe the same tick
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))               # and even the same mtime
    sc2 = StatCache(db)
    entries = dict((e[0], e[2]) for e in context_entries(str(ctx), "Dockerfile", sc2))
    from copilot_doit.hashing import digest_bytes
    assert entries["app/a.txt"] == digest_bytes(b"c")


def test_key_salt_and_canonical_inputs():
    assert Key.of("build/1", {"a": 1, "b": [1, 2]}) == Key.of("build/1", {"b": [1, 2], "a": 1})
    assert Key.of("build/1", {"a": 1}) != Key.of("build/2", {"a": 1})


def test_cache_objects_and_records_are_verified(tmp_path, capsys):
    c = Cache(tmp_path)
    d = c.put_object(b"template")
    assert c.get_object(d) == b"template"
    path = tmp_path / "objects" / d[:2] / d
    path.write_bytes(b"tampered")
    assert c.get_object(d) is None and not path.exists()
    assert "does not match its digest" in capsys.readouterr().err
    k = Key.of("build/1", {"x": 1})
    c.put_action("build", k, {"image_id": "sha256:1"})
    assert c.get_action("build", k)["result"] == {"image_id": "sha256:1"}
    rec_path = tmp_path / "actions" / "build" / f"{k.hex}.json"
    rec = json.loads(rec_path.read_text())
    rec["result"]["image_id"] = "sha256:evil"
    rec_path.write_text(json.dumps(rec))
    assert c.get_action("build", k) is None and not rec_path.exists()
    rec_path.parent.mkdir(parents=True, exist_ok=True)
    rec_path.write_text("{trunc")
    assert c.get_action("build", k) is None


def test_a_record_is_verified_alike_from_its_written_bytes_and_from_other_json(tmp_path, monkeypatch):
    """get_action checks a record as written (canonical JSON, `check` first) by the digest of its bytes, and
    any other JSON of it by encoding the body again: both accept the sound record, both reject an edit."""
    from copilot_doit import cache as cache_mod
    c = Cache(tmp_path)
    k = Key.of("push/1", {"x": 1})
    c.put_action("push", k, {"digest": "sha256:1", "tags": ["é"]})
    rec_path = tmp_path / "actions" / "push" / f"{k.hex}.json"
    written = rec_path.read_bytes()
    encodings = []
    real = cache_mod.digest_value
    monkeypatch.setattr(cache_mod, "digest_value", lambda v: encodings.append(1) or real(v))
    assert c.get_action("push", k)["result"]["tags"] == ["é"] and encodings == []    # from the bytes
    rec_path.write_text(json.dumps(json.loads(written), indent=1))                   # same record, other JSON
    assert c.get_action("push", k)["result"]["digest"] == "sha256:1" and encodings == [1]
    for edited in (written.replace(b"sha256:1", b"sha256:2"),                         # either form, edited
                   json.dumps(json.loads(written.replace(b"sha256:1", b"sha256:2")), indent=1).encode()):
        rec_path.write_bytes(edited)
        assert c.get_action("push", k) is None and not rec_path.exists()


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from copilot_doit import cache as cache_mod
    c = Cache(tmp_path)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod.os, "replace", boom)
    try:
        c.put_object(b"x" * 100)
    except KeyboardInterrupt:
        pass
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_usage_and_prune(tmp_path):
    c = Cache(tmp_path)
    d = c.put_object(b"old")
    k = Key.of("lint/1", {"t": d})
    c.put_action("lint", k, {"report": d})
    assert c.usage()["objects"]["files"] == 1
    old = time.time() - 40 * 86400
    for p in tmp_path.rglob("*"):
        os.utime(p, (old, old))
    assert c.prune(30) == 2 and c.get_object(d) is None


def test_cache_root_made_by_the_product_ignores_itself_in_git(tmp_path):
    from copilot_doit.cache import ensure_root
    made = ensure_root(tmp_path / "repo" / "cache")
    assert (made / ".gitignore").read_text().splitlines()[-1] == "*"
    users = tmp_path / "mine"
    users.mkdir()
    Cache(users).put_object(b"x")            # a folder the user made: nothing written into its top
    assert not (users / ".gitignore").exists()


def test_hashing_a_large_context_shows_progress_on_stderr(tmp_path, monkeypatch, capsys):
    """Issue #10 scope 6: a build context that takes long to hash says how far it got, every interval."""
    import time as _time
    from copilot_doit import hashing
    ctx = tmp_path / "ctx"
    for d in range(20):
        sub = ctx / f"d{d:02}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f:03}.bin").write_bytes(bytes([f]) * 4096)
    (ctx / "big.bin").write_bytes(b"x" * (3 * hashing.CHUNK))
    real = hashing.digest_file

    def slow(path):  # every file read takes a moment: the run is "long" whatever the machine
        _time.sleep(0.0005)
        return real(path)
    monkeypatch.setattr(hashing, "digest_file", slow)
    monkeypatch.setenv("COPILOT_DOIT_PROGRESS_INTERVAL", "0.05")
    entries = context_entries(str(ctx), None, StatCache(None))
    err = capsys.readouterr().err.splitlines()
    progress = [line for line in err if line.startswith("hashing build context ")]
    assert len(progress) >= 3, err
    assert all("files" in line and "MB) read so far" in line for line in progress), progress
    counts = [int(line.split(" entries checked")[0].split()[-1].replace(",", "")) for line in progress
              if " entries checked" in line]
    assert counts == sorted(counts) and counts[-1] > 0, progress
    assert err[-1].startswith("hashed build context ") and "2,001 files (11.3 MB) read" in err[-1], err[-1]
    assert len([e for e in entries if e[1] != "d"]) == 2001


def test_a_quick_context_prints_no_progress(tmp_path, capsys):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a")
    context_entries(str(ctx), None, StatCache(None))
    assert capsys.readouterr().err == ""


def test_progress_counts_bytes_inside_a_single_large_file(tmp_path, capsys):
    from copilot_doit import hashing
    big = tmp_path / "big.bin"
    big.write_bytes(b"y" * (4 * hashing.CHUNK))
    with hashing.Progress("one file", interval=0.0) as progress:
        hashing.digest_file(big)
    assert progress.bytes_read == 4 * hashing.CHUNK
    err = capsys.readouterr().err.splitlines()
    assert any("4.2 MB) read so far" in line for line in err), err


def test_concurrent_checks_read_the_stat_cache_rows_once(tmp_path, monkeypatch):
    """The concurrent status checks all reach the stat cache at once; each reading every row was most of a
    50-workload no-op's CPU (1.6 s -> 1.0 s). One thread reads; the others wait for its rows."""
    import threading
    ctx = make_context(tmp_path / "ctx")
    db = tmp_path / "state.db"
    first = StatCache(db)
    expected = digest(ctx, first)
    first.flush()

    sc = StatCache(db)
    db_ctx = sqlite3.connect(db)
    with db_ctx:
        db_ctx.execute("DELETE FROM context_trees")   # no fast path: every file is looked up
    db_ctx.close()
    monkeypatch.setattr(StatCache, "POINT_LOOKUPS", 0)    # a big workspace: all rows read at once
    reads = []
    real = StatCache._read_rows

    def slow_read(self):
        reads.append(threading.get_ident())
        time.sleep(0.05)   # every thread arrives while the first is still reading
        return real(self)
    monkeypatch.setattr(StatCache, "_read_rows", slow_read)
    results, start = [], threading.Barrier(8)

    def check():
        start.wait()
        results.append(digest(ctx, sc))
    threads = [threading.Thread(target=check) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 8
    assert len(reads) == 1, f"the rows were read {len(reads)} times"
    assert sc.files_hashed == 0   # every file answered from the one read


def test_an_unchanged_context_is_answered_from_its_last_hashing(tmp_path, monkeypatch):
    """The fast path: one lstat per file and one digest of the stats; a file whose stat changed (content,
    mode, a same-size edit with its mtime put back: the ctime moves) or that was racy goes the per-file way."""
    import copilot_doit.hashing as hashing
    ctx = make_context(tmp_path / "ctx")
    db = tmp_path / "state.db"
    first = StatCache(db)
    expected = context_entries(str(ctx), "Dockerfile", first)
    first.flush()

    per_file = []
    real_entry_for = hashing.entry_for

    def counted(*a, **k):
        per_file.append(a[1])
        return real_entry_for(*a, **k)
    monkeypatch.setattr(hashing, "entry_for", counted)

    def again():
        sc = StatCache(db)
        out = context_entries(str(ctx), "Dockerfile", sc)
        sc.flush()
        return out

    assert again() == expected and per_file == []          # answered without a per-file lookup

    a = ctx / "app" / "a.txt"
    before = a.stat()
    a.write_text("b")                                      # same size, mtime put back: only ctime tells
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))
    edited = again()
    assert dict((e[0], e[2]) for e in edited)["app/a.txt"] != dict((e[0], e[2]) for e in expected)["app/a.txt"]
    assert "app/a.txt" in per_file
    per_file.clear()
    assert again() == edited and per_file == []            # its new stat is recorded: the fast path again

    fresh = ctx / "app" / "new.txt"
    fresh.write_text("n")                                  # written now: racy until clearly older
    with_new = again()
    per_file.clear()
    assert again() == with_new and "app/new.txt" in per_file
    time.sleep(1.1)
    again()                                                # recorded after the racy window
    per_file.clear()
    assert again() == with_new and per_file == []

    os.chmod(a, 0o755)                                     # the mode is part of the entry
    kinds = {e[0]: e[1] for e in again()}
    assert kinds["app/a.txt"] == "x"


def test_context_tree_answers_an_unchanged_context_without_decoding_its_entries(tmp_path, monkeypatch):
    """The no-op's form of the fast path: the tree digest kept beside the entries; every change that the
    entries see changes it too (checked against a walk with no cache at all)."""
    from copilot_doit.hashing import context_tree
    ctx = make_context(tmp_path / "ctx")
    db = tmp_path / "state.db"

    def truth():
        return tree_digest(context_entries(str(ctx), "Dockerfile", StatCache(None)))

    def tree(decoding_allowed=True):
        sc = StatCache(db)
        if not decoding_allowed:
            monkeypatch.setattr(sc, "context", lambda *a: pytest.fail("the entries were decoded"))
            real = sc.file_digest   # the .dockerignore is read (it keys the listing); no other file is

            def file_digest(path, st=None):
                if not path.endswith(".dockerignore"):
                    pytest.fail(f"{path} was looked up")
                return real(path, st)
            monkeypatch.setattr(sc, "file_digest", file_digest)
        out = context_tree(str(ctx), "Dockerfile", sc)
        sc.flush()
        return out

    original = truth()
    assert tree() == original                               # first: every file hashed
    assert tree(decoding_allowed=False) == original         # warm: the kept digest
    a = ctx / "app" / "a.txt"
    before = a.stat()
    a.write_text("b")                                       # same size, mtime put back: only ctime tells
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))
    edited = tree()
    assert edited == truth() != original
    assert tree(decoding_allowed=False) == edited == truth()
    (ctx / "app" / "new.txt").write_text("n")               # racy: never answered from the kept digest
    assert tree() == truth()
    assert tree() == truth()
    (ctx / "app" / "d").mkdir()                             # an empty directory is an entry too
    old = time.time() - 10
    for p in (ctx / "app", ctx / "app" / "d", ctx / "app" / "new.txt"):
        os.utime(p, (old, old))
    assert tree() == truth()
    assert tree(decoding_allowed=False) == truth()


def test_a_few_lookups_read_single_rows_many_read_them_all(tmp_path, monkeypatch):
    ctx = make_context(tmp_path / "ctx")
    db = tmp_path / "state.db"
    first = StatCache(db)
    expected = digest(ctx, first)
    first.flush()
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM context_trees")
    reads = []
    real = StatCache._read_rows
    monkeypatch.setattr(StatCache, "_read_rows", lambda self: reads.append(1) or real(self))
    few = StatCache(db)
    assert digest(ctx, few) == expected and few.files_hashed == 0 and reads == []   # 5 files: one SELECT each
    monkeypatch.setattr(StatCache, "POINT_LOOKUPS", 2)
    many = StatCache(db)
    assert digest(ctx, many) == expected and many.files_hashed == 0 and reads == [1]
