"""`.dockerignore` semantics pinned to the engine: what `COPY . /ctx` receives is what the product lists.

The e2e tests build through the product's own build path (`docker_build.build`: the builder
`find_builder()` picks, BuildKit through the Docker CLI here) a `FROM scratch` + `COPY . /ctx` image of a
random tree with random patterns, export its filesystem, and compare `ctx/…` with
`hashing.context_entries`. The pure tests pin the reader, the matcher's edge cases, and that the sample
workspace's keys are byte-identical to the ones docker-py's matcher gave.
"""
from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from copilot_doit import dockerignore
from copilot_doit.dockerignore import DockerignoreError, PatternMatcher, read_patterns, sent_paths
from copilot_doit.hashing import StatCache, context_entries, tree_digest, walk_tree

from conftest import REPO, missing

DOCKERFILE = "FROM scratch\nCOPY . /ctx\n"


# --- the engine side ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine_build():
    """build(ctx) -> set of (path, is_dir) that arrived under /ctx, through the product's build path."""
    from copilot_doit import docker_build, engine
    from copilot_doit.errors import ServiceUnavailable, StageFailed
    from copilot_doit.manifest import BuildConfig
    try:
        engine.image_id("copilot-doit-probe:none")
    except ServiceUnavailable as exc:
        missing(f"Docker engine: {exc}")
    client = engine.client()
    repo = f"copilot-doit-ignoretest-{uuid.uuid4().hex[:8]}"
    made: list[str] = []

    def build(ctx: Path):
        tag = f"{repo}:{len(made)}"
        cfg = BuildConfig(dockerfile=ctx / "Dockerfile", context=ctx, args={}, target=None, cache_from=[],
                          platform=None)
        try:
            docker_build.build(cfg, tag, {}, quiet=True, timeout=120)
        except StageFailed as exc:
            return ("failed", str(exc))
        made.append(tag)
        container = client.api.create_container(tag, command=["none"])["Id"]
        try:
            data = b"".join(client.api.export(container))
        finally:
            client.api.remove_container(container, force=True)
        arrived = set()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                name = m.name.rstrip("/")
                if name.startswith("ctx/"):
                    arrived.add((name[4:], m.isdir()))
        return arrived

    yield build
    for tag in made:
        try:
            client.api.remove_image(tag, force=True)
        except Exception:  # already gone: nothing to clean
            pass


def product_listing(ctx: Path) -> set[tuple[str, bool]]:
    entries = context_entries(str(ctx), "Dockerfile", StatCache(None))
    listed = {(e[0], e[1] == "d") for e in entries}
    assert listed == set(sent_paths(str(ctx)))  # the cached walk and the plain walk agree
    return listed


def docker_py_listing(ctx: Path) -> set[tuple[str, bool]]:
    """What docker-py's matcher (the product's matcher before) sends."""
    from docker.utils.build import exclude_paths
    raw = (ctx / ".dockerignore").read_text()
    patterns = [ln.strip() for ln in raw.splitlines() if ln.strip() and ln.strip()[0] != "#"]
    return {(p, (ctx / p).is_dir() and not (ctx / p).is_symlink())
            for p in exclude_paths(str(ctx), patterns, dockerfile="Dockerfile")}


def write_context(ctx: Path, paths: list[tuple[str, bool]], ignore: str) -> None:
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / ".dockerignore").write_text(ignore)
    for rel, is_dir in paths:
        p = ctx / rel
        try:
            if is_dir:
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                if not p.exists():
                    p.write_text(rel)
        except (FileExistsError, NotADirectoryError):
            continue  # a generated path collides with an earlier file: skip it


# --- random trees and patterns -------------------------------------------------------------------------

NAME = st.sampled_from(["a", "b", "ab", "A", "a.txt", "b.md", "B.MD", ".x", "x.a", "c_1", "d-d", "Dockerfile"])
TREE = st.lists(st.tuples(st.lists(NAME, min_size=1, max_size=3).map("/".join), st.booleans()),
                min_size=1, max_size=8)
SEGMENT = st.one_of(
    NAME,
    st.sampled_from(["*", "**", "?", "a*", "*.txt", "*.md", ".*", "?b", "[ab]", "[a-c]*", "[^a]", "[!a]",
                     "[A-Z]*", "**/a", "x\\.a", "b*.?d"]),
)
PATTERN = st.tuples(
    st.sampled_from(["", "", "", "!", "! "]),
    st.sampled_from(["", "", "/", "./"]),
    st.lists(SEGMENT, min_size=1, max_size=3).map("/".join),
    st.sampled_from(["", "", "/"]),
).map(lambda t: "".join(t))
IGNORE = st.lists(st.one_of(PATTERN, st.sampled_from(["Dockerfile", ".dockerignore", "*", "# c", " #a", "",
                                                      "  a  ", "*/*", "a/**/b", "**/"])),
                  min_size=1, max_size=5).map(lambda lines: "\n".join(lines) + "\n")


