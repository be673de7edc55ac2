"""The context listing cache (git's untracked cache as the model): an unchanged directory is not listed
again, a changed or racy one is, a `.dockerignore` or Dockerfile-name change starts over, and the cached
listing is always the one a fresh walk gives (pure, no services)."""
from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copilot_doit import dockerignore
from copilot_doit.hashing import StatCache, context_entries, context_tree, digest_bytes, tree_digest
from copilot_doit.dockerignore import sent_paths

OLD = time.time() - 100


def age(*paths: Path, when: float = OLD) -> None:
    for p in paths:
        os.utime(p, (when, when), follow_symlinks=False)


def make_tree(root: Path) -> Path:
    for d in ("src/lib", "src/bin", "docs", "build/out", "keep/inner"):
        (root / d).mkdir(parents=True)
    files = {"Dockerfile": "FROM scratch\nCOPY . /\n", ".dockerignore": "docs\nbuild\n!build/out/keep\n**/*.log\n",
             "src/lib/a.py": "a", "src/lib/b.log": "log", "src/bin/run": "#!/bin/sh\n", "docs/x.md": "x",
             "build/out/keep": "k", "build/out/drop": "d", "keep/inner/c": "c"}
    for rel, text in files.items():
        (root / rel).write_text(text)
    age(root, *root.rglob("*"))
    return root


@pytest.fixture
def scans(monkeypatch):
    """The directories listed with scandir (relative paths), per call of context_entries."""
    seen: list[str] = []
    real = dockerignore.scan_dir

    def counting(abs_dir, rel_dir, matcher):
        seen.append(rel_dir)
        return real(abs_dir, rel_dir, matcher)

    monkeypatch.setattr(dockerignore, "scan_dir", counting)
    return seen


def listed(ctx: Path, sc: StatCache, dockerfile: str = "Dockerfile") -> list[tuple[str, str, str]]:
    return context_entries(str(ctx), dockerfile, sc)


def fresh(ctx: Path) -> set[str]:
    return {p for p, _ in sent_paths(str(ctx))}


def test_warm_run_lists_no_directory_and_matches_nothing(tmp_path, scans, monkeypatch):
    ctx = make_tree(tmp_path / "ctx")
    db = tmp_path / "state.db"
    cold = StatCache(db)
    first = listed(ctx, cold)
    cold.flush()
    assert sorted(scans) == ["", "build/", "build/out/", "keep/", "keep/inner/", "src/", "src/bin/", "src/lib/"]
    assert {e[0] for e in first} == fresh(ctx)
    assert "build" in fresh(ctx) and "build/out/keep" in fresh(ctx) and "docs" not in fresh(ctx)
    assert "src/lib/b.log" not in fresh(ctx) and "build/out/drop" not in fresh(ctx)
    scans.clear()
    monkeypatch.setattr(dockerignore, "matcher_for", lambda patterns: pytest.fail("matcher built on a no-op"))
    warm = StatCache(db)
    assert listed(ctx, warm) == first
    assert scans == [] and warm.files_hashed == 0
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM listings").fetchone()[0] == 1


def test_a_new_file_relists_only_its_directory(tmp_path, scans):
    ctx = make_tree(tmp_path / "ctx")
    db = tmp_path / "state.db"
    sc = StatCache(db)
    listed(ctx, sc)
    sc.flush()
    (ctx / "src" / "lib" / "new.py").write_text("n")
    (ctx / "src" / "lib" / "new.log").write_text("ignored")
    age(ctx / "src" / "lib", ctx / "src" / "lib" / "new.py", when=OLD + 10)
    scans.clear()
    sc2 = StatCache(db)
    paths = {e[0] for e in listed(ctx, sc2)}
    assert scans == ["src/lib/"]
    scans.clear()
    assert "src/lib/new.py" in paths and "src/lib/new.log" not in paths and paths == fresh(ctx)


def test_a_content_edit_is_seen_without_any_listing(tmp_path, scans):
    ctx = make_tree(tmp_path / "ctx")
    db = tmp_path / "state.db"
    sc = StatCache(db)
    listed(ctx, sc)
    sc.flush()
    (ctx / "src" / "lib" / "a.py").write_text("b")      # same size, the directory's mtime does not move
    age(ctx / "src" / "lib" / "a.py", when=OLD + 20)
    scans.clear()
    entries = dict((e[0], e[2]) for e in listed(ctx, StatCache(db)))
    assert scans == [] and entries["src/lib/a.py"] == digest_bytes(b"b")


def test_dockerignore_change_or_dockerfile_name_starts_over(tmp_path, scans):
    ctx = make_tree(tmp_path / "ctx")
    db = tmp_path / "state.db"
    sc = StatCache(db)
    listed(ctx, sc)
    sc.flush()
    (ctx / ".dockerignore").write_text("src\n")
    age(ctx / ".dockerignore", when=OLD + 30)            # the directory's mtime stays: only the digest moves
    scans.clear()
    sc2 = StatCache(db)
    paths = {e[0] for e in listed(ctx, sc2)}
    sc2.flush()
    assert "" in scans and not any(p.startswith("src") for p in paths) and "docs/x.md" in paths
    assert paths == fresh(ctx)
    scans.clear()
    other = StatCache(db)
    listed(ctx, other, dockerfile="other/Dockerfile")
    other.flush()
    assert "" in scans
    scans.clear()
    both = StatCache(db)  # two workloads sharing the context with different Dockerfiles: no thrash
    listed(ctx, both, dockerfile="other/Dockerfile")
    listed(ctx, both)
    assert scans == []


