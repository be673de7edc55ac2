"""Stage 1, build: the workload's Dockerfile into an image in the local engine.

key:    Dockerfile bytes, the context tree after `.dockerignore` (the docker SDK's matcher), build args
        (as digests: values never reach the cache), target, platform, labels, and the base images by
        repository digest (`FROM name:tag` resolved through the engine's RepoDigests, a remembered
        answer, or a registry HEAD; see base_images.py), so every machine computes the same key whether
        or not it has pulled the base. Not the checkout's location, not mtimes.
status: up to date when the key has a result and that image is still in the engine, or (built
        elsewhere) the registry holds the content tag `ck-<key>`.
run:    `docker build` through the Docker CLI with BuildKit (docker_build.py; the SDK's legacy builder
        when no CLI is found), tagged `copilot-doit/<app>-<name>:ck-<key>` so it is not dangling.
        Result: {"image_id", "local_ref"}.
"""
from __future__ import annotations

import os
from pathlib import Path

from .. import engine, git
from ..base_images import BaseImageMemo, resolve_all
from ..audit import log_api
from ..errors import ServiceUnavailable
from ..hashing import (Key, StatCache, changed_paths, context_entries, context_snapshot, digest_bytes, digest_value,
                       tree_digest)
from ..manifest import BuildConfig
from ..session import Session
from ..words import few, plural
from .base import Status, stage_id

SALT = "build/1"
LABEL_BUILDER = "com.aws.copilot.image.builder"
LABEL_CONTAINER = "com.aws.copilot.image.container.name"


def labels(workload: str) -> dict:
    return {LABEL_BUILDER: "copilot-doit", LABEL_CONTAINER: workload}


def _engine_inspect_or_none(ref: str) -> dict | None:
    """The engine's view of a base image; an engine that does not answer has no copy (the memo or
    the registry then answer, so a plan or an up-to-date deploy does not need the engine)."""
    try:
        return engine.inspect_image(ref)
    except ServiceUnavailable:
        return None


def key(cfg: BuildConfig, workload: str, stat_cache: StatCache, memo: BaseImageMemo | None = None,
        registry_head=None, tree: str | None = None) -> tuple[Key, dict]:
    """(key, description of the inputs for explanations). Given the context's tree digest (`tree`, what an
    up-to-date check needs: `context_digest`), the description lacks the context's entries (`with_entries`
    adds them); without it, the entries are listed and digested here."""
    dockerfile_bytes = cfg.dockerfile.read_bytes()
    listed = None
    if tree is None:
        listed = context_entries(str(cfg.context), cfg.dockerfile_in_context(), stat_cache)
        tree = tree_digest(listed)
    bases = resolve_all(dockerfile_bytes.decode(errors="replace"), cfg.args, memo, platform=cfg.platform,
                        engine_inspect=_engine_inspect_or_none, registry_head=registry_head)
    inputs = {
        "dockerfile": digest_bytes(dockerfile_bytes),
        "dockerfile_name": cfg.dockerfile_in_context() or cfg.dockerfile.name,
        "context": tree,
        # Digests only: a build arg may carry a secret from ${VAR}, and inputs are kept in the cache.
        "args": {k: digest_value(v) for k, v in sorted(cfg.args.items())},
        "target": cfg.target,
        "platform": cfg.platform,
        "labels": labels(workload),
        "base_images": {ref: r.get("digest") or r.get("image_id") for ref, r in bases.items()},
    }
    notes = {ref: r["note"] for ref, r in bases.items() if r.get("note")}
    described = {**inputs, "base_notes": notes}
    if listed is not None:
        described["context_entries"] = listed
    return Key.of(SALT, inputs), described


def context_digest(s: Session, cfg: BuildConfig) -> str:
    """The context's tree digest, once per run for each context and Dockerfile name."""
    return _context(s, cfg)[1]


def _context(s: Session, cfg: BuildConfig) -> tuple[list | None, str]:
    """The context's (entries or None, tree digest) as hashed once per run (`hashing.context_snapshot`)."""
    dockerfile_in_context = cfg.dockerfile_in_context()
    return s.memo(("context-tree", str(cfg.context), dockerfile_in_context),
                  lambda: context_snapshot(str(cfg.context), dockerfile_in_context, s.stat_cache))


def hash_context(s: Session, name: str, env: str) -> bool:
    """Compute the workload's context digest ahead of its checks (stages.prefetch). True when its files were
    listed anew (the context changed since its last hashing, or was never hashed): that workload's build is
    likely to run. A failure is left for the status to report."""
    try:
        cfg = s.manifests[(name, env)].build_config(s.ws.root)
        if cfg is not None:
            return _context(s, cfg)[0] is not None
    except Exception:  # noqa: BLE001 — the status asks again and reports it in its words
        pass
    return False


def with_entries(s: Session, cfg: BuildConfig, inputs: dict) -> dict:
    """The description with the context's entries (what an explanation and a record need): those its
    digest was computed from in this run when that hashing listed them (a changed context: listed once,
    not again — its edited files would be read again too, being racy for a second), else listed now."""
    if "context_entries" not in inputs:
        listed = _context(s, cfg)[0]
        inputs["context_entries"] = listed if listed is not None else \
            context_entries(str(cfg.context), cfg.dockerfile_in_context(), s.stat_cache)
    return inputs


