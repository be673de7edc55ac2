"""`svc package`, `job package`, `env package`: the stack template and parameters as files, as Copilot
writes them, without deploying anything.

    workload_package(session, name, env)  -> Package (template, params document, addons template)
    env_package(session, env)              -> Package
    write(package, output_dir | stdout)    -> the paths written (Copilot's file names)

Without `--upload-assets` nothing in AWS, the registry or the engine changes and nothing is started:
the template is rendered from the manifest alone, `ContainerImage` is the image Copilot would write then
(`image.location`; `<repo>:<tag>` with `--tag`; `<repo>@<digest>` when this cache already pushed the same
build; else "" as Copilot), the env file ARN and addons URL are where `deploy` would upload them. With
`--upload-assets` the build, push and package stages run as `deploy` runs them (the template is then
byte-identical to the one `deploy` creates the stack from).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import ServiceUnavailable, UserError
from .manifest import JOB
from .session import Session
from .stages import STAGES, build, push
from .stages import env as env_stage
from .stages import package as package_stage
from .values import value


@value
class Package:
    stack_file: str           # Copilot's names: <name>-<env>.stack.yml / <env>.env.yml
    params_file: str          # <name>-<env>.params.json / <env>.env.params.json
    template: str
    params: dict              # {"Parameters": {...}, "Tags": {...}}, Copilot's params.json document
    addons_file: str | None = None
    addons: str | None = None
    notes: tuple[str, ...] = ()


def check_kind(s: Session, name: str, env: str, command: str) -> None:
    """`svc package` packages services, `job package` jobs (Copilot's commands select by kind)."""
    is_job = s.manifests[(name, env)].type == JOB
    if command == "svc" and is_job:
        raise UserError(f"'{name}' is a Scheduled Job, not a service", field="name",
                        allowed=f"copilot-doit job package -n {name}")
    if command == "job" and not is_job:
        raise UserError(f"'{name}' is a {s.manifests[(name, env)].type}, not a job", field="name",
                        allowed=f"copilot-doit svc package -n {name}")


def _known_digest(s: Session, name: str, env: str, repo_uri: str) -> str | None:
    """The digest this cache pushed for the workload's current build inputs, if any. Hashing the
    context reads files only; a base image the engine must resolve is skipped when it does not answer."""
    cfg = s.manifests[(name, env)].build_config(s.ws.root)
    try:
        bk, _ = build.key(cfg, name, s.stat_cache)
    except ServiceUnavailable:
        return None
    rec = s.cache.get_action("push", push.key(repo_uri, bk))
    return rec["result"]["digest"] if rec else None


def package_image(s: Session, name: str, env: str) -> tuple[str, str]:
    """(ContainerImage without a push, how it was chosen)."""
    m = s.manifests[(name, env)]
    if m.image.get("location"):
        return m.image["location"], "image.location"
    repo_uri = s.target(env).repository_uri(s.repository_name(name))
    if s.opts.tag:
        return f"{repo_uri}:{s.opts.tag}", f"--tag {s.opts.tag}"
    digest = _known_digest(s, name, env, repo_uri)
    if digest:
        return f"{repo_uri}@{digest}", "the digest this cache pushed for the same build inputs"
    return "", "no image pushed yet (Copilot writes \"\" then; --tag or --upload-assets give one)"


def _params_doc(params: dict, tags: dict) -> dict:
    return {"Parameters": {k: str(v) for k, v in sorted(params.items())}, "Tags": dict(sorted(tags.items()))}


def workload_package(s: Session, name: str, env: str, upload: bool = False) -> Package:
    files = {"stack_file": f"{name}-{env}.stack.yml", "params_file": f"{name}-{env}.params.json",
             "addons_file": f"{name}.addons.stack.yml"}
    if upload:
        for stage in ("build", "push", "package"):
            STAGES[stage].run(s, name, env)
        st = package_stage.status(s, name, env)
        template, params = package_stage.planned_template(s, name, env, st)
        addons = st.result.get("addons")
        addons_body = s.cache.get_object(addons).decode() if addons else None
        notes: tuple[str, ...] = (f"ContainerImage {params.get('ContainerImage')} (pushed)",)
    else:
        image, how = package_image(s, name, env)
        template, params, addons_body = package_stage.render_offline(s, name, env, image)
        notes = (f"ContainerImage {image or repr('')}: {how}",)
    return Package(files["stack_file"], files["params_file"], template, _params_doc(params, s.tags(name, env)),
                   files["addons_file"] if addons_body else None, addons_body, notes)


def env_package(s: Session, env: str) -> Package:
    k, inputs = env_stage.inputs(s, env, start=False)
    addons = env_stage.addons_upload(s, env)
    return Package(f"{env}.env.yml", f"{env}.env.params.json", env_stage.template(s, env, start=False),
                   _params_doc(inputs["parameters"], inputs["tags"]),
                   "env.addons.yml" if addons else None, addons[1].decode() if addons else None)


def write(p: Package, output_dir: str | None, out=None) -> list[str]:
    """Files in `output_dir` (created), or the template, parameters and addons template on stdout."""
    params_text = json.dumps(p.params, indent=2, sort_keys=True)
    parts = [(p.stack_file, p.template), (p.params_file, params_text)]
    if p.addons is not None:
        parts.append((p.addons_file, p.addons))
    if not output_dir:
        out = out or sys.stdout
        for _, text in parts:
            out.write(text if text.endswith("\n") else text + "\n")
        return []
    folder = Path(output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for fname, text in parts:
            (folder / fname).write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write the package files: {exc.strerror}", file=str(folder), field="output-dir") from None
    return [str(folder / fname) for fname, _ in parts]