@pytest.mark.e2e
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(tree=TREE, ignore=IGNORE)
@example(tree=[("a/b/c", False), ("a/d", False), ("x/y/b/c", False), ("e", True), ("f/g/h", False)],
         ignore="a\n!a/b\n**/b\n!x/y/b/c\ne\nf/g\n!f/g/zz\n")
@example(tree=[("d/f", False), ("k", False)], ignore="*\n!d\n")
def test_engine_receives_exactly_the_product_listing(engine_build, tree, ignore):
    with tempfile.TemporaryDirectory() as d:
        ctx = Path(d) / "ctx"
        write_context(ctx, tree, ignore)
        arrived = engine_build(ctx)
        try:
            listed = product_listing(ctx)
        except DockerignoreError as exc:
            assert isinstance(arrived, tuple), f"the engine accepted {ignore!r}, the product refused: {exc}"
            return
        assert arrived == listed, (f".dockerignore {ignore!r}\nengine only: {sorted(arrived - listed)}\n"
                                   f"product only: {sorted(listed - arrived)}")


# Each known difference between docker-py's matcher and moby's (dockerignore.py's docstring), as the
# engine shows it: the product lists what arrives, docker-py's walk lists something else.
DIFFERENCES = {
    "Dockerfile and .dockerignore excluded": ([("a", False)], "*\n!a\n"),
    "case-sensitive": ([("README.MD", False), ("x.md", False)], "*.md\n"),
    "[!a] is not a negation": ([("ab", False), ("bb", False), ("!b", False)], "[!a]b\n"),
    "[^a] is a negation": ([("ab", False), ("bb", False), ("^b", False)], "[^a]b\n"),
    "backslash escapes": ([("a.b", False), ("axb", False), ("a\\.b", False)], "a\\.b\n"),
    "indented # is a pattern": ([("#a", False), ("b", False)], "  #a\n"),
    "leading .. is kept": ([("a", False), ("b", False)], "../a\n"),
    "walked excluded dir is sent": ([("a/b", False), ("c", False)], "a\n!a/keep\n"),
    "exception must spell out the dir": ([("a/x", False), ("b", False)], "a*\n!a*/x\n"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", sorted(DIFFERENCES))
def test_known_difference_from_docker_py(engine_build, tmp_path, case):
    tree, ignore = DIFFERENCES[case]
    ctx = tmp_path / "ctx"
    write_context(ctx, tree, ignore)
    arrived = engine_build(ctx)
    assert arrived == product_listing(ctx)
    assert docker_py_listing(ctx) != arrived, f"{case}: docker-py agrees with the engine after all"


READER_CASES = {
    "crlf": ([("a", False), ("b", False), ("c", False)], "a\r\n!b\r\nb\r\n"),
    "bom": ([("a", False), ("b", False)], "\ufeffa\n"),
    "spaces after !": ([("d/a", False), ("d/b", False)], "d\n!   d/a  \n"),
    "posix class": ([("1x", False), ("ax", False)], "[[:digit:]]x\n"),
    "dot and dotdot": ([("a/b", False), ("c", False)], ".\nx/../a\n"),
    "double star dir": ([("a/q/r/b", False), ("a/b", False), ("a/c", False), ("b", False)], "a/**/b\n"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("case", sorted(READER_CASES))
def test_reader_and_matcher_edges_in_the_engine(engine_build, tmp_path, case):
    tree, ignore = READER_CASES[case]
    ctx = tmp_path / "ctx"
    write_context(ctx, tree, "")
    (ctx / ".dockerignore").write_bytes(ignore.encode())
    assert engine_build(ctx) == product_listing(ctx)


@pytest.mark.e2e
@pytest.mark.parametrize("pattern", ["[a", "a[]", "\\", "[z-a]", "!"])
def test_malformed_pattern_fails_in_the_engine_and_in_the_product(engine_build, tmp_path, pattern):
    ctx = tmp_path / "ctx"
    write_context(ctx, [("a", False)], pattern + "\n")
    assert isinstance(engine_build(ctx), tuple)  # the build failed
    with pytest.raises(DockerignoreError):
        context_entries(str(ctx), "Dockerfile", StatCache(None))


# --- pure: reader and matcher --------------------------------------------------------------------------

def test_reader_follows_moby():
    text = "\ufeff# comment\n #not a comment\n\n  /abs/x/  \r\n!  ./b/../c\n!/\n../up\n//two\nlast"
    assert read_patterns(text.encode()) == ["#not a comment", "abs/x", "!c", "!/", "../up", "two", "last"]


@pytest.mark.parametrize("pattern,path,excluded", [
    ("*.md", "x.md", True), ("*.md", "d/x.md", False), ("*.md", "X.MD", False),
    ("**/*.md", "d/e/x.md", True), ("**", "anything/at/all", True), ("a/**", "a", False),
    ("a/**", "a/b/c", True), ("a/**/b", "a/b", True), ("a/**/b", "a/x/y/b", True),
    ("**b", "xb", False), ("**b", "x/b", True), ("?", "a", True), ("?", "ab", False),
    ("[a-c]", "b", True), ("[^a]", "a", False), ("[^a]", "b", True), ("[!a]", "!", True),
    ("[!a]", "b", False), ("a\\*", "a*", True), ("a\\*", "ab", False), ("a.b", "axb", False),
    ("d", "d/e/f", True), ("*/e", "d/e/f", True), ("**/e", "d/x/e/f", False),  # 20.10's parent rule
    ("[[:digit:]]x", "1x", True), ("[[:digit:]]x", "ax", False), ("a$", "a$", True),
])
def test_matcher_cases(pattern, path, excluded):
    assert PatternMatcher(read_patterns(pattern)).matches(path) is excluded


def test_last_matching_pattern_wins():
    pm = PatternMatcher(read_patterns("*.txt\n!keep*.txt\nkeep-not.txt\n"))
    assert pm.matches("a.txt") and not pm.matches("keep.txt") and pm.matches("keep-not.txt")


@pytest.mark.parametrize("pattern", ["[a", "a[]", "\\", "[z-a]", "!", "[]a]", "[a-]"])
def test_malformed_patterns_raise(pattern):
    with pytest.raises(DockerignoreError):
        PatternMatcher(read_patterns(pattern))


def test_hashing_imports_no_docker_sdk():
    import subprocess
    import sys
    code = "import sys, copilot_doit.hashing as h; print(any(m == 'docker' or m.startswith('docker.') " \
           "or 'dockersdk' in m for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


# --- keys of the sample workspace: byte-identical to docker-py's listing --------------------------------

def old_context_entries(context: str, dockerfile_in_context: str | None, sc: StatCache):
    """The product's listing before dockerignore.py: docker-py's matcher (kept here as the reference)."""
    from docker.utils.build import exclude_paths
    from copilot_doit.hashing import entry_for
    patterns = [ln.strip() for ln in Path(context, ".dockerignore").read_text().splitlines()
                if ln.strip() and ln.strip()[0] != "#"] if Path(context, ".dockerignore").exists() else []
    if not patterns:
        return walk_tree(context, sc)
    out = []
    for rel in sorted(exclude_paths(context, patterns, dockerfile=dockerfile_in_context)):
        e = entry_for(os.path.join(context, rel), rel.replace(os.sep, "/"), sc)
        if e:
            out.append(e)
    return out


SAMPLE_CONTEXTS = sorted(p for p in (REPO / "manifests").glob("*/src") if (p / "Dockerfile").exists())


@pytest.mark.parametrize("ctx", SAMPLE_CONTEXTS, ids=lambda p: p.parent.name)
def test_sample_workspace_context_keys_unchanged(ctx, tmp_path):
    copy = tmp_path / "ctx"
    shutil.copytree(ctx, copy, symlinks=True)
    (copy / "busybox").write_bytes(b"stand-in for busybox-static")  # the e2e fixture copies the real one
    old = old_context_entries(str(copy), "Dockerfile", StatCache(None))
    db = tmp_path / "state.db"
    cold_cache = StatCache(db)
    new = context_entries(str(copy), "Dockerfile", cold_cache)
    cold_cache.flush()
    assert sorted(new) == sorted(old)
    assert tree_digest(new) == tree_digest(old)
    old_t = time.time() - 10
    for p in [copy, *copy.rglob("*")]:
        os.utime(p, (old_t, old_t), follow_symlinks=False)
    warm_once = StatCache(db)
    assert context_entries(str(copy), "Dockerfile", warm_once) == new
    warm_once.flush()
    assert context_entries(str(copy), "Dockerfile", StatCache(db)) == new  # from the listing cache


def test_sent_paths_matches_dockerignore_module_walk(tmp_path):
    ctx = tmp_path / "c"
    write_context(ctx, [("a/b", False), ("a/c/d", False), ("e", True)], "a/c\n")
    assert sent_paths(str(ctx)) == [(".dockerignore", False), ("Dockerfile", False), ("a", True),
                                    ("a/b", False), ("e", True)]
    assert dockerignore.read_dockerignore(str(tmp_path)) == []
