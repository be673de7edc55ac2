"""Stage 3, push: the built image to the workload's ECR repository `<app>/<name>`.

key:   repository URI and the build key (content, not the engine's image id: a runner that never built
       the image can find it by its content tag `ck-<build key>`). Tags are not in the key: the tags a run needs (the `tag=`/git tag
       and the content tag `ck-<build key>`) are compared with the tags recorded for the digest, and a
       missing one is a manifest-only retag (the layers are already there). A dirty worktree has no
       git tag (Copilot's rule), so editing a manifest never re-pushes.
apply: create the repository if missing, tag and push each tag with the docker SDK, read the registry's
       manifest digest (stable across re-pushes and tags), tell the target (the local target registers
       it in the emulated ECR). Result: {"digest", "repository_uri", "tags"}.
live:  the registry holds that digest (ECR DescribeImages; locally also a registry HEAD).
"""
from __future__ import annotations

from . import engine
from .aws import Target, log_api
from .errors import StageFailed
from .hashing import Key

SALT = "push/3"


def repository_name(app: str, workload: str) -> str:
    return f"{app}/{workload}"


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


def apply(target: Target, repo_name: str, image_id: str, tags: list[str], resource_tags: dict) -> dict:
    repo_uri = target.ensure_repository(repo_name, resource_tags)
    push_ref = target.push_reference(repo_uri)
    c = engine.client()
    auth = target.registry_auth(repo_uri)
    digest = None
    for tag in tags:
        log_api("docker", "Tag", "engine")
        c.api.tag(image_id, push_ref, tag)
        log_api("docker", "Push", "engine")
        try:
            for chunk in c.api.push(push_ref, tag=tag, stream=True, decode=True, auth_config=auth):
                if "error" in chunk:
                    raise StageFailed(f"push of {push_ref}:{tag} failed: {chunk['error']}")
                aux = chunk.get("aux") or {}
                if "Digest" in aux:
                    if digest and aux["Digest"] != digest:
                        raise StageFailed(f"registry reported two digests for one image: {digest}, {aux['Digest']}")
                    digest = aux["Digest"]
        except StageFailed:
            raise
        except Exception as exc:
            raise StageFailed(f"push of {push_ref}:{tag} failed: {exc}") from None
    if not digest:
        raise StageFailed(f"the registry did not report a digest for {push_ref}")
    target.after_push(repo_name, digest, tags)
    print(f"  pushed {repo_uri}@{digest} ({', '.join(tags)})")
    return {"digest": digest, "repository_uri": repo_uri, "tags": tags}


def live(target: Target, repo_name: str, digest: str) -> bool:
    return target.image_digest_in_registry(repo_name, digest=digest) == digest
