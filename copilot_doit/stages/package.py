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

import json
from pathlib import Path

from ..errors import StageFailed
from ..hashing import Key, canonical_json, digest_bytes, tree_digest, walk_tree
from ..manifest import LBWS, Manifest
from ..session import Session
from ..templates import RECIPE_VERSION, dump
from ..words import changed_fields, few, plural
from . import env as env_stage
from . import push
from .base import Status, must_run, stage_id

SALT = "package/1"


def key(m: Manifest, app: str, env: str, image_ref: str, env_key: str, addons: dict | None = None,
        imported_alb: dict | None = None) -> Key:
    inputs = {"manifest": m.data, "type": m.type, "name": m.name, "app": app, "env": env,
              "image": image_ref, "env_key": env_key, "addons": addons, "recipe": RECIPE_VERSION}
    if imported_alb is not None:  # only then: every other key stays what it was
        inputs["imported_alb"] = imported_alb
    return Key.of(SALT, inputs)


def imported_alb(s: Session, name: str, env: str, start: bool = True) -> dict | None:
    """`http.alb` looked up once per run (its listeners and security groups shape the template)."""
    http = s.manifests[(name, env)].data.get("http")
    ref = http.get("alb") if isinstance(http, dict) else None
    if not ref:
        return None
    return s.memo(("imported-alb", env, ref), lambda: s.target(env).imported_alb(ref, start))


def render_input(s: Session, name: str, env: str, image: str, addons: dict | None, env_file_arn: str,
                 start: bool = True):
    """Everything the workload template is rendered from (the env manifest decides HTTPS listeners)."""
    from ..domain import facts
    from ..templates.env import https
    from ..templates.workload import RenderInput  # here: a no-op renders nothing
    m = s.manifests[(name, env)]
    env_data = s.env_manifests[env].data
    extra = {}
    app_domain = facts(s, env, start) if m.type == LBWS else None  # only public services use it
    if app_domain is not None:  # the env's zone and subdomain (LoadBalancerDNSAlias), zones of nlb.alias records
        extra = {"app_domain": app_domain["name"], "zone_ids": app_domain["zone_ids"]}
    return RenderInput(manifest=m, app=s.ws.app, env=env, image=image, addons=addons, env_file_arn=env_file_arn,
                       https=https(env_data, m.type, app_domain and app_domain["name"]), imported_alb=imported_alb(s, name, env, start),
                       extra=extra)


def render_template(s: Session, ri) -> tuple[dict, dict]:
    """The workload template and its parameters: rendered, then Copilot's `overrides/` applied (YAML
    patches, or CDK when it is installed)."""
    from .. import overrides
    from ..templates.workload import render
    template, params = render(ri)
    folder = overrides.workload_folder(s.ws.dir, ri.manifest.name)
    return overrides.apply(folder, template, app=s.ws.app, env=ri.env), params


def render_into(s: Session, ri) -> dict:
    cache = s.cache
    template, params = render_template(s, ri)
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
    from .. import overrides
    patched = overrides.digest(overrides.workload_folder(s.ws.dir, name), s.stat_cache)
    if patched is not None:  # only then: every other key stays what it was
        out["overrides"] = patched
    if out["addons"] or out["env_file"]:
        target = s.target(env)
        bucket = target.artifact_bucket(s.ws.app)
        out["url"] = target.object_url(bucket, "")  # where artifacts live (the local port is part of it)
    return out


def checks_uploads(s: Session, name: str, env: str) -> bool:
    """Whether this workload's status looks for uploads in the app bucket: it has addons or an env file
    (uploads_missing HEADs what its record says it uploaded)."""
    return bool(s.manifests[(name, env)].data.get("env_file")) or s.ws.addons_dir(name).is_dir()


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
        import hashlib  # here: Copilot names env files by sha256; a no-op without one never loads OpenSSL's
        data = (s.ws.root / env_file).read_bytes()
        key_ = f"manual/env-files/{Path(env_file).name}/{hashlib.sha256(data).hexdigest()}.env"
        uploads.append((bucket, key_, data))
        arn = f"arn:aws:s3:::{bucket}/{key_}"
    return addons_input, arn, body, uploads


def upload_artifacts(s: Session, name: str, env: str) -> tuple[dict | None, str, bytes | None, list]:
    """Addons template and env file to the app bucket under content-addressed keys (as Copilot).
    Returns what `artifacts` does, the uploads as [bucket, key] pairs last."""
    addons_input, arn, body, uploads = artifacts(s, name, env)
    if uploads:
        target = s.target(env)
        target.ensure_bucket(uploads[0][0], {"copilot-application": s.ws.app})
        for bucket, key_, data in uploads:
            target.upload(bucket, key_, data)
            print(f"  uploaded s3://{bucket}/{key_} ({len(data)} bytes)")
    return addons_input, arn, body, [[bucket, key_] for bucket, key_, _ in uploads]