def test_racy_directory_is_listed_again(tmp_path, scans):
    ctx = make_tree(tmp_path / "ctx")
    lib = ctx / "src" / "lib"
    now = time.time()
    age(lib, when=now)                                  # listed in the same tick it was changed
    db = tmp_path / "state.db"
    sc = StatCache(db)
    listed(ctx, sc)
    sc.flush()
    st = lib.stat()
    (lib / "late.py").write_text("l")                   # a change in that same tick…
    os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns))  # …leaves the mtime where it was
    scans.clear()
    paths = {e[0] for e in listed(ctx, StatCache(db))}
    assert "src/lib/" in scans and "src/lib/late.py" in paths


def test_removed_and_replaced_entries(tmp_path):
    ctx = make_tree(tmp_path / "ctx")
    db = tmp_path / "state.db"
    sc = StatCache(db)
    listed(ctx, sc)
    sc.flush()
    (ctx / "src" / "bin" / "run").unlink()
    (ctx / "src" / "bin").rmdir()
    (ctx / "src" / "bin").write_text("now a file")       # a directory replaced by a file
    (ctx / "keep" / "inner" / "c").unlink()
    (ctx / "keep" / "inner" / "c").mkdir()               # a file replaced by a directory
    age(*[p for p in ctx.rglob("*") if p.parent.name in ("src", "inner", "keep")], ctx / "src",
        when=OLD + 40)
    entries = {e[0]: e[1] for e in listed(ctx, StatCache(db))}
    assert entries["src/bin"] == "f" and entries["keep/inner/c"] == "d" and "src/bin/run" not in entries
    assert set(entries) == fresh(ctx)


def test_corrupt_listing_row_only_costs_a_walk(tmp_path):
    ctx = make_tree(tmp_path / "ctx")
    db = tmp_path / "state.db"
    sc = StatCache(db)
    first = listed(ctx, sc)
    sc.flush()
    with sqlite3.connect(db) as con:
        con.execute("UPDATE listings SET dirs = '{trunc'")
    assert listed(ctx, StatCache(db)) == first


def test_shared_stat_cache_two_contexts(tmp_path):
    a = make_tree(tmp_path / "a")
    b = make_tree(tmp_path / "b")
    (b / ".dockerignore").write_text("*\n!src\n")
    sc = StatCache(tmp_path / "state.db")
    la, lb = listed(a, sc), listed(b, sc)
    assert {e[0] for e in la} == fresh(a) and {e[0] for e in lb} == fresh(b)
    assert listed(a, sc) == la and listed(b, sc) == lb


# --- property: after any sequence of changes, the cached listing is a fresh walk's -------------------

NAMES = st.sampled_from(["a", "b", "c.log", "d", "keep", ".x"])
OPS = st.lists(st.tuples(st.sampled_from(["file", "dir", "remove", "edit", "ignore"]),
                         st.lists(NAMES, min_size=1, max_size=3).map("/".join),
                         st.booleans()),
               min_size=1, max_size=12)
IGNORES = ["", "*.log\n", "a\n!a/keep\n", "**/b\n", "*\n!d\n", "d/*\n!d/keep*\n"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_cached_listing_equals_a_fresh_walk_after_any_changes(ops):
    with tempfile.TemporaryDirectory() as d:
        ctx = Path(d) / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM scratch\n")
        db = Path(d) / "state.db"
        age(ctx, *ctx.rglob("*"))
        for step, (op, rel, racy) in enumerate(ops, start=1):
            p = ctx / rel
            touched = {p.parent}
            try:
                if op == "file":
                    p.parent.mkdir(parents=True, exist_ok=True)
                    touched.update(q for q in [p.parent, *p.parent.parents] if ctx in q.parents or q == ctx)
                    p.write_text(rel)
                    touched.add(p)
                elif op == "dir":
                    p.mkdir(parents=True, exist_ok=True)
                    touched.update(q for q in [p, *p.parents] if ctx in q.parents or q == ctx)
                elif op == "remove" and p.exists():
                    if p.is_dir():
                        for q in sorted(p.rglob("*"), reverse=True):
                            q.rmdir() if q.is_dir() else q.unlink()
                        p.rmdir()
                    else:
                        p.unlink()
                elif op == "edit" and p.is_file():
                    p.write_text("edited " + rel)
                    touched = {p}
                elif op == "ignore":
                    (ctx / ".dockerignore").write_text(IGNORES[step % len(IGNORES)])
                    touched = {ctx, ctx / ".dockerignore"}
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                continue
            # Changed things get a new, distinct mtime: in the past (not racy) or now (racy).
            when = time.time() if racy else OLD + step
            age(*[q for q in touched if q.exists()], when=when)
            sc = StatCache(db)
            got = {e[0]: e[1] for e in context_entries(str(ctx), "Dockerfile", sc)}
            sc.flush()
            # The no-op's digest, from the same stat cache, is the digest of an uncached walk's entries.
            sc = StatCache(db)
            assert context_tree(str(ctx), "Dockerfile", sc) == \
                tree_digest(context_entries(str(ctx), "Dockerfile", StatCache(None)))
            sc.flush()
            assert set(got) == {q for q, _ in sent_paths(str(ctx))}
            for q, kind in got.items():
                assert (kind == "d") == ((ctx / q).is_dir() and not (ctx / q).is_symlink())
