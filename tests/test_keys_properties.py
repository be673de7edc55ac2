"""Property tests: stage keys ignore what does not matter and change with everything that does."""
from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copilot_doit import templates
from copilot_doit.stages import build, package
from copilot_doit.hashing import StatCache
from copilot_doit.manifest import load_workload

names = st.text(alphabet="abcdefghij_-", min_size=1, max_size=8)
trees = st.dictionaries(st.lists(names, min_size=1, max_size=3).map(lambda p: "/".join(p)),
                        st.binary(max_size=64), min_size=1, max_size=8)
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    (root).mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    (root / ".dockerignore").write_text("*.ignored\n")
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "keep").write_bytes(b"k")
    for rel, data in sorted(files.items()):
        p = root / "src" / rel
        try:  # a generated path may collide with an earlier file/folder: skip it
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.is_dir():
                p.write_bytes(data)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue
    old = time.time() - 30
    for p in root.rglob("*"):
        os.utime(p, (old, old))


def build_key(root: Path, args: dict, sc: StatCache, monkeypatch=None):
    from copilot_doit.manifest import BuildConfig
    cfg = BuildConfig(dockerfile=root / "Dockerfile", context=root, args=args, target=None, cache_from=[], platform=None)
    return build.key(cfg, "svc", sc)[0]


@SETTINGS
@given(files=trees, args=st.dictionaries(names, names, max_size=4), seed=st.integers())
def test_build_key_ignores_location_order_touch_and_ignored_files(files, args, seed):
    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d) / "one" / "ctx", Path(d) / "elsewhere" / "deeper" / "ctx"
        write_tree(a, files)
        shutil.copytree(a, b)
        sc = StatCache(Path(d) / "state.db")
        k = build_key(a, args, sc)
        shuffled = list(args.items())
        random.Random(seed).shuffle(shuffled)
        assert build_key(b, dict(shuffled), sc) == k                       # moved checkout, arg order
        for p in b.rglob("*"):
            os.utime(p)                                                  # touched, same content
        (b / "notes.ignored").write_bytes(b"anything")                     # .dockerignore'd
        assert build_key(b, args, sc) == k


@SETTINGS
@given(files=trees, args=st.dictionaries(names, names, max_size=3), which=st.integers(min_value=0),
       change=st.sampled_from(["content", "mode", "arg", "dockerfile", "new file", "base image"]))
def test_build_key_changes_with_every_relevant_input(files, args, which, change):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "ctx"
        write_tree(root, files)
        sc = StatCache(None)
        before = build_key(root, args, sc)
        regular = sorted(p for p in (root / "src").rglob("*") if p.is_file())
        target = regular[which % len(regular)]
        if change == "content":
            target.write_bytes(target.read_bytes() + b"!")
        elif change == "mode":
            os.chmod(target, target.stat().st_mode ^ 0o100)
        elif change == "arg":
            args = {**args, "EXTRA": "1"}
        elif change == "dockerfile":
            (root / "Dockerfile").write_text("FROM scratch\nCOPY . /srv\n")
        elif change == "new file":
            (root / "brand-new.txt").write_text("x")
        elif change == "base image":
            (root / "Dockerfile").write_text("FROM base:1\nCOPY . /app\n")
            from copilot_doit import engine
            orig = engine.inspect_image

            def pulled(digit):   # the engine holds base:1, pulled from its registry at this digest
                return lambda ref: {"Id": "sha256:" + "e" * 64, "RepoDigests": [f"base@sha256:{digit * 64}"]}
            try:
                engine.inspect_image = pulled("a")
                k1 = build_key(root, args, sc)
                engine.inspect_image = pulled("b")                          # the tag moved: a newer base
                assert build_key(root, args, sc) != k1
            finally:
                engine.inspect_image = orig
            return
        assert build_key(root, args, sc) != before


MANIFEST = {
    "name": "svc", "type": "Load Balanced Web Service",
    "image": {"build": "Dockerfile", "port": 80},
    "http": {"path": "/", "healthcheck": "/health"},
    "cpu": 256, "memory": 512, "count": 1,
    "variables": {"A": "1", "B": "two"},
    "environments": {"test": {"variables": {"B": "three"}}, "prod": {"count": 2}},
}


def dump_layout(data, seed: int, comments: bool) -> str:
    rnd = random.Random(seed)

    def shuffle(v):
        if isinstance(v, dict):
            items = list(v.items())
            rnd.shuffle(items)
            return {k: shuffle(x) for k, x in items}
        return v
    text = yaml.safe_dump(shuffle(data), sort_keys=False, default_flow_style=rnd.choice([False, None]),
                          indent=rnd.choice([2, 4]))
    if comments:
        text = "# a comment\n" + text.replace("\n", "  # trailing\n", 1)
    return text


def package_key(tmp: Path, text: str, env="test", image="repo@sha256:1"):
    p = tmp / "svc" / "manifest.yml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    m = load_workload(p, "demo", env, "svc")
    return package.key(m, "demo", env, image, "envkey")


@SETTINGS
@given(seed=st.integers(), comments=st.booleans())
def test_package_key_ignores_yaml_layout_order_and_comments(seed, comments):
    with tempfile.TemporaryDirectory() as d:
        base = package_key(Path(d), yaml.safe_dump(MANIFEST, sort_keys=False))
        assert package_key(Path(d), dump_layout(MANIFEST, seed, comments)) == base


@SETTINGS
@given(change=st.sampled_from(["env override", "other env only", "image", "recipe", "addons", "value"]))
def test_package_key_changes_with_relevant_inputs_only(change):
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base_text = yaml.safe_dump(MANIFEST, sort_keys=False)
        base = package_key(tmp, base_text)
        data = yaml.safe_load(base_text)
        if change == "env override":
            data["environments"]["test"]["variables"]["B"] = "four"
        elif change == "other env only":
            data["environments"]["prod"]["count"] = 3
            assert package_key(tmp, yaml.safe_dump(data)) == base     # prod's override: not test's input
            return
        elif change == "value":
            data["http"]["healthcheck"] = "/ready"
        elif change == "image":
            assert package_key(tmp, base_text, image="repo@sha256:2") != base
            return
        elif change == "recipe":
            orig = package.RECIPE_VERSION
            package.RECIPE_VERSION = "templates/999"
            try:
                assert package_key(tmp, base_text) != base
            finally:
                package.RECIPE_VERSION = orig
            return
        elif change == "addons":
            p = tmp / "svc" / "manifest.yml"
            m = load_workload(p, "demo", "test", "svc")
            assert package.key(m, "demo", "test", "repo@sha256:1", "envkey", {"digest": "x"}) != base
            return
        assert package_key(tmp, yaml.safe_dump(data)) != base


def test_rendered_template_is_byte_identical_for_identical_inputs(tmp_path):
    from copilot_doit.templates.workload import RenderInput, render
    a = package_key(tmp_path, yaml.safe_dump(MANIFEST))
    m = load_workload(tmp_path / "svc" / "manifest.yml", "demo", "test", "svc")
    first = templates.dump(render(RenderInput(m, "demo", "test", "repo@sha256:1"))[0])
    (tmp_path / "svc" / "manifest.yml").write_text(dump_layout(MANIFEST, 7, True))
    m2 = load_workload(tmp_path / "svc" / "manifest.yml", "demo", "test", "svc")
    assert templates.dump(render(RenderInput(m2, "demo", "test", "repo@sha256:1"))[0]) == first
    assert a == package_key(tmp_path, dump_layout(MANIFEST, 7, True))
