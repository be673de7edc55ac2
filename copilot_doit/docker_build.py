"""Build an image as Copilot does: `docker build` through the Docker CLI, with BuildKit.

    build(cfg, tag, labels, quiet=False, out=print) -> "sha256:…"   the image id (from --iidfile)
    find_builder(memo) -> Builder                                   which CLI and how (memoised per process, and
                                                                    in `memo` while the CLIs stay as they are)

Which builder, in order:
  - a `docker` CLI with the buildx plugin: `docker buildx build --load` (what `docker build` is on Docker 23+);
  - a `docker` CLI older than 23 (Debian's docker.io 20.10): `DOCKER_BUILDKIT=1 docker build`. A CLI of 23 or
    later without buildx refuses DOCKER_BUILDKIT=1, so the other `docker` executables on PATH are tried too;
  - no usable CLI: the docker SDK's legacy builder (no `RUN --mount`, no BuildKit), said once per process.

RUN steps get the network the engine can give: `--network=host` when the engine has no `bridge` network
(`dockerd --bridge=none`), the engine's default otherwise.

Failures are StageFailed with one sentence where the cause is known: a Dockerfile feature newer than the
engine's built-in frontend (heredocs, `COPY --link`, any unknown flag), a `# syntax=` frontend image that
cannot be pulled, a RUN step for a platform the engine cannot emulate; else the build's own last error lines.
Build arg values never reach a log: they travel in the CLI's environment (`--build-arg NAME`).
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .audit import log_api
from .base_images import Instruction, instructions, parser_directives
from .errors import StageFailed, _shown_path
from .manifest import BuildConfig
from .values import value

NO_CLI_NOTICE = "docker CLI not found: building with the docker SDK's legacy builder (no BuildKit features)"
FRONTEND_TOO_OLD = "need{s} a newer Dockerfile frontend than this engine's built-in one"
PROBE_TIMEOUT = 20          # seconds for `docker --version` / `docker buildx version`
KEEP_LINES = 400            # output lines kept to explain a failure
SHOWN_LOG_LINES = 10        # lines of the failing step's own output shown in the error


@value(frozen=True)
class Builder:
    kind: str                   # "buildx" | "buildkit" (DOCKER_BUILDKIT=1 docker build) | "sdk"
    cli: str | None = None      # path of the docker executable
    version: str | None = None  # the CLI's version
    notice: str | None = None   # why the SDK builder is used (printed once)


_builder: Builder | None = None
_notice_shown = False
# Parallel builds (-j N) ask at once: without it each of doit's threads probed the CLIs itself (seven
# `docker --version` + `docker buildx version` pairs in a `-j 8` run instead of one). It also guards
# _notice_shown, so the SDK builder's notice is said once.
_FIND_LOCK = threading.Lock()


def _docker_executables() -> list[str]:
    """Every `docker` on PATH, in PATH order, without duplicates (the first one is shutil.which's)."""
    found: list[str] = []
    first = shutil.which("docker")
    if first:
        found.append(first)
    for d in os.environ.get("PATH", "").split(os.pathsep):
        path = shutil.which("docker", path=d) if d else None
        if path and os.path.realpath(path) not in {os.path.realpath(p) for p in found}:
            found.append(path)
    return found


def _run_quietly(argv: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None


def _cli_version(cli: str) -> str | None:
    p = _run_quietly([cli, "--version"])  # client only: answers without the engine
    m = re.search(r"version (\d+\.\d+[^\s,]*)", p.stdout) if p and p.returncode == 0 else None
    return m.group(1) if m else None


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def find_builder(memo: Path | None = None) -> Builder:
    """The first `docker` CLI that can build with BuildKit, else the SDK builder with the reason.
    Probed once per process, however many threads ask; with `memo` (a small JSON file of the cache), once
    per change of what the answer depends on (probe_signature)."""
    if _builder is not None:
        return _builder
    with _FIND_LOCK:
        return _builder if _builder is not None else _probe(memo)


# Where the docker CLI looks for plugins besides $DOCKER_CONFIG/cli-plugins (docker/cli's defaultSystemPluginDirs).
SYSTEM_PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
                      "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")
RACY_SECONDS = 2.0   # a file changed this recently may change again within its mtime's granularity


def probe_signature(clis: list[str]) -> str | None:
    """What the probe's answer depends on: each `docker` on PATH, in order (path, size, mtime, inode: an
    upgrade changes them), the folders the CLI finds plugins in and its config file (their mtimes: a buildx
    installed or removed). None when one of them changed too recently to be trusted (git's racy-clean rule)."""
    config = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    paths = [*clis, os.path.join(config, "cli-plugins"), os.path.join(config, "config.json"), *SYSTEM_PLUGIN_DIRS]
    now, parts = time.time(), []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            parts.append([path])
            continue
        if now - st.st_mtime < RACY_SECONDS:
            return None
        parts.append([path, st.st_size, st.st_mtime_ns, st.st_ino])
    return hashlib.sha256(json.dumps([os.environ.get("DOCKER_CLI_PLUGIN_EXTRA_DIRS"), parts]).encode()).hexdigest()


def _remembered(memo: Path, signature: str, clis: list[str]) -> Builder | None:
    """The memo's answer for `signature`, if it is one (a damaged or foreign file is no answer)."""
    try:
        data = json.loads(memo.read_text())
        if data.get("signature") != signature:
            return None
        b = Builder(**data["builder"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if b.kind not in ("buildx", "buildkit", "sdk") or (b.kind != "sdk" and b.cli not in clis):
        return None
    return b


def _probe(memo: Path | None = None) -> Builder:
    global _builder
    clis = _docker_executables()
    signature = probe_signature(clis) if memo is not None else None
    if signature is not None:
        known = _remembered(memo, signature, clis)
        if known is not None:
            _builder = known
            return _builder
    _builder = _ask_the_clis(clis)
    if signature is not None:
        from .cache import atomic_write
        try:
            atomic_write(memo, json.dumps({"signature": signature, "builder": {
                "kind": _builder.kind, "cli": _builder.cli, "version": _builder.version,
                "notice": _builder.notice}}, sort_keys=True).encode())
        except OSError:
            pass   # asked again next run
    return _builder


def _ask_the_clis(clis: list[str]) -> Builder:
    """Two to four CLI processes (~40 ms each here): `docker buildx version`, `docker --version`."""
    if not clis:
        return Builder("sdk", notice=NO_CLI_NOTICE)
    unusable = []
    for cli in clis:
        buildx = _run_quietly([cli, "buildx", "version"])
        version = _cli_version(cli)
        if buildx is not None and buildx.returncode == 0:
            return Builder("buildx", cli, version)
        if version and _major(version) < 23:  # BuildKit is built into the classic CLI up to 22.x
            return Builder("buildkit", cli, version)
        unusable.append(f"{cli} {version or '(version unknown)'}")
    return Builder("sdk", notice=f"docker CLI {', '.join(unusable)} cannot build with BuildKit (no buildx "
                                 "plugin): building with the docker SDK's legacy builder (no BuildKit features)")


def _network_mode() -> str | None:
    """`host` when the engine has no bridge network (RUN steps would fail: 'network bridge not found')."""
    from . import engine
    return None if engine.has_network("bridge") else "host"


def _cli_env_reserved(name: str) -> bool:
    """Names the CLI itself reads from its environment: their values go on the command line instead."""
    return name in os.environ or name.startswith(("DOCKER_", "BUILDKIT_", "BUILDX_"))


def cli_command(builder: Builder, cfg: BuildConfig, tag: str, labels: dict, iidfile: str,
                network: str | None) -> tuple[list[str], dict]:
    """(argv, environment) of the build. Copilot's flags: -t, --cache-from, --target, --platform, --label,
    --build-arg (sorted), -f, context; plus --progress=plain and --iidfile for us."""
    env = dict(os.environ)
    argv = [builder.cli]
    if builder.kind == "buildx":
        argv += ["buildx", "build", "--load"]
    else:
        argv += ["build"]
        env["DOCKER_BUILDKIT"] = "1"
    argv += ["--progress=plain", "--iidfile", iidfile, "-t", tag]
    for image in cfg.cache_from or []:
        argv += ["--cache-from", image]
    if cfg.target:
        argv += ["--target", cfg.target]
    if cfg.platform:
        argv += ["--platform", cfg.platform]
    for name, value in sorted(labels.items()):
        argv += ["--label", f"{name}={value}"]
    for name, value in sorted((cfg.args or {}).items()):
        if _cli_env_reserved(name):
            argv += ["--build-arg", f"{name}={value}"]
        else:  # `--build-arg NAME` takes the value from the environment: it stays out of argv and logs
            env[name] = str(value)
            argv += ["--build-arg", name]
    if network:
        argv += [f"--network={network}"]
    argv += ["-f", str(cfg.dockerfile), str(cfg.context)]
    return argv, env


def build(cfg: BuildConfig, tag: str, labels: dict, *, quiet: bool = False, out=print,
          timeout: float | None = None, probe_memo: Path | None = None) -> str:
    """Build cfg's Dockerfile into the engine, tagged `tag`; returns the image id `sha256:…`.

    Output lines are streamed prefixed by two spaces unless quiet. No timeout by default (a build may be
    long); a dead engine fails at once (the network probe, then the CLI's own message). `probe_memo`: where
    find_builder keeps its answer between runs.
    """
    global _notice_shown
    builder = find_builder(probe_memo)
    network = _network_mode()
    log_api("docker", "Build", "engine", {"builder": builder.kind})
    if builder.kind == "sdk":
        with _FIND_LOCK:   # once, even when parallel builds get here together
            shown, _notice_shown = _notice_shown, True
        if builder.notice and not shown:
            out(builder.notice)
        return _sdk_build(cfg, tag, labels, network, quiet=quiet, out=out)
    return _cli_build(builder, cfg, tag, labels, network, quiet=quiet, out=out, timeout=timeout)


def _cli_build(builder: Builder, cfg: BuildConfig, tag: str, labels: dict, network: str | None, *,
               quiet: bool, out, timeout: float | None) -> str:
    lines: collections.deque[str] = collections.deque(maxlen=KEEP_LINES)
    with tempfile.TemporaryDirectory(prefix="copilot-doit-build-") as tmp:
        iidfile = os.path.join(tmp, "iid")
        argv, env = cli_command(builder, cfg, tag, labels, iidfile, network)
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, text=True, errors="replace", bufsize=1)
        except OSError as exc:
            raise StageFailed(f"docker build could not start {builder.cli}: {exc.strerror or exc}") from None
        timed_out = threading.Event()
        timer = None
        if timeout:
            def stop():
                timed_out.set()
                proc.kill()
            timer = threading.Timer(timeout, stop)
            timer.daemon = True
            timer.start()
        try:
            for raw in proc.stdout:
                line = raw.rstrip("\n")
                lines.append(line)
                if not quiet:
                    out(f"  {line}")
            code = proc.wait()
        except BaseException:  # Ctrl-C: stop the CLI (it cancels the build) rather than leave it running
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        finally:
            if timer:
                timer.cancel()
            proc.stdout.close()
        if timed_out.is_set():
            raise StageFailed(f"docker build of {_shown_path(str(cfg.dockerfile))} did not finish in {timeout:g} s")
        if code != 0:
            raise StageFailed(explain_failure(cfg, list(lines)))
        image_id = Path(iidfile).read_text().strip() if os.path.exists(iidfile) else ""
    if not image_id.startswith("sha256:"):
        raise StageFailed(f"docker build of {_shown_path(str(cfg.dockerfile))} reported no image id")
    return image_id


def _sdk_build(cfg: BuildConfig, tag: str, labels: dict, network: str | None, *, quiet: bool, out) -> str:
    """The docker SDK's legacy builder (the engine's /build endpoint without BuildKit)."""
    from . import engine
    c = engine.client()
    lines: list[str] = []
    image = None
    try:
        stream = c.api.build(path=str(cfg.context), dockerfile=cfg.dockerfile_in_context() or str(cfg.dockerfile),
                             tag=tag, buildargs=cfg.args, target=cfg.target, platform=cfg.platform,
                             labels=labels, cache_from=cfg.cache_from or None, network_mode=network,
                             rm=True, forcerm=True, decode=True)
        for chunk in stream:
            if "error" in chunk:
                lines.append(chunk["error"].strip())
                raise StageFailed(explain_failure(cfg, lines, final=chunk["error"].strip()))
            for line in (chunk.get("stream") or "").rstrip().splitlines():
                lines.append(line)
                if not quiet:
                    out(f"  {line}")
            aux = chunk.get("aux") or {}
            if "ID" in aux:
                image = aux["ID"]
    except StageFailed:
        raise
    except Exception as exc:  # docker.errors.APIError / BuildError: the engine's own words
        message = getattr(exc, "explanation", None) or str(exc)
        lines.append(str(message))
        raise StageFailed(explain_failure(cfg, lines, final=str(message))) from None
    if not image:
        image = engine.image_id(tag)
    if not image:
        raise StageFailed(f"docker build of {_shown_path(str(cfg.dockerfile))} reported no image id")
    _check_platform(cfg, tag, image)
    return image


def _check_platform(cfg: BuildConfig, tag: str, image: str) -> None:
    """The legacy builder ignores `--platform` for FROM scratch (checked: an arm64 request gave amd64):
    never leave such an image under the build's tag, where it would pass for a finished build."""
    if not cfg.platform:
        return
    from . import engine
    info = engine.inspect_image(image) or {}
    os_, _, rest = cfg.platform.partition("/")
    arch, _, variant = rest.partition("/")
    got_variant = info.get("Variant") or ""
    if (info.get("Os"), info.get("Architecture")) == (os_, arch) and variant in ("", got_variant):
        return
    got = "/".join(p for p in (info.get("Os"), info.get("Architecture"), got_variant) if p)
    try:
        engine.client().api.remove_image(tag)
    except Exception:  # the error below is what matters; a leftover tag is re-checked by the next build
        pass
    raise StageFailed(f"{_shown_path(str(cfg.dockerfile))}: the docker SDK's legacy builder made a {got} image "
                      f"instead of {cfg.platform} (it cannot target another platform): install the docker "
                      "CLI to build with BuildKit")


# --- explaining a failure ------------------------------------------------------------------------------

_PARSE_ERROR = re.compile(r"dockerfile parse error (?:on )?line (\d+): (.+?)\s*$", re.IGNORECASE)
_UNKNOWN_FLAG = re.compile(r"unknown flag: -*([A-Za-z0-9_-]+)", re.IGNORECASE)
_VERTEX_LOG = re.compile(r"^#(\d+) \d+\.\d+ (.*)$")
_VERTEX_LINE = re.compile(r"^#(\d+) (.*)$")
_LEGACY_NOISE = re.compile(r"^(--->|Removing intermediate container|Step \d+/\d+ : (?!RUN))")


def _vertices(lines: list[str]) -> tuple[dict[str, str], dict[str, list[str]], list[str]]:
    """BuildKit's plain progress: (vertex name by number, log lines by number, numbers that errored)."""
    names: dict[str, str] = {}
    logs: dict[str, list[str]] = collections.defaultdict(list)
    errored: list[str] = []
    for line in lines:
        m = _VERTEX_LOG.match(line)
        if m:
            logs[m.group(1)].append(m.group(2))
            continue
        m = _VERTEX_LINE.match(line)
        if not m:
            continue
        number, text = m.groups()
        if text.startswith("ERROR"):
            errored.append(number)
        elif number not in names and not text.startswith(("sha256:", "DONE", "CACHED")):
            names[number] = text
    return names, logs, errored


def _final_error(lines: list[str]) -> str:
    """The error the CLI ends with: the first line after BuildKit's last `------` block, else the last line."""
    tail = [line for line in lines if line.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() == "------":
            after = [line.strip() for line in lines[i + 1:] if line.strip()
                     and not re.match(r"^\s*(\d+ \||>>>|-{4,}|Dockerfile:\d+$)", line)]
            if after:
                return after[-1] if after[-1].startswith("ERROR") else after[0]
            break
    return tail[-1].strip() if tail else "no output"


def _instruction_at(ins_list: list[Instruction], line: int) -> Instruction | None:
    """The instruction a line belongs to (its own, a continuation, or a heredoc body)."""
    found = None
    for ins in ins_list:
        if ins.line <= line:
            found = ins
    return found


def _run_line(ins_list: list[Instruction], vertex_name: str) -> Instruction | None:
    """The RUN instruction a BuildKit step name (`[stage 2/3] RUN …`) came from."""
    command = re.sub(r"^\[[^\]]*\]\s*", "", vertex_name).strip()
    if not command.upper().startswith("RUN"):
        return None
    wanted = " ".join(command[3:].split())
    for ins in ins_list:
        if ins.keyword == "RUN" and " ".join(ins.rest.split()) == wanted:
            return ins
    runs = [ins for ins in ins_list if ins.keyword == "RUN"]
    return runs[0] if len(runs) == 1 else None


def _stage_platform(ins_list: list[Instruction], ins: Instruction | None) -> str | None:
    """The `FROM --platform=` of the stage an instruction belongs to."""
    platform = None
    for each in ins_list:
        if ins and each.line > ins.line:
            break
        if each.keyword == "FROM":
            m = re.search(r"--platform=(\S+)", each.rest)
            platform = m.group(1) if m else None
    return platform


def explain_failure(cfg: BuildConfig, lines: list[str], final: str | None = None) -> str:
    """One sentence for the causes we know, naming the Dockerfile line; else the build's last error lines."""
    path = _shown_path(str(cfg.dockerfile))
    try:
        text = cfg.dockerfile.read_text(errors="replace")
    except OSError:
        text = ""
    ins_list = instructions(text)
    final = final or _final_error(lines)
    everything = "\n".join(lines)

    m = _PARSE_ERROR.search(final) or _PARSE_ERROR.search(everything)
    if m:
        line, message = int(m.group(1)), m.group(2)
        ins = _instruction_at(ins_list, line)
        if ins and ins.heredocs:
            return f"{path}:{ins.line}: heredocs ({ins.keyword} <<{ins.heredocs[0]}) " + FRONTEND_TOO_OLD.format(s="")
        flag = _UNKNOWN_FLAG.search(message)
        if flag:
            keyword = ins.keyword if ins and ins.line == line else "this instruction"
            return f"{path}:{line}: {keyword} --{flag.group(1)} " + FRONTEND_TOO_OLD.format(s="s")
        return f"{path}:{line}: {message} (the engine's Dockerfile parser)"

    syntax = parser_directives(text).get("syntax")
    names, logs, errored = _vertices(lines)
    if syntax:
        frontend = syntax[1]
        image_name = frontend.split("@")[0].split(":")[0]
        failed_names = " ".join(names.get(n, "") for n in errored)
        if (("resolve image config" in failed_names or "load metadata" in failed_names) and image_name in failed_names) \
                or ("frontend gateway" in final and image_name in final):
            reason = final.split("failed to do request: ")[-1] if "failed to do request: " in final else final
            return (f"{path}:{syntax[0]}: the Dockerfile frontend image '{frontend}' named by '# syntax=' cannot be "
                    f"pulled ({reason}); remove the line to build with this engine's built-in frontend")

    if "exec format error" in everything:
        step = next((names[n] for n in errored if "RUN" in names.get(n, "")), None)
        ins = _run_line(ins_list, step) if step else next((i for i in ins_list if i.keyword == "RUN"), None)
        where = f"{path}:{ins.line}" if ins else path
        platform = cfg.platform or _stage_platform(ins_list, ins)
        if not platform:
            return (f"{where}: this RUN step executes programs built for another CPU architecture than the "
                    "engine's, which has no emulation for it (exec format error)")
        return (f"{where}: this RUN step executes {platform} programs and the engine has no emulation for "
                f"{platform} (exec format error): install QEMU binfmt handlers (qemu-user-static) on the "
                f"engine's host, or build on a {platform} engine")

    if "--mount option requires BuildKit" in everything:
        ins = next((i for i in ins_list if i.keyword == "RUN" and "--mount" in i.rest), None)
        where = f"{path}:{ins.line}" if ins else path
        return f"{where}: RUN --mount needs BuildKit, which the docker SDK's legacy builder lacks (install the docker CLI)"

    shown: list[str] = []
    for number in errored[-1:]:
        shown = [line for line in logs.get(number, []) if line.strip()][-SHOWN_LOG_LINES:]
    if not names and not shown:  # not BuildKit output (legacy builder, or the CLI itself failed): last lines
        shown = [line.strip() for line in lines if line.strip() and not _LEGACY_NOISE.match(line.strip())]
        shown = [line for line in shown if line != final.strip()][-SHOWN_LOG_LINES:]
    detail = "".join(f"\n  | {line}" for line in shown)
    return f"docker build of {path} failed: {final}{detail}"
