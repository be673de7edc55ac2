"""Builds through the Docker CLI with BuildKit (copilot_doit.docker_build), on the real engine.

FROM-scratch images with Debian's static busybox, so nothing is pulled. What this engine (Docker 20.10,
BuildKit's built-in Dockerfile frontend of that time, `dockerd --bridge=none`, no QEMU) really does is
pinned here: heredocs and `COPY --link` are rejected by its parser, RUN steps need `--network=host`,
an arm64 FROM scratch + COPY needs no emulation, an arm64 RUN fails with `exec format error`.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import BUSYBOX, missing
from copilot_doit import docker_build
from copilot_doit.errors import ServiceUnavailable, StageFailed, UserError
from copilot_doit.manifest import BuildConfig

FRONTEND = "need{s} a newer Dockerfile frontend than this engine's built-in one"


def config(ctx: Path, dockerfile: str = "Dockerfile", **kw) -> BuildConfig:
    return BuildConfig(dockerfile=ctx / dockerfile, context=ctx, args=kw.get("args", {}), target=kw.get("target"),
                       cache_from=kw.get("cache_from", []), platform=kw.get("platform"))


@pytest.fixture(autouse=True)
def fresh_builder_choice():
    """find_builder() is memoised per process: each test chooses again."""
    docker_build._builder = None
    docker_build._notice_shown = False
    yield
    docker_build._builder = None
    docker_build._notice_shown = False


# --- unit: choosing the CLI, the command line ------------------------------------------------------------

def fake_docker(folder: Path, version: str, buildx: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "docker"
    script.write_text("#!/bin/sh\n"
                      f'if [ "$1" = "--version" ]; then echo "Docker version {version}, build x"; exit 0; fi\n'
                      f'if [ "$1" = "buildx" ]; then {"echo v0.12; exit 0" if buildx else "exit 1"}; fi\n'
                      "exit 2\n")
    script.chmod(0o755)


def test_a_cli_23_or_later_without_buildx_is_passed_over_for_an_older_one(tmp_path, monkeypatch):
    fake_docker(tmp_path / "new", "28.2.2", buildx=False)
    fake_docker(tmp_path / "old", "20.10.24+dfsg1", buildx=False)
    monkeypatch.setenv("PATH", f"{tmp_path / 'new'}{os.pathsep}{tmp_path / 'old'}")
    b = docker_build.find_builder()
    assert (b.kind, b.cli, b.version) == ("buildkit", str(tmp_path / "old" / "docker"), "20.10.24+dfsg1")


def test_buildx_is_preferred_when_installed(tmp_path, monkeypatch):
    fake_docker(tmp_path / "bx", "28.2.2", buildx=True)
    monkeypatch.setenv("PATH", str(tmp_path / "bx"))
    assert docker_build.find_builder().kind == "buildx"


def test_threads_asking_at_once_probe_the_cli_once(tmp_path, monkeypatch):
    """`-j 8`: eight builds start together; the CLI is probed once, not once per thread."""
    import threading
    fake_docker(tmp_path / "old", "20.10.24+dfsg1", buildx=False)
    script = tmp_path / "old" / "docker"
    # Each probe leaves a line and takes a moment, so that threads arriving together overlap it.
    script.write_text(script.read_text().replace("#!/bin/sh\n", f"#!/bin/sh\necho $1 >> {tmp_path}/calls\nsleep 0.2\n", 1))
    monkeypatch.setenv("PATH", str(tmp_path / "old"))
    start = threading.Barrier(8)
    found = []

    def ask():
        start.wait()
        found.append(docker_build.find_builder())
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 8 and len(set(found)) == 1 and found[0].kind == "buildkit"
    assert sorted((tmp_path / "calls").read_text().split()) == ["--version", "buildx"]


def counting_docker(tmp_path: Path, monkeypatch, version="20.10.24+dfsg1", buildx=False) -> Path:
    """A fake `docker` on PATH that logs each call; its file and the plugin folders dated an hour back (older
    than the racy window), DOCKER_CONFIG a folder of the test's."""
    fake_docker(tmp_path / "bin", version, buildx)
    script = tmp_path / "bin" / "docker"
    script.write_text(script.read_text().replace("#!/bin/sh\n", f"#!/bin/sh\necho $1 >> {tmp_path}/calls\n", 1))
    (tmp_path / "config" / "cli-plugins").mkdir(parents=True)
    for path in (script, tmp_path / "config" / "cli-plugins"):
        os.utime(path, (os.path.getmtime(path) - 3600,) * 2)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "config"))
    return script


