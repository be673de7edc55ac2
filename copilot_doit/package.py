"""Stage 4, package: the resolved manifest (+ addons) rendered into a CloudFormation template.

key:   the resolved per-environment manifest in canonical JSON (key order, YAML layout and comments do
       not matter), the image reference (by digest for built images), the env stack's key, the digests
       of the addons folder and env file (and where they are uploaded), the template recipe version.
apply: render (templates/ builds dicts), dump deterministic YAML; template and parameters go into the
       cache's objects. Same inputs, same bytes. Result: {"template", "parameters"} (object digests).
"""
from __future__ import annotations

from .cache import Cache
from .hashing import Key, canonical_json
from .manifest import Manifest
from .templates import RECIPE_VERSION, dump
from .templates.workload import RenderInput, render

SALT = "package/1"


def key(m: Manifest, app: str, env: str, image_ref: str, env_key: str, addons: dict | None = None) -> Key:
    return Key.of(SALT, {
        "manifest": m.data, "type": m.type, "name": m.name, "app": app, "env": env,
        "image": image_ref, "env_key": env_key, "addons": addons, "recipe": RECIPE_VERSION,
    })


def apply(cache: Cache, m: Manifest, app: str, env: str, image_ref: str, addons: dict | None = None,
          env_file_arn: str = "") -> dict:
    template, params = render(RenderInput(manifest=m, app=app, env=env, image=image_ref, addons=addons,
                                          env_file_arn=env_file_arn))
    body = dump(template).encode()
    return {"template": cache.put_object(body), "parameters": cache.put_object(canonical_json(params).encode()),
            "size": len(body)}