def local_repository(app: str, workload: str) -> str:
    """The engine-side name of a workload's built images (`*` for every workload's: a filter pattern)."""
    return f"copilot-doit/{app}-{workload}"


def local_tag(app: str, workload: str, k: Key) -> tuple[str, str]:
    return local_repository(app, workload), f"ck-{k.hex}"


def build_image(cfg: BuildConfig, app: str, workload: str, k: Key, quiet: bool = False,
                probe_memo: Path | None = None) -> dict:
    from .. import docker_build, live  # here: a no-op builds nothing
    repo, tag = local_tag(app, workload, k)
    image = docker_build.build(cfg, f"{repo}:{tag}", labels(workload), quiet=quiet, out=live.display().build_line,
                               probe_memo=probe_memo)
    return {"image_id": image, "local_ref": f"{repo}:{tag}"}


def base_memo(s: Session) -> BaseImageMemo:
    """One memo of base-image digests per run, written back when the run ends."""
    def make():
        memo = BaseImageMemo(s.cache_root / "base-images.json")
        s.on_flush(memo.flush)
        return memo
    return s.once("base-images", make)


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


def _registry_head(s: Session, env: str):
    """How a base image missing from the engine is asked of its registry: ECR through this
    environment's credentials (boto3, loaded only then)."""
    from ..base_images import registry_digest
    return lambda ref: registry_digest(ref, boto3_session=s.target(env).session())


def list_built_images(s: Session) -> None:
    """Read the engine's listing of the app's content-tagged images (`local_tag`), once per run: with several
    workloads selected, stages.prefetch has it read beside the contexts' hashing. A failure leaves no listing
    (each check then inspects its image, and reports what it finds)."""
    try:
        s.once("engine-images", lambda: engine.image_ids(local_repository(s.ws.app, "*")))
    except Exception:  # noqa: BLE001 — the inspects report an engine that does not answer, in their words
        pass


def in_the_engine(s: Session, image_id: str) -> bool:
    """Whether the engine holds this image: in the run's listing of the app's built images (a no-op of 50
    workloads makes one request, not 50), else asked for by itself — an image built after the listing, one
    whose content tag was removed while another tag keeps it, or a check made before the listing was in. No
    check waits for the listing: its cost grows with every image the engine holds (~25 ms with 2,200 here),
    and the first checks of a run, whose stage may be the one to run, need one image each (~1 ms)."""
    listed = s.facts.get("engine-images")
    if listed is not None and image_id in listed:
        log_api("docker", "LookupListing", "engine")   # one audit line per check, listed or inspected
        return True
    return engine.image_id(image_id) is not None


def status(s: Session, name: str, env: str) -> Status:
    def compute():
        m = s.manifests[(name, env)]
        cfg = m.build_config(s.ws.root)
        if cfg is None:
            return Status(False, f"nothing to build: image.location {m.image.get('location')}", None,
                          {"location": m.image.get("location")})
        k, inputs = key(cfg, name, s.stat_cache, base_memo(s), _registry_head(s, env), tree=context_digest(s, cfg))
        notes = "".join(f"; base image {ref}: {note}" for ref, note in inputs.pop("base_notes").items())
        rec = s.cache.get_action("build", k)
        if rec:
            try:
                in_engine = in_the_engine(s, rec["result"]["image_id"])
            except ServiceUnavailable as exc:  # a plan or an up-to-date deploy may go on without it
                in_engine, notes = None, f"{notes}; {exc}"
            if in_engine:
                return Status(False, f"image {rec['result']['image_id'][:19]} built from the same inputs is in "
                                     f"the engine{notes}", k, rec["result"], inputs)
        inputs = with_entries(s, cfg, inputs)   # for the explanation and the record
        # Built elsewhere (another runner, or this engine was pruned): the registry has its content tag.
        repo_name = s.repository_name(name)
        digest = s.target(env).tag_digest(repo_name, f"ck-{k.hex}")
        if digest:
            return Status(False, f"not in this engine, but registry {repo_name} has its content tag "
                                 f"ck-{k.short}… ({digest[:19]}){notes}", k,
                          {"image_id": rec["result"]["image_id"] if rec else None, "digest": digest}, inputs)
        if rec:
            return Status(True, f"image {rec['result']['image_id'][:19]} is not in the engine{notes}",
                          k, None, inputs)
        return Status(True, s.why("build", stage_id("build", name, env), inputs, k, explain) + notes,
                      k, None, inputs)
    return s.memo(("build", name, env), compute)


def run(s: Session, name: str, env: str) -> dict:
    st = status(s, name, env)
    if not st.run:
        return st.result
    m = s.manifests[(name, env)]
    cfg = m.build_config(s.ws.root)
    print(f"building {name} from {os.path.relpath(cfg.dockerfile, s.ws.root)}: {st.reason}")
    engine.warm_client()   # the push after this build needs the SDK: imported while the CLI builds
    git.start_run_tag(s)   # ... and the git tag (unless tag= is given): git answers while the CLI builds
    # Which docker CLI builds (2-4 CLI processes, ~0.17 s here) is remembered in the cache between runs.
    result = build_image(cfg, s.ws.app, name, st.key, probe_memo=s.cache_root / "docker-cli.json")
    s.record("build", stage_id("build", name, env), st.key, result, st.inputs)
    s.changed(name=name, stage="build", facts=())   # an image in the engine: no registry, object or stack
    return result