def calls(tmp_path: Path) -> int:
    return len((tmp_path / "calls").read_text().split()) if (tmp_path / "calls").exists() else 0


def test_the_cli_probe_is_remembered_until_the_cli_or_its_plugins_change(tmp_path, monkeypatch):
    """Two to four CLI processes per run that builds (~0.17 s on this machine's two CLIs), asked once while
    the CLIs, their plugin folders and DOCKER_CONFIG stay as they are."""
    script = counting_docker(tmp_path, monkeypatch)
    memo = tmp_path / "cache" / "docker-cli.json"
    first = docker_build.find_builder(memo)
    assert first.kind == "buildkit" and calls(tmp_path) == 2 and memo.exists()
    docker_build._builder = None                      # the next run (a new process)
    assert docker_build.find_builder(memo) == first and calls(tmp_path) == 2
    plugin = tmp_path / "config" / "cli-plugins" / "docker-buildx"   # buildx installed: asked again
    plugin.write_text("#!/bin/sh\n")
    os.utime(plugin.parent, (os.path.getmtime(plugin.parent) - 1800,) * 2)
    docker_build._builder = None
    docker_build.find_builder(memo)
    assert calls(tmp_path) == 4
    fake_docker(tmp_path / "bin", "28.2.2", buildx=True)              # the CLI upgraded: asked again
    os.utime(script, (os.path.getmtime(script) - 600,) * 2)
    docker_build._builder = None
    assert docker_build.find_builder(memo).kind == "buildx"


def test_a_damaged_probe_memo_or_a_cli_changed_just_now_is_asked_again(tmp_path, monkeypatch):
    script = counting_docker(tmp_path, monkeypatch)
    memo = tmp_path / "docker-cli.json"
    memo.write_text("{not json")
    assert docker_build.find_builder(memo).kind == "buildkit" and calls(tmp_path) == 2
    docker_build._builder = None
    memo.write_text('{"signature": "%s", "builder": {"kind": "buildx", "cli": "/elsewhere/docker"}}'
                    % docker_build.probe_signature([str(script)]))
    assert docker_build.find_builder(memo).kind == "buildkit" and calls(tmp_path) == 4   # a CLI not on PATH
    os.utime(script)                                   # changed just now: within the racy window
    assert docker_build.probe_signature([str(script)]) is None
    docker_build._builder = None
    docker_build.find_builder(memo)
    docker_build._builder = None
    docker_build.find_builder(memo)
    assert calls(tmp_path) == 8                        # not remembered while it may still change


