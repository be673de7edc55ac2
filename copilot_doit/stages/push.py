"""Stage 3, push: the built image to the workload's ECR repository `<app>/<name>`.

key:    repository URI and the build key (content, not the engine's image id: a runner that never built
        the image can find it by its content tag `ck-<build key>`). Tags are not in the key: the tags a
        run needs (the `tag=`/git tag and the content tag `ck-<build key>`) are compared with the tags
        recorded for the digest, and a missing one is a manifest-only retag (the layers are already
        there). A dirty worktree has no git tag (Copilot's rule), so editing a manifest never re-pushes.
status: up to date when the registry holds the recorded digest with every needed tag (ECR
        DescribeImages; locally also a registry HEAD), asked once per digest per run.
run:    create the repository if missing, tag and push the first tag with the docker SDK, read the
        registry's manifest digest (stable across re-pushes and tags), tell the target (the local target
        registers it in the emulated ECR), and put the other tags on that digest manifest-only; or, for a
        digest the registry holds, a manifest-only retag.
        Result: {"digest", "repository_uri", "tags"}.
"""
from __future__ import annotations

from .. import engine, git
from ..audit import log_api
from ..errors import StageFailed
from ..hashing import Key
from ..session import Session
from ..targets import Target
from ..words import explain_inputs
from . import build
from .base import Status, must_run, stage_id

SALT = "push/3"

def required_tags(user_tag: str | None, build_key: Key | None) -> list[str]:
    """Tags this run needs on the digest: the `tag=`/git tag and the content tag a fresh runner looks up.
    `latest` is added whenever the stage runs (Copilot's `latest` follows the last push)."""
    tags = []
    if user_tag:
        tags.append(user_tag)
    if build_key is not None:
        tags.append(f"ck-{build_key.hex}")
    return sorted(set(tags))


def key(repo_uri: str, build_key: Key) -> Key:
    return Key.of(SALT, {"repository": repo_uri, "build": build_key.hex})


def retag(target: Target, repo_name: str, digest: str, tags: list[str], resource_tags: dict) -> dict:
    """Manifest-only: put new tags on a digest the registry already holds (no engine, no layers)."""
    repo_uri = target.ensure_repository(repo_name, resource_tags)
    target.retag(repo_name, digest, tags)
    print(f"  tagged {repo_uri}@{digest} ({', '.join(tags)}) without pushing layers")
    return {"digest": digest, "repository_uri": repo_uri, "tags": tags}


def push_image(target: Target, repo_name: str, image_id: str, tags: list[str], resource_tags: dict) -> dict:
    repo_uri = target.ensure_repository(repo_name, resource_tags)
    push_ref = target.push_reference(repo_uri)
    c = engine.client()
    import docker.errors   # loaded with the client: no cost here
    auth = target.registry_auth(repo_uri)
    digest = None
    from .. import live
    show = live.display().push_chunk   # per-layer progress on a terminal
    # The engine pushes the image under one tag; the others are put on its digest as the retag of an image
    # the registry holds (the manifest under one more name). An engine tag rewrites the engine's whole
    # reference store and a push walks every layer: a tag and push of a pushed image cost ~30 ms of CPU
    # here (dockerd ~20 ms, the registry ~7 ms, with 1,900 images in the engine), a manifest put ~2.5 ms —
    # on two cores, in a `-j 8` first deploy of 50 workloads, ~1.4 s of its ~20 s (issue #12's P7).
    first, others = tags[:1], tags[1:]
    for tag in first:
        log_api("docker", "Tag", "engine")
        try:
            c.api.tag(image_id, push_ref, tag)
        except docker.errors.ImageNotFound:
            raise StageFailed(f"image {str(image_id)[:19]} is no longer in the engine (removed since its build "
                              f"was checked): run again to build it") from None
        log_api("docker", "Push", "engine")
        try:
            for chunk in c.api.push(push_ref, tag=tag, stream=True, decode=True, auth_config=auth):
                if "error" in chunk:
                    raise StageFailed(_push_error(push_ref, tag, chunk["error"]))
                show(chunk)
                aux = chunk.get("aux") or {}
                if "Digest" in aux:
                    if digest and aux["Digest"] != digest:
                        raise StageFailed(f"registry reported two digests for one image: {digest}, {aux['Digest']}")
                    digest = aux["Digest"]
        except StageFailed:
            raise
        except Exception as exc:
            raise StageFailed(_push_error(push_ref, tag, str(exc))) from None
    if not digest:
        raise StageFailed(f"the registry did not report a digest for {push_ref}")
    target.after_push(repo_name, digest, first)
    if others:
        target.retag(repo_name, digest, others)
    print(f"  pushed {repo_uri}@{digest} ({', '.join(tags)})")
    return {"digest": digest, "repository_uri": repo_uri, "tags": tags}