def uploads_missing(s: Session, env: str, record: dict, arts: dict) -> str | None:
    """Why the record's claim about its uploads no longer holds (a wiped bucket, a lifecycle rule,
    `copilot-doit local reset`), or None. One HEAD per artifact, asked once per run."""
    if not (arts.get("addons") or arts.get("env_file")):
        return None
    uploads = record.get("uploads")
    if uploads is None:
        return "its record does not list its uploads (written by an older copilot-doit)"
    target = s.target(env)
    for bucket, key_ in uploads:
        if not s.memo(("s3-object", env, bucket, key_), lambda: target.object_exists(bucket, key_)):
            return f"s3://{bucket}/{key_} it uploaded is gone"
    return None


def verify_render(s: Session, name: str, env: str, record: dict, inputs: dict) -> None:
    """Re-render the template from the inputs the record claims and compare: a record is a claim, and
    the template is about to be deployed. Rendering is pure and costs milliseconds; it runs only before
    a deploy acts on the record. A record that does not match is removed and the run stops."""
    addons_input, env_file_arn, _, _ = artifacts(s, name, env)
    template, params = render_template(s, render_input(s, name, env, inputs["image"], addons_input, env_file_arn))
    body = dump(template).encode()
    if digest_bytes(body) != record["template"] or digest_bytes(canonical_json(params).encode()) != record["parameters"]:
        k = key(s.manifests[(name, env)], s.ws.app, env, inputs["image"], inputs["env_key"], inputs["artifacts"],
                inputs.get("imported_alb"))
        s.cache.drop_action("package", k)
        raise StageFailed(f"the cached package record of {name}@{env} does not match a fresh render of its "
                          f"inputs (it was changed outside copilot-doit); it was removed and nothing was "
                          f"deployed: run the deploy again to package {name} anew")


def planned_template(s: Session, name: str, env: str, st: Status) -> tuple[str, dict]:
    """(template text, parameters) the stage would produce, without side effects (for the plan)."""
    if st.result:
        return (s.cache.get_object(st.result["template"]).decode(),
                json.loads(s.cache.get_object(st.result["parameters"])))
    addons_input, env_file_arn, _, _ = artifacts(s, name, env)
    template, params = render_template(s, render_input(s, name, env, st.inputs["image"], addons_input, env_file_arn))
    return dump(template), params


def render_offline(s: Session, name: str, env: str, image: str) -> tuple[str, dict, str | None]:
    """(template text, parameters, merged addons template) for `image`, reading only local files:
    no upload, no service started (`svc package` without `--upload-assets`)."""
    addons_input, env_file_arn, addons_body, _ = artifacts(s, name, env, start=False)
    template, params = render_template(s, render_input(s, name, env, image, addons_input, env_file_arn, start=False))
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
    if oa.get("overrides") != na.get("overrides"):
        parts.append("overrides/ changed")
    if old.get("imported_alb") != new.get("imported_alb"):
        parts.append("the imported load balancer changed")
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
        alb = imported_alb(s, name, env)
        k = key(m, s.ws.app, env, image, e.key.hex, arts, alb)
        inputs = {"manifest": m.data, "image": image, "env_key": e.key.hex, "recipe": RECIPE_VERSION, "artifacts": arts}
        if alb is not None:
            inputs["imported_alb"] = alb
        rec = s.cache.get_action("package", k)
        if rec and all(s.cache.get_object(rec["result"][x]) is not None
                       for x in ("template", "parameters", "addons") if rec["result"].get(x)):
            gone = uploads_missing(s, env, rec["result"], arts)
            if gone:
                return Status(True, f"template {rec['result']['template'][:12]} is packaged, but {gone}",
                              k, None, inputs)
            return Status(False, f"template {rec['result']['template'][:12]} rendered from the same manifest and image",
                          k, rec["result"], inputs,
                          check=lambda: verify_render(s, name, env, rec["result"], inputs))
        return Status(True, s.why("package", stage_id("package", name, env), inputs, k, explain), k, None, inputs)
    return s.memo(("package", name, env), compute)


def run(s: Session, name: str, env: str) -> dict:
    st = must_run(status(s, name, env), stage_id("package", name, env))
    if st is None:
        return status(s, name, env).result
    print(f"packaging {name} for {env}: {st.reason}")
    addons_input, env_file_arn, addons_body, uploaded = upload_artifacts(s, name, env)
    result = render_into(s, render_input(s, name, env, st.inputs["image"], addons_input, env_file_arn))
    result["uploads"] = uploaded
    if addons_body is not None:
        result["addons"] = s.cache.put_object(addons_body)
    s.record("package", stage_id("package", name, env), st.key, result, st.inputs)
    s.changed(name=name, stage="package", facts=("s3-object",))   # it may have uploaded objects
    return result