def test_the_sdk_builders_notice_is_said_once_however_many_builds(tmp_path, monkeypatch):
    import threading
    monkeypatch.setattr(docker_build, "_builder", docker_build.Builder("sdk", notice="no CLI: legacy builder"))
    monkeypatch.setattr(docker_build, "_network_mode", lambda: None)
    monkeypatch.setattr(docker_build, "_sdk_build", lambda *a, **k: "sha256:0")
    start, said = threading.Barrier(8), []

    def build():
        start.wait()
        docker_build.build(config(tmp_path), "t", {}, out=said.append)
    threads = [threading.Thread(target=build) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert said == ["no CLI: legacy builder"]


def test_no_usable_cli_falls_back_to_the_sdk_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert docker_build.find_builder().notice == docker_build.NO_CLI_NOTICE
    docker_build._builder = None
    fake_docker(tmp_path / "new", "28.2.2", buildx=False)
    monkeypatch.setenv("PATH", str(tmp_path / "new"))
    b = docker_build.find_builder()
    assert b.kind == "sdk" and "no buildx plugin" in b.notice and "legacy builder" in b.notice


def test_command_line_carries_copilots_flags_and_keeps_build_arg_values_out_of_argv(tmp_path):
    cfg = config(tmp_path, args={"TOKEN": "s3cret", "PATH": "/opt/bin"}, target="prod", platform="linux/arm64",
                 cache_from=["repo:cache"])
    b = docker_build.Builder("buildkit", "/usr/bin/docker", "20.10.24")
    argv, env = docker_build.cli_command(b, cfg, "copilot-doit-test/x:1", {"b": "2", "a": "1"}, "/tmp/iid", "host")
    assert argv[:2] == ["/usr/bin/docker", "build"] and env["DOCKER_BUILDKIT"] == "1"
    assert "s3cret" not in " ".join(argv) and env["TOKEN"] == "s3cret"
    assert ["--build-arg", "TOKEN"] == argv[argv.index("TOKEN") - 1:argv.index("TOKEN") + 1]
    assert "PATH=/opt/bin" in argv and env["PATH"] == os.environ["PATH"]  # a name the CLI reads stays on argv
    for flag in (["--progress=plain"], ["--iidfile", "/tmp/iid"], ["-t", "copilot-doit-test/x:1"],
                 ["--cache-from", "repo:cache"], ["--target", "prod"], ["--platform", "linux/arm64"],
                 ["--network=host"], ["-f", str(tmp_path / "Dockerfile"), str(tmp_path)]):
        i = argv.index(flag[0])
        assert argv[i:i + len(flag)] == flag
    assert argv.index("--label") < argv.index("--build-arg") and argv[argv.index("--label") + 1] == "a=1"
    bx, _ = docker_build.cli_command(docker_build.Builder("buildx", "docker", "28"), cfg, "t", {}, "i", None)
    assert bx[1:4] == ["buildx", "build", "--load"] and not any(a.startswith("--network") for a in bx)


def test_network_mode_follows_the_engine(monkeypatch):
    from copilot_doit import engine
    monkeypatch.setattr(engine, "has_network", lambda name: False)
    assert docker_build._network_mode() == "host"
    monkeypatch.setattr(engine, "has_network", lambda name: name == "bridge")
    assert docker_build._network_mode() is None


def test_failure_explanations_name_the_line(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY a /a\nRUN <<EOF\necho hi\nEOF\nCOPY --chmod=755 b /b\n")
    cfg = config(tmp_path)
    heredoc = docker_build.explain_failure(cfg, ["failed to solve with frontend dockerfile.v0: failed to create "
                                                 "LLB definition: dockerfile parse error line 4: unknown instruction: ECHO"])
    assert heredoc.endswith("Dockerfile:3: heredocs (RUN <<EOF) " + FRONTEND.format(s=""))
    flag = docker_build.explain_failure(cfg, ["dockerfile parse error line 6: Unknown flag: chmod"])
    assert flag.endswith("Dockerfile:6: COPY --chmod " + FRONTEND.format(s="s"))


# --- e2e: the real engine ------------------------------------------------------------------------------

@pytest.fixture
def engine_up():
    from copilot_doit import engine
    try:
        engine.image_id("copilot-doit-probe:none")
    except ServiceUnavailable as exc:
        missing(f"Docker engine: {exc}")
    if not shutil.which("docker"):
        missing("the docker CLI is not installed")
    if not BUSYBOX:
        missing("busybox (busybox-static) is not installed")


@pytest.fixture
def images(engine_up):
    """Tags to build under copilot-doit-test/, removed at the end."""
    made: list[str] = []

    def tag(name: str) -> str:
        t = f"copilot-doit-test/{name}:{uuid.uuid4().hex[:8]}"
        made.append(t)
        return t
    yield tag
    if made:
        subprocess.run(["docker", "rmi", "-f", *made], capture_output=True, timeout=120)


def context(tmp_path: Path, dockerfile: str, *, busybox: bool = True) -> Path:
    ctx = tmp_path / ("ctx-" + uuid.uuid4().hex[:6])
    ctx.mkdir()
    if busybox:
        shutil.copy(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def inspect(ref: str) -> dict:
    out = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def engine_major() -> int:
    out = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                         text=True).stdout.strip()
    return int(out.split(".")[0]) if out[:1].isdigit() else 0


BUSYBOX_BASE = 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'


@pytest.mark.e2e
def test_run_mount_cache_builds_streams_output_and_labels_the_image(tmp_path, images):
    ctx = context(tmp_path, BUSYBOX_BASE + "ARG GREETING\n"
                  "RUN --mount=type=cache,target=/root/.cache echo cached > /root/.cache/x && cat /root/.cache/x "
                  '&& test "$GREETING" = "hello world"\n')
    lines: list[str] = []
    tag = images("cache-mount")
    image_id = docker_build.build(config(ctx, args={"GREETING": "hello world"}), tag, {"com.example.a": "1"},
                                  out=lines.append)
    assert image_id.startswith("sha256:") and inspect(tag)["Id"] == image_id
    assert inspect(tag)["Config"]["Labels"] == {"com.example.a": "1"}
    assert lines and all(line.startswith("  ") for line in lines)
    assert any("cached" in line for line in lines)


@pytest.mark.e2e
def test_multi_stage_copy_from_and_target(tmp_path, images):
    ctx = context(tmp_path, BUSYBOX_BASE.replace("FROM scratch", "FROM scratch AS tools") +
                  "RUN echo built > /artifact\n"
                  "FROM scratch AS final\nCOPY --from=tools /artifact /artifact\nCOPY --from=tools /bin/busybox /bin/cat\n"
                  "FROM final AS unused\nCOPY busybox /never\n")
    tag = images("multi-stage")
    docker_build.build(config(ctx, target="final"), tag, {}, quiet=True)
    out = subprocess.run(["docker", "run", "--rm", "--network=none", tag, "/bin/cat", "/artifact"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "built", out.stderr


@pytest.mark.e2e
def test_heredoc_fails_with_one_sentence_naming_the_line(tmp_path, images):
    ctx = context(tmp_path, BUSYBOX_BASE + "RUN <<EOF\necho hi\nEOF\n")
    if engine_major() >= 23:  # BuildKit 0.10+ frontends accept heredocs
        docker_build.build(config(ctx), images("heredoc"), {}, quiet=True)
        return
    with pytest.raises(StageFailed) as err:
        docker_build.build(config(ctx), images("heredoc"), {}, quiet=True)
    assert str(err.value) == (f"{ctx / 'Dockerfile'}:4: heredocs (RUN <<EOF) need a newer Dockerfile frontend "
                              "than this engine's built-in one")


@pytest.mark.e2e
def test_copy_link_fails_with_one_sentence_naming_the_line(tmp_path, images):
    ctx = context(tmp_path, "FROM scratch\n\nCOPY --link busybox /bin/busybox\n")
    if engine_major() >= 23:
        docker_build.build(config(ctx), images("link"), {}, quiet=True)
        return
    with pytest.raises(StageFailed) as err:
        docker_build.build(config(ctx), images("link"), {}, quiet=True)
    assert str(err.value) == (f"{ctx / 'Dockerfile'}:3: COPY --link needs a newer Dockerfile frontend than this "
                              "engine's built-in one")


@pytest.mark.e2e
def test_unpullable_syntax_frontend_fails_naming_the_line(tmp_path, images):
    ctx = context(tmp_path, "# syntax=127.0.0.1:9/nowhere/dockerfile:1\nFROM scratch\nCOPY busybox /b\n")
    with pytest.raises(StageFailed) as err:
        docker_build.build(config(ctx), images("syntax"), {}, quiet=True)
    message = str(err.value)
    assert message.startswith(f"{ctx / 'Dockerfile'}:1: the Dockerfile frontend image "
                              "'127.0.0.1:9/nowhere/dockerfile:1' named by '# syntax=' cannot be pulled (")
    assert message.endswith("remove the line to build with this engine's built-in frontend")
    assert "\n" not in message


@pytest.mark.e2e
def test_arm64_from_scratch_copy_comes_out_arm64(tmp_path, images):
    ctx = context(tmp_path, "FROM scratch\nCOPY busybox /bin/busybox\n")
    tag = images("arm64")
    image_id = docker_build.build(config(ctx, platform="linux/arm64"), tag, {}, quiet=True)
    got = inspect(tag)
    assert (got["Id"], got["Os"], got["Architecture"]) == (image_id, "linux", "arm64")


def arm64_true() -> bytes:
    """A 132-byte static aarch64 ELF that exits 0: something only arm64 (or QEMU) can execute."""
    code = struct.pack("<III", 0xd2800000, 0xd2800ba8, 0xd4000001)  # mov x0,#0; mov x8,#93 (exit); svc #0
    base, ehsize, phsize = 0x400000, 64, 56
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 183, 1, base + ehsize + phsize, ehsize, 0, 0, ehsize, phsize, 1, 0, 0, 0)
    size = ehsize + phsize + len(code)
    return header + struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000) + code


def arm64_runs_here() -> bool:
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    emulated = binfmt.is_dir() and any("aarch64" in p.name or "arm64" in p.name for p in binfmt.iterdir())
    return emulated or os.uname().machine in ("aarch64", "arm64")


@pytest.mark.e2e
def test_arm64_run_without_emulation_fails_naming_the_platform(tmp_path, images):
    if arm64_runs_here():
        pytest.skip("this host can execute arm64 programs (native or QEMU binfmt)")
    ctx = context(tmp_path, "FROM scratch\nCOPY true /true\n# the step below needs an arm64 CPU\nRUN [\"/true\"]\n",
                  busybox=False)
    (ctx / "true").write_bytes(arm64_true())
    (ctx / "true").chmod(0o755)
    with pytest.raises(StageFailed) as err:
        docker_build.build(config(ctx, platform="linux/arm64"), images("arm64-run"), {}, quiet=True)
    assert str(err.value).startswith(f"{ctx / 'Dockerfile'}:4: this RUN step executes linux/arm64 programs and "
                                     "the engine has no emulation for linux/arm64 (exec format error)")


@pytest.mark.e2e
def test_failing_step_raises_stage_failed_with_its_last_lines(tmp_path, images):
    ctx = context(tmp_path, BUSYBOX_BASE + "RUN echo first-clue && echo last-clue && exit 3\n")
    with pytest.raises(StageFailed) as err:
        docker_build.build(config(ctx), images("fails"), {}, quiet=True)
    message = str(err.value)
    assert message.startswith(f"docker build of {ctx / 'Dockerfile'} failed: ") and "exit code: 3" in message
    assert "  | first-clue\n  | last-clue" in message and "Traceback" not in message


@pytest.mark.e2e
def test_sdk_fallback_says_so_once_and_rejects_run_mount_by_line(tmp_path, images, monkeypatch):
    monkeypatch.setattr(docker_build, "_docker_executables", lambda: [])  # as if no CLI were installed
    said: list[str] = []
    ctx = context(tmp_path, BUSYBOX_BASE + "RUN echo legacy > /x\n")
    tag = images("sdk")
    image_id = docker_build.build(config(ctx), tag, {"com.example.b": "2"}, quiet=True, out=said.append)
    assert inspect(tag)["Id"] == image_id and inspect(tag)["Config"]["Labels"] == {"com.example.b": "2"}
    ctx2 = context(tmp_path, BUSYBOX_BASE + "RUN --mount=type=cache,target=/c echo x\n")
    with pytest.raises(StageFailed) as err:
        docker_build.build(config(ctx2), images("sdk-mount"), {}, quiet=True, out=said.append)
    assert said == [docker_build.NO_CLI_NOTICE]
    assert str(err.value) == (f"{ctx2 / 'Dockerfile'}:4: RUN --mount needs BuildKit, which the docker SDK's "
                              "legacy builder lacks (install the docker CLI)")
    ctx3 = context(tmp_path, "FROM scratch\nCOPY busybox /bin/busybox\n")
    arm = images("sdk-arm64")
    try:  # this engine's legacy builder ignores the platform of a FROM scratch build
        docker_build.build(config(ctx3, platform="linux/arm64"), arm, {}, quiet=True, out=said.append)
        assert inspect(arm)["Architecture"] == "arm64"  # an engine whose legacy builder honours it
        return
    except StageFailed as exc:
        err = exc
    assert str(err) == (f"{ctx3 / 'Dockerfile'}: the docker SDK's legacy builder made a linux/amd64 image "
                              "instead of linux/arm64 (it cannot target another platform): install the docker CLI "
                              "to build with BuildKit")
    assert subprocess.run(["docker", "image", "inspect", arm], capture_output=True).returncode != 0
    assert said == [docker_build.NO_CLI_NOTICE]


@pytest.mark.e2e
def test_a_dead_engine_fails_at_once_with_its_message(tmp_path, engine_up, monkeypatch):
    ctx = context(tmp_path, "FROM scratch\nCOPY busybox /b\n")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/dead.sock")
    with pytest.raises(UserError, match="does not answer"):
        docker_build.build(config(ctx), "copilot-doit-test/dead:1", {}, quiet=True)
    monkeypatch.setattr(docker_build, "_network_mode", lambda: None)  # past the probe: the CLI's own words
    with pytest.raises(StageFailed, match="(?i)cannot connect to the Docker daemon"):
        docker_build.build(config(ctx), "copilot-doit-test/dead:1", {}, quiet=True, timeout=60)


def test_module_import_is_light():
    code = "import sys, copilot_doit.docker_build; print(sorted(m for m in ('boto3', 'docker') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