def _push_error(push_ref: str, tag: str, error: str) -> str:
    """The engine's push error in one sentence; a registry that did not answer is named as such."""
    registry = push_ref.split("/", 1)[0]
    low = error.lower()
    if any(w in low for w in ("timeout", "deadline exceeded", "connection refused", "connection reset", "eof",
                              "no route to host")):
        return f"the registry {registry} did not answer the push of {push_ref}:{tag} ({error.strip()})"
    return f"push of {push_ref}:{tag} failed: {error.strip()}"


def live(target: Target, repo_name: str, digest: str) -> bool:
    return target.image_digest_in_registry(repo_name, digest=digest) == digest


def in_registry(s: Session, env: str, repo_name: str, digest: str) -> bool:
    """Registry holds the digest: asked once per (registry, repository, digest) per run, not per env."""
    t = s.target(env)
    where = ("in-registry", t.kind, t.settings.region, t.settings.profile, repo_name, digest)
    return s.memo(where, lambda: live(t, repo_name, digest))


def explain(old: dict, new: dict) -> list[str]:
    return [explain_inputs(old, new)]


def status(s: Session, name: str, env: str) -> Status:
    def compute():
        b = build.status(s, name, env)
        if b.result and "location" in b.result:
            return Status(False, "nothing to push: image.location is used as is", None, {"image": b.result["location"]})
        if b.run:
            return Status(True, f"after build:{name}@{env}")
        target = s.target(env)
        repo_name = s.repository_name(name)
        repo_uri = target.repository_uri(repo_name)
        k = key(repo_uri, b.key)
        rec = s.cache.get_action("push", k)
        tags = required_tags(git.run_tag(s, set(rec["result"]["tags"]) if rec else frozenset()), b.key)
        inputs = {"repository": repo_uri, "build": b.key.hex, "tags": tags}
        if rec:
            digest = rec["result"]["digest"]
            if not in_registry(s, env, repo_name, digest):
                found = b.result.get("digest")
                if found:
                    # The build was skipped because the registry holds its content tag (the engine was
                    # pruned) while the image record is gone (the local emulator restarted, its ECR records
                    # with it): the engine has nothing to push, the registry has it all — a retag.
                    return Status(True, f"digest {digest[:19]} is no longer in registry {repo_name}, but its layers "
                                        f"are (content tag ck-{b.key.short}…, {found[:19]}): retag with "
                                        f"{', '.join(tags)}",
                                  k, None, {**inputs, "digest": found})
                return Status(True, f"digest {digest[:19]} is no longer in registry {repo_name}", k, None, inputs)
            missing = sorted(set(tags) - set(rec["result"]["tags"]))
            if missing:
                return Status(True, f"digest {digest[:19]} is in registry {repo_name}; retag with {', '.join(missing)}",
                              k, None, {**inputs, "tags": sorted(set(tags) | set(rec["result"]["tags"])),
                                        "digest": digest})
            return Status(False, f"digest {digest[:19]} already in registry {repo_name}", k,
                          {**rec["result"], "image": f"{repo_uri}@{digest}"}, inputs)
        digest = b.result.get("digest")
        if digest:  # pushed by another runner: found by content tag
            tagged = all(target.tag_digest(repo_name, t) == digest for t in tags)
            if tagged and live(target, repo_name, digest):
                return Status(False, f"digest {digest[:19]} already in registry {repo_name} with tags "
                                     f"{', '.join(tags)} (pushed by another runner)", k,
                              {"digest": digest, "repository_uri": repo_uri, "tags": tags,
                               "image": f"{repo_uri}@{digest}"}, inputs)
            return Status(True, f"digest {digest[:19]} is in registry {repo_name}; retag with {', '.join(tags)}",
                          k, None, {**inputs, "digest": digest})
        return Status(True, s.why("push", stage_id("push", name, env), inputs, k, explain), k, None, inputs)
    return s.memo(("push", name, env), compute)


def run(s: Session, name: str, env: str) -> dict:
    st = must_run(status(s, name, env), stage_id("push", name, env))
    if st is None:
        return status(s, name, env).result
    b = build.status(s, name, env)
    target = s.target(env)
    repo_name = s.repository_name(name)
    print(f"pushing {name} to {repo_name}: {st.reason}")
    tags = sorted(set(st.inputs["tags"]) | {"latest"})
    try:
        if st.inputs.get("digest"):  # the registry has the image: new tags are a manifest-only retag
            result = retag(target, repo_name, st.inputs["digest"], tags, s.tags(name, env))
        else:
            result = push_image(target, repo_name, b.result.get("image_id"), tags, s.tags(name, env))
    except Exception as exc:  # an ECR call (the repository, the image record) that failed or got no answer
        from ..stacks import api_failure
        failed = api_failure(f"pushing {name} to {repo_name}", exc)
        if failed is None:
            raise
        raise failed from None
    s.record("push", stage_id("push", name, env), st.key, result, {k: v for k, v in st.inputs.items() if k != "digest"})
    s.changed(name=name, stage="push", facts=("in-registry",))
    return result
