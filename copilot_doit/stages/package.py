"""Stage 4, package: the resolved manifest (+ addons) rendered into a CloudFormation template.

key:    the resolved per-environment manifest in canonical JSON (key order, YAML layout and comments do
        not matter), the image reference (by digest for built images), the env stack's key, the digests
        of the addons folder and env file (and where they are uploaded), the template recipe version.
status: up to date when the key has a result whose objects are all in the cache. The env stack's key
        (not its outputs: templates import them by name) is known before the env stage has run, so the
        template can be rendered and diffed before that.
run:    upload the addons template and env file (content-addressed), render (templates/ builds dicts),
        dump deterministic YAML; template and parameters go into the cache's objects. Same inputs, same
        bytes. Result: {"template", "parameters", "addons"?} (object digests).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..cache import Cache
from ..hashing import Key, canonical_json, tree_digest, walk_tree
from ..manifest import Manifest
from ..session import Session
from ..templates import RECIPE_VERSION, dump
from ..templates.workload import RenderInput, render
from ..words import changed_fields, few, plural
from . import env as env_stage
from . import push
from .base import Status, must_run, stage_id

SALT = "package/1"


def key(m: Manifest, app: str, env: str, image_ref: str, env_key: str, addons: dict | None = None) -> Key:
    return Key.of(SALT, {
        "manifest": m.data, "type": m.type, "name": m.name, "app": app, "env": env,
        "image": image_ref, "env_key": env_key, "addons": addons, "recipe": RECIPE_VERSION,
    })


def render_into(cache: Cache, m: Manifest, app: str, env: str, image_ref: str, addons: dict | None = None,
          env_file_arn: str = "") -> dict:
    template, params = render(RenderInput(manifest=m, app=app, env=env, image=image_ref, addons=addons,
                                          env_file_arn=env_file_arn))
    body = dump(template).encode()
    return {"template": cache.put_object(body), "parameters": cache.put_object(canonical_json(params).encode()),
            "size": len(body)}


def artifact_inputs(s: Session, name: str, env: str) -> dict:
    """Digests of the workload's local artifacts (addons folder, env_file), for the package key."""
    m = s.manifests[(name, env)]
    out: dict = {"addons": None, "env_file": None}
    folder = s.ws.addons_dir(name)
    if folder.is_dir():
        out["addons"] = tree_digest(walk_tree(str(folder), s.stat_cache))
    env_file = m.data.get("env_file")
    if env_file:  # its existence was checked when the session loaded the manifest
        out["env_file"] = s.stat_cache.file_digest(str(s.ws.root / env_file))
    if out["addons"] or out["env_file"]:
        target = s.target(env)
        bucket = target.artifact_bucket(s.ws.app)
        out["url"] = target.object_url(bucket, "")  # where artifacts live (the local port is part of it)
    return out


def artifacts(s: Session, name: str, env: str, start: bool = True) -> tuple[dict | None, str, bytes | None, list]:
    """What the template needs from the workload's addons and env file, computed without side effects:
    (addons render input, env file ARN, merged addons body, [(bucket, key, bytes) to upload]).
    `start=False` starts no service to learn the addons URL (it is "" when the target cannot tell)."""
    from .. import addons
    m = s.manifests[(name, env)]
    packaged = addons.package(s.ws.addons_dir(name))
    env_file = m.data.get("env_file")
    if not packaged and not env_file:
        return None, "", None, []
    target = s.target(env)
    bucket = target.artifact_bucket(s.ws.app)
    addons_input, body, arn, uploads = None, None, "", []
    if packaged:
        body = dump(packaged["template"]).encode()
        key_ = addons.s3_key(name, body)
        uploads.append((bucket, key_, body))
        url = target.object_url(bucket, key_) if start else (target.object_url_if_known(bucket, key_) or "")
        addons_input = {"url": url, "parameters": packaged["parameters"],
                        "outputs": packaged["outputs"]}
    if env_file:
        data = (s.ws.root / env_file).read_bytes()
        key_ = f"manual/env-files/{Path(env_file).name}/{hashlib.sha256(data).hexdigest()}.env"
        uploads.append((bucket, key_, data))
        arn = f"arn:aws:s3:::{bucket}/{key_}"
    return addons_input, arn, body, uploads


