"""Stage 1, build: the workload's Dockerfile into an image in the local engine.

key:    Dockerfile bytes, the context tree after `.dockerignore` (the docker SDK's matcher), build args,
        target, platform, labels, and the ids of the `FROM` images present in the engine (pulling a newer
        base changes the key). Not the checkout's location, not mtimes.
status: up to date when the key has a result and that image is still in the engine, or (built
        elsewhere) the registry holds the content tag `ck-<key>`.
run:    docker SDK build (legacy builder), tagged `copilot-doit/<app>-<name>:ck-<key>` so it is not
        dangling. Result: {"image_id"}.
"""
from __future__ import annotations

import os
import re
import sys

from .. import engine
from ..audit import log_api
from ..errors import StageFailed
from ..hashing import Key, StatCache, changed_paths, context_entries, digest_bytes, tree_digest
from ..manifest import BuildConfig
from ..session import Session
from ..words import few, plural
from .base import Status, stage_id

SALT = "build/1"
LABEL_BUILDER = "com.aws.copilot.image.builder"
LABEL_CONTAINER = "com.aws.copilot.image.container.name"

_ARG = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}?")


def base_images(dockerfile_text: str, build_args: dict) -> list[str]:
    """Images named by FROM lines (ARG-expanded), minus `scratch` and earlier stage names."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    out: list[str] = []
    seen_from = False
    text = re.sub(r"\\\n", " ", dockerfile_text)
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not seen_from:
            name, _, default = rest.strip().partition("=")
            args[name.strip()] = build_args.get(name.strip(), default.strip().strip('"'))
        elif word == "FROM":
            seen_from = True
            parts = [p for p in rest.split() if not p.startswith("--")]
            if not parts:
                continue
            image = _ARG.sub(lambda m: args.get(m.group(1), m.group(2) or ""), parts[0])
            if len(parts) >= 3 and parts[1].lower() == "as":
                stages.add(parts[2].lower())
            if image.lower() != "scratch" and image.lower() not in stages and image not in out:
                out.append(image)
    return out


def labels(workload: str) -> dict:
    return {LABEL_BUILDER: "copilot-doit", LABEL_CONTAINER: workload}


def key(cfg: BuildConfig, workload: str, stat_cache: StatCache) -> tuple[Key, dict]:
    """(key, description of the inputs for explanations). Reads the engine for FROM image ids."""
    dockerfile_bytes = cfg.dockerfile.read_bytes()
    entries = context_entries(str(cfg.context), cfg.dockerfile_in_context(), stat_cache)
    bases = {ref: engine.image_id(ref) for ref in base_images(dockerfile_bytes.decode(errors="replace"), cfg.args)}
    inputs = {
        "dockerfile": digest_bytes(dockerfile_bytes),
        "dockerfile_name": cfg.dockerfile_in_context() or cfg.dockerfile.name,
        "context": tree_digest(entries),
        "args": dict(sorted(cfg.args.items())),
        "target": cfg.target,
        "platform": cfg.platform,
        "labels": labels(workload),
        "base_images": bases,
    }
    return Key.of(SALT, inputs), {**inputs, "context_entries": entries}


def local_tag(app: str, workload: str, k: Key) -> tuple[str, str]:
    return f"copilot-doit/{app}-{workload}", f"ck-{k.hex}"


def build_image(cfg: BuildConfig, app: str, workload: str, k: Key, quiet: bool = False) -> dict:
    c = engine.client()
    repo, tag = local_tag(app, workload, k)
    dockerfile = cfg.dockerfile_in_context() or str(cfg.dockerfile)
    log_api("docker", "Build", "engine")
    image = None
    try:
        stream = c.api.build(path=str(cfg.context), dockerfile=dockerfile, tag=f"{repo}:{tag}", buildargs=cfg.args,
                             target=cfg.target, platform=cfg.platform, labels=labels(workload),
                             cache_from=cfg.cache_from or None, rm=True, forcerm=True, decode=True)
        for chunk in stream:
            if "error" in chunk:
                raise StageFailed(f"docker build of {workload} failed: {chunk['error'].strip()}")
            if "stream" in chunk and not quiet:
                text = chunk["stream"].rstrip()
                if text:
                    print(f"  {text}")
            aux = chunk.get("aux") or {}
            if "ID" in aux:
                image = aux["ID"]
    except StageFailed:
        raise
    except Exception as exc:  # docker.errors.APIError / BuildError: the engine's own words
        raise StageFailed(f"docker build of {workload} failed: {exc}") from None
    if not image:
        image = engine.image_id(f"{repo}:{tag}")
    if not image:
        raise StageFailed(f"docker build of {workload} reported no image id")
    sys.stdout.flush()
    return {"image_id": image, "local_ref": f"{repo}:{tag}"}


def explain(old: dict, new: dict) -> list[str]:
    parts = []
    files = changed_paths(old.get("context_entries") or [], new.get("context_entries") or [])
    if files:
        parts.append(f"{len(files)} context {plural(len(files), 'file')} changed: {few(files)}")
    if old.get("dockerfile") != new.get("dockerfile"):
        parts.append("Dockerfile changed")
    for field in ("args", "target", "platform", "labels"):
        if old.get(field) != new.get(field):
            parts.append(f"build {field} changed")
    for ref, iid in (new.get("base_images") or {}).items():
        before = (old.get("base_images") or {}).get(ref)
        if before != iid:
            parts.append(f"base image {ref} is now {(iid or 'absent')[:19]} (was {(before or 'absent')[:19]})")
    return parts


def status(s: Session, name: str, env: str) -> Status:
    def compute():
        m = s.manifests[(name, env)]
        cfg = m.build_config(s.ws.root)
        if cfg is None:
            return Status(False, f"nothing to build: image.location {m.image.get('location')}", None,
                          {"location": m.image.get("location")})
        k, inputs = key(cfg, name, s.stat_cache)
        rec = s.cache.get_action("build", k)
        if rec:
            if engine.image_id(rec["result"]["image_id"]):
                return Status(False, f"image {rec['result']['image_id'][:19]} built from the same inputs is in the engine",
                              k, rec["result"], inputs)
        # Built elsewhere (another runner, or this engine was pruned): the registry has its content tag.
        repo_name = s.repository_name(name)
        digest = s.target(env).tag_digest(repo_name, f"ck-{k.hex}")
        if digest:
            return Status(False, f"not in this engine, but registry {repo_name} has its content tag "
                                 f"ck-{k.short}… ({digest[:19]})", k,
                          {"image_id": rec["result"]["image_id"] if rec else None, "digest": digest}, inputs)
        if rec:
            return Status(True, f"image {rec['result']['image_id'][:19]} was removed from the engine", k, None, inputs)
        return Status(True, s.why("build", stage_id("build", name, env), inputs, k, explain), k, None, inputs)
    return s.memo(("build", name, env), compute)


def run(s: Session, name: str, env: str) -> dict:
    st = status(s, name, env)
    if not st.run:
        return st.result
    m = s.manifests[(name, env)]
    cfg = m.build_config(s.ws.root)
    print(f"building {name} from {os.path.relpath(cfg.dockerfile, s.ws.root)}: {st.reason}")
    result = build_image(cfg, s.ws.app, name, st.key)
    s.record("build", stage_id("build", name, env), st.key, result, st.inputs)
    s.changed()
    return result
