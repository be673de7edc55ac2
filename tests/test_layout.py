"""The package's layout holds its design: no import cycles (imports inside functions counted), one
module per stage that reads its upstream only through `status`, one place that knows the emulator, and
stage keys that stay byte-identical across refactors (a deploy made before is up to date after)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "copilot_doit"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every package module `name` imports, at the top or inside functions (TYPE_CHECKING included)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:  # `from x import y` imports the submodule x.y when there is one
                if f"{mod}.{a.name}" in known:
                    out.add(f"{mod}.{a.name}")
                elif mod in known:
                    out.add(mod)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_relative_and_function_level_imports():
    g = import_graph()
    assert "copilot_doit.targets.local" in g["copilot_doit.targets"]      # inside target_for()
    assert "copilot_doit.targets.aws" in g["copilot_doit.targets.local"]  # from ..aws import
    assert "copilot_doit.stages.build" in g["copilot_doit.stages.push"]   # from . import build


def test_no_import_cycles_in_the_package():
    assert cycles(import_graph()) == []


def test_no_stage_module_imports_another_stages_internals():
    """A stage reads its upstream only through the upstream's `status` (and, for the plan, its
    documented public helpers): every use of a sibling stage module is `<stage>.status(...)`."""
    stage_names = {"env", "build", "push", "package", "lint", "deploy"}
    for name in stage_names:
        tree = ast.parse((PKG / "stages" / f"{name}.py").read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None:
                for a in node.names:
                    if a.name in stage_names:
                        aliases[a.asname or a.name] = a.name
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module in stage_names:
                pytest.fail(f"stages/{name}.py imports names from stages/{node.module}.py")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                assert node.attr == "status", f"stages/{name}.py uses {aliases[node.value.id]}.{node.attr}"


def test_only_targets_local_knows_the_emulator():
    """Outside targets/local/ no code names the emulator or imports the local target (the CLI's
    `copilot-doit local ...` commands and `target_for` aside); prose in comments may mention it."""
    for name, path in _modules().items():
        if name.startswith("copilot_doit.targets.local"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            ident = (node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute)
                     else node.arg if isinstance(node, ast.arg) else "")
            assert "moto" not in ident.lower(), f"{path}:{node.lineno}: {ident}"
            if isinstance(node, ast.ImportFrom) and node.module and "local" in node.module.split("."):
                assert name in ("copilot_doit.targets", "copilot_doit.cli"), f"{path} imports the local target"


def test_pipeline_module_is_gone():
    assert not (PKG / "pipeline.py").exists()


def test_the_target_face_is_implemented_by_both_targets():
    from copilot_doit.targets import Target, target_for
    from copilot_doit.workspace import EnvSettings
    for kind in ("aws", "local"):
        t = target_for(EnvSettings(name="x", target=kind), "/nonexistent")
        assert isinstance(t, Target), kind
        assert t.kind == kind


# Keys computed by the layout before the stage modules (commit bc6baac, pipeline.py) for the workspace
# below. A deploy recorded under these keys must stay up to date: change a value here only together
# with a salt or recipe bump, on purpose.
KEYS_BEFORE_THE_SPLIT = {
    "build": ["build/1", "4c1e4dacfd38265318ad99f656a645fe"],
    "push": ["push/3", "7ab161cc92b60edccfb289e99da94a60"],
    "lint": ["lint/1", "114704b45f0bb1b3a2a05bb50b516d16"],
    "deploy": ["deploy/1", "d86d474026af24e53d549e968060e085"],
    # These two cover the template recipes (templates.RECIPE_VERSION, templates.env.RECIPE) too.
    "env": ["env/2", "cb2ca9132f65c1bb6626b4e10166e0ac"],
    "package": ["package/1", "1372d61bd4fbad9debf44eb4567f5484"],
}
RECIPES_BEFORE_THE_SPLIT = ("templates/5", "env/3")


def _golden_workspace(d: Path) -> None:
    ws = d / "copilot"
    (ws / "web" / "src").mkdir(parents=True)
    (ws / "environments" / "test").mkdir(parents=True)
    (ws / ".workspace").write_text("application: gold\n")
    (ws / "copilot-doit.yml").write_text("environments:\n  test: {target: local, region: us-east-1}\n")
    (ws / "environments/test/manifest.yml").write_text("name: test\ntype: Environment\n")
    (ws / "web/manifest.yml").write_text(textwrap.dedent("""\
        name: web
        type: Load Balanced Web Service
        image:
          build: copilot/web/src/Dockerfile
          port: 80
        http:
          path: /
        cpu: 256
        memory: 512
        count: 1
        variables:
          A: b
        """))
    (ws / "web/src/Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    (ws / "web/src/a.txt").write_text("hello\n")
    for p in ws.rglob("*"):  # the executable bit is a key input: fix it whatever the umask
        p.chmod(0o755 if p.is_dir() else 0o644)


def test_stage_keys_are_byte_identical_to_the_layout_before(tmp_path, monkeypatch):
    from copilot_doit import linting, templates
    from copilot_doit.session import Options, Session
    from copilot_doit.stages import build, deploy, env, package, push
    from copilot_doit.templates import env as env_t
    _golden_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COPILOT_DOIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COPILOT_DOIT_WORKSPACE", raising=False)
    s = Session(Options(names=["web"], envs=["test"]))
    ek, _ = env.inputs(s, "test")
    m = s.manifests[("web", "test")]
    bk, _ = build.key(m.build_config(s.ws.root), "web", s.stat_cache)
    keys = {
        "env": ek, "build": bk,
        "push": push.key("123456789012.dkr.ecr.us-east-1.amazonaws.com/gold/web", bk),
        "package": package.key(m, "gold", "test", "repo@sha256:" + "0" * 64, ek.hex, {"addons": None, "env_file": None}),
        "lint": linting.key("ab" * 16, "us-east-1"),
        "deploy": deploy.key("cd" * 16, {"P": "v"}, {"t": "1"}),
    }
    got = {k: [v.salt, v.hex] for k, v in keys.items()}
    pinned = dict(KEYS_BEFORE_THE_SPLIT)
    if (templates.RECIPE_VERSION, env_t.RECIPE) != RECIPES_BEFORE_THE_SPLIT:
        # A template recipe changed on purpose since: those two keys must differ, the rest may not.
        assert got["env"] != pinned.pop("env") or env_t.RECIPE == RECIPES_BEFORE_THE_SPLIT[1]
        assert got["package"] != pinned.pop("package")
        got = {k: got[k] for k in pinned}
    assert got == pinned


def _fake_service(marker: str, port: int) -> subprocess.Popen:
    """A process that answers TCP on `port` and whose command line carries `marker`, as a service
    started by an earlier layout would (`python -m copilot_doit.local.moto_server -p PORT`)."""
    code = ("import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
            "s.bind(('127.0.0.1',int(sys.argv[2]))); s.listen(8); time.sleep(120)")
    return subprocess.Popen([sys.executable, "-c", code, marker, str(port)])


def test_services_started_by_the_previous_layout_are_reused_then_stopped(tmp_path, monkeypatch):
    from copilot_doit.targets.local import services
    monkeypatch.setenv("COPILOT_DOIT_LOCAL_DIR", str(tmp_path))
    moto_port, reg_port = services._free_port(), services._free_port()
    moto = _fake_service("copilot_doit.local.moto_server", moto_port)
    registry = _fake_service("docker-registry-stand-in", reg_port)
    try:
        for port in (moto_port, reg_port):
            for _ in range(100):
                if services._port_open(port):
                    break
                import time
                time.sleep(0.05)
        state = {"moto": {"pid": moto.pid, "port": moto_port, "started": 0, "log": ""},
                 "registry": {"pid": registry.pid, "port": reg_port, "started": 0, "log": ""}}
        (tmp_path / services.STATE_FILE).write_text(json.dumps(state))
        assert all(v["running"] for v in services.status("unused").values())
        # Found and reused: no new process, the recorded ports.
        e = services.ensure_running("unused")
        assert e.moto_url == f"http://127.0.0.1:{moto_port}" and e.registry == f"127.0.0.1:{reg_port}"
        # And `local stop` stops it by its recorded pid.
        stopped = services.stop("unused")
        assert len(stopped) == 2
        assert moto.wait(timeout=10) is not None and registry.wait(timeout=10) is not None
    finally:
        for p in (moto, registry):
            if p.poll() is None:
                p.kill()


def test_a_recycled_pid_is_not_taken_for_a_service(tmp_path, monkeypatch):
    from copilot_doit.targets.local import services
    port = services._free_port()
    other = _fake_service("something-else", port)
    try:
        assert not services._alive(other.pid, services.MOTO_MARKERS)
        assert services._alive(os.getpid(), ("pytest", "python"))
    finally:
        other.kill()