def upload_artifacts(s: Session, name: str, env: str) -> tuple[dict | None, str, bytes | None]:
    """Addons template and env file to the app bucket under content-addressed keys (as Copilot)."""
    addons_input, arn, body, uploads = artifacts(s, name, env)
    if uploads:
        target = s.target(env)
        target.ensure_bucket(uploads[0][0], {"copilot-application": s.ws.app})
        for bucket, key_, data in uploads:
            target.upload(bucket, key_, data)
            print(f"  uploaded s3://{bucket}/{key_} ({len(data)} bytes)")
    return addons_input, arn, body


def planned_template(s: Session, name: str, env: str, st: Status) -> tuple[str, dict]:
    """(template text, parameters) the stage would produce, without side effects (for the plan)."""
    if st.result:
        return (s.cache.get_object(st.result["template"]).decode(),
                json.loads(s.cache.get_object(st.result["parameters"])))
    addons_input, env_file_arn, _, _ = artifacts(s, name, env)
    template, params = render(RenderInput(manifest=s.manifests[(name, env)], app=s.ws.app, env=env,
                                          image=st.inputs["image"], addons=addons_input, env_file_arn=env_file_arn))
    return dump(template), params


def render_offline(s: Session, name: str, env: str, image: str) -> tuple[str, dict, str | None]:
    """(template text, parameters, merged addons template) for `image`, reading only local files:
    no upload, no service started (`svc package` without `--upload-assets`)."""
    addons_input, env_file_arn, addons_body, _ = artifacts(s, name, env, start=False)
    template, params = render(RenderInput(manifest=s.manifests[(name, env)], app=s.ws.app, env=env,
                                          image=image, addons=addons_input, env_file_arn=env_file_arn))
    return dump(template), params, addons_body.decode() if addons_body is not None else None


def explain(old: dict, new: dict) -> list[str]:
    parts = []
    fields = changed_fields(old.get("manifest") or {}, new.get("manifest") or {})
    if fields:
        parts.append(f"manifest {plural(len(fields), 'field')} changed: {few(fields)}")
    if old.get("image") != new.get("image"):
        parts.append(f"image is now {new.get('image')}")
    if old.get("env_key") != new.get("env_key"):
        parts.append("the environment stack changed")
    if old.get("recipe") != new.get("recipe"):
        parts.append(f"template recipe changed ({old.get('recipe')} -> {new.get('recipe')})")
    oa, na = old.get("artifacts") or {}, new.get("artifacts") or {}
    if oa.get("addons") != na.get("addons"):
        parts.append("addons changed")
    if oa.get("env_file") != na.get("env_file"):
        parts.append("env file changed")
    if oa.get("url") != na.get("url") and oa.get("url") and na.get("url"):
        parts.append("the artifact bucket's address changed")
    return parts


def status(s: Session, name: str, env: str) -> Status:
    def compute():
        p = push.status(s, name, env)
        retag_only = p.run and (p.inputs or {}).get("digest")  # a new tag on a known digest: same image
        if p.run and not retag_only:
            return Status(True, f"after push:{name}@{env}")
        e = env_stage.status(s, None, env)
        m = s.manifests[(name, env)]
        image = f"{p.inputs['repository']}@{p.inputs['digest']}" if retag_only else p.result["image"]
        arts = artifact_inputs(s, name, env)
        k = key(m, s.ws.app, env, image, e.key.hex, arts)
        inputs = {"manifest": m.data, "image": image, "env_key": e.key.hex, "recipe": RECIPE_VERSION, "artifacts": arts}
        rec = s.cache.get_action("package", k)
        if rec and all(s.cache.get_object(rec["result"][x]) is not None
                       for x in ("template", "parameters", "addons") if rec["result"].get(x)):
            return Status(False, f"template {rec['result']['template'][:12]} rendered from the same manifest and image",
                          k, rec["result"], inputs)
        return Status(True, s.why("package", stage_id("package", name, env), inputs, k, explain), k, None, inputs)
    return s.memo(("package", name, env), compute)


def run(s: Session, name: str, env: str) -> dict:
    st = must_run(status(s, name, env), stage_id("package", name, env))
    if st is None:
        return status(s, name, env).result
    m = s.manifests[(name, env)]
    print(f"packaging {name} for {env}: {st.reason}")
    addons_input, env_file_arn, addons_body = upload_artifacts(s, name, env)
    result = render_into(s.cache, m, s.ws.app, env, st.inputs["image"], addons_input, env_file_arn)
    if addons_body is not None:
        result["addons"] = s.cache.put_object(addons_body)
    s.record("package", stage_id("package", name, env), st.key, result, st.inputs)
    s.changed()
    return result
