"""Stage 1, build: the workload's Dockerfile into an image in the local engine.

key:   Dockerfile bytes, the context tree after `.dockerignore` (the docker SDK's matcher), build args,
       target, platform, labels, and the ids of the `FROM` images present in the engine (pulling a newer
       base changes the key). Not the checkout's location, not mtimes.
apply: docker SDK build (legacy builder), tagged `copilot-doit/<app>-<name>:ck-<key>` so it is not
       dangling. Result: {"image_id"}.
"""
from __future__ import annotations

import re
import sys

from . import engine
from .aws import log_api
from .errors import StageFailed
from .hashing import Key, StatCache, context_entries, digest_bytes, tree_digest
from .manifest import BuildConfig

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


def apply(cfg: BuildConfig, app: str, workload: str, k: Key, quiet: bool = False) -> dict:
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
