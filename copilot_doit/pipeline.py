"""The deploy flow as plain functions: each stage's status builds on the previous stage's result.

    env_status -> build_status -> push_status -> package_status -> lint_status -> deploy_status

A status says whether the stage must run and why, with its key and (when up to date) its result. A
stage is up to date only when its key has a verified result in the cache AND that result still holds
in the world (image in the engine, digest in the registry, stack stable with the same key). A stage
whose upstream must run cannot be judged yet: it runs after it ("after build").
`run_*` performs the side effect and records the result only once the world has confirmed it.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import build, lint, package, push, stack
from .aws import Target, target_for
from .cache import Cache
from .errors import StageFailed, UserError
from .hashing import Key, StatCache
from .manifest import JOB, EnvManifest, Manifest, load_environment, load_workload
from .plan import explain
from .templates import RECIPE_VERSION, dump
from .workspace import Workspace, load_workspace, select

STAGES = ("build", "push", "package", "lint", "deploy")


@dataclass
class Options:
    names: list[str] | None = None
    envs: list[str] | None = None
    app: str | None = None
    force: bool = False
    no_rollback: bool = False
    resource_tags: dict = field(default_factory=dict)
    tag: str | None = None


@dataclass
class Status:
    run: bool
    reason: str
    key: Key | None = None
    result: dict | None = None
    inputs: dict | None = None

    @property
    def word(self) -> str:
        return "run" if self.run else "skip"


def parse_resource_tags(text: str | None) -> dict:
    """`k=v,k2=v2` (cobra's StringToString)."""
    out: dict = {}
    if not text:
        return out
    for item in text.split(","):
        if not item.strip():
            continue
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise UserError(f"'{item}' is not key=value", field="resource-tags", allowed="k1=v1,k2=v2")
        out[k.strip()] = v.strip()
    return out


def cache_root_for(ws_root: Path) -> Path:
    return Path(os.environ.get("COPILOT_DOIT_CACHE") or ws_root / "cache")


def remote_store(ws: Workspace, cache_root: Path):
    """The shared S3 cache named in copilot-doit.yml (`cache: {s3: {...}}`), or None."""
    cfg = (ws.cache_config or {}).get("s3")
    if not cfg:
        return None
    from .cache import S3Store
    from .workspace import EnvSettings

    def client():
        settings = EnvSettings(name="cache", target=cfg.get("target", "aws"), region=cfg.get("region", "us-east-1"),
                               profile=cfg.get("profile"))
        return target_for(settings, cache_root).client("s3")

    return S3Store(cfg["bucket"], cfg.get("prefix", ""), cfg.get("expected_owner"), client)


class Session:
    """One run: the workspace, the selection, the cache, and memoised statuses."""

    def __init__(self, opts: Options):
        self.opts = opts
        self.ws: Workspace = load_workspace(app_override=opts.app)
        self.names, self.envs = select(self.ws, opts.names, opts.envs)
        self.cache_root = cache_root_for(self.ws.root)
        self.cache = Cache(self.cache_root, remote_store(self.ws, self.cache_root))
        self.stat_cache = StatCache(self.cache_root / "state.db")
        self._targets: dict[str, Target] = {}
        self._stacks: dict[str, dict] = {}
        self._memo: dict = {}
        self._registry: dict = {}
        self._git_tag = ...
        # Every selected manifest is read and validated up front: a mistake stops the run before
        # anything is applied, with file, field and line.
        self.env_manifests: dict[str, EnvManifest] = {
            e: load_environment(self.ws.env_manifest_path(e), self.ws.app, e) for e in self.envs}
        self.manifests: dict[tuple[str, str], Manifest] = {
            (n, e): load_workload(self.ws.manifest_path(n), self.ws.app, e, n) for n in self.names for e in self.envs}
        for m in self.manifests.values():  # paths too (Dockerfile, context, env_file): a stat each
            m.build_config(self.ws.root)
            if m.data.get("env_file") and not (self.ws.root / m.data["env_file"]).is_file():
                m.fail(("env_file",), f"{self.ws.root / m.data['env_file']} does not exist",
                       allowed="a path relative to the workspace root (the folder above the workspace)")

    # --- shared lookups -------------------------------------------------------------------------------
    def target(self, env: str) -> Target:
        if env not in self._targets:
            self._targets[env] = target_for(self.ws.env_settings(env), self.cache_root)
        return self._targets[env]

    def stacks(self, env: str) -> dict:
        """One DescribeStacks per environment per run, shared by the env and every workload stage."""
        if env not in self._stacks:
            self._stacks[env] = self.target(env).describe_stacks()
        return self._stacks[env]

    def in_registry(self, env: str, repo_name: str, digest: str) -> bool:
        """Registry holds the digest: asked once per (registry, repository, digest) per run, not per env."""
        t = self.target(env)
        where = (t.kind, t.settings.region, t.settings.profile, repo_name, digest)
        if where not in self._registry:
            self._registry[where] = push.live(t, repo_name, digest)
        return self._registry[where]

    def git_tag(self, already: set | frozenset = frozenset()) -> str | None:
        """`tag=`, else the git describe of a clean worktree (Copilot). When the describe text of this
        HEAD is remembered and already among `already` (the tags on the image), dirty or clean makes no
        difference to what must be done, so pygit2 is not loaded at all."""
        if self.opts.tag:
            return self.opts.tag
        from . import git
        memo = git.DescribeMemo(self.cache_root / "git-describe.json")
        signature = git.head_signature(self.ws.root)
        known = memo.get(signature)
        if known is not None and known in already and self._git_tag is ...:
            return known
        if self._git_tag is ...:
            text, dirty = git.describe(self.ws.root)
            memo.put(signature, text)
            self._git_tag = None if dirty else text
        return self._git_tag

    def changed(self, env: str | None = None) -> None:
        """Forget memoised statuses (and the env's stack listing) after a stage changed the world."""
        self._memo.clear()
        self._registry.clear()
        if env is not None:
            self._stacks.pop(env, None)

    def memo(self, key, fn):
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def record(self, stage: str, task: str, k: Key, result: dict, inputs: dict) -> None:
        result = {**result, "inputs": self.cache.put_json(inputs)}
        self.cache.put_action(stage, k, result, task=task)

    def why(self, stage: str, task: str, inputs: dict, k: Key | None = None) -> str:
        last = self.cache.get_last(stage, task)
        if last and k is not None and last.get("salt") != k.salt:
            return f"the {stage} key recipe changed ({last.get('salt')} -> {k.salt})"
        old = self.cache.get_json(last["result"]["inputs"]) if last and last["result"].get("inputs") else None
        return explain(stage, old, inputs)

    def flush(self) -> None:
        self.stat_cache.flush()

    def stack_name(self, name: str, env: str) -> str:
        return f"{self.ws.app}-{env}-{name}"[:128]

    def tags(self, name: str, env: str) -> dict:
        """`--resource-tags` merged with Copilot's reserved tags; the reserved ones win."""
        tags = dict(self.opts.resource_tags)
        tags.update({"copilot-application": self.ws.app, "copilot-environment": env, "copilot-service": name})
        return dict(sorted(tags.items()))


def stage_id(stage: str, name: str, env: str) -> str:
    return f"{stage}:{name}@{env}"


# --- the environment stack -------------------------------------------------------------------------------
ENV_SALT = "env/2"


def env_needs(s: Session, env: str) -> dict:
    """Which shared resources the workspace's workloads need in this environment (all of them, not
    only the selected ones: deploying one service must not remove another's load balancer)."""
    import sys
    from .manifest import BACKEND, LBWS
    needs = {"public_alb": False, "internal_alb": False}
    for name in s.ws.workloads:
        try:
            m = s.manifests.get((name, env)) or load_workload(s.ws.manifest_path(name), s.ws.app, env, name)
        except UserError as exc:
            print(f"warning: {exc}; keeping every load balancer of {env} in case {name} uses one", file=sys.stderr)
            return {"public_alb": True, "internal_alb": True}
        http = m.data.get("http")
        if m.type == LBWS and http is not False:
            needs["public_alb"] = True
        if m.type == BACKEND and isinstance(http, dict):
            needs["internal_alb"] = True
    return needs


def env_inputs(s: Session, env: str) -> tuple[Key, dict]:
    """The env stack's key: its manifest, what the workloads need from it, the recipe version and the
    tags. The template is a pure function of those, rendered only when the stage runs."""
    em = s.env_manifests[env]
    tags = {"copilot-application": s.ws.app, "copilot-environment": env}
    from .templates.env import RECIPE
    inputs = {"manifest": em.data, "recipe": RECIPE, "parameters": {"AppName": s.ws.app, "EnvironmentName": env},
              "tags": tags, "needs": env_needs(s, env)}
    return Key.of(ENV_SALT, inputs), inputs


def env_template(s: Session, env: str) -> str:
    from .templates.env import render
    needs = env_status(s, env).inputs["needs"]
    template, _ = render(s.ws.app, env, s.env_manifests[env].data, **needs)
    return dump(template)


def env_status(s: Session, env: str) -> Status:
    def compute():
        k, inputs = env_inputs(s, env)
        rec = s.cache.get_action("env", k)
        ok, why = stack.live_ok(s.stacks(env), f"{s.ws.app}-{env}", k, inputs["parameters"],
                                (rec or {}).get("result", {}).get("updated"))
        if rec and ok:
            return Status(False, why, k, rec["result"], inputs)
        if not ok and rec:
            return Status(True, why, k, None, inputs)
        if ok:  # deployed from these inputs elsewhere (another checkout, a CI runner): adopt it
            outputs = s.stacks(env)[f"{s.ws.app}-{env}"]["outputs"]
            return Status(False, why + "; recorded by another runner", k, {"outputs": outputs}, inputs)
        return Status(True, f"{why}; {s.why('env', f'env:{env}', inputs, k)}", k, None, inputs)
    return s.memo(("env", env), compute)


def run_env(s: Session, env: str) -> dict:
    st = env_status(s, env)
    if not st.run:
        return st.result
    target = s.target(env)
    name = f"{s.ws.app}-{env}"
    body = env_template(s, env)
    report = lint_body(s, body, target.settings.region, f"{name}.yml")
    deploy_body = for_target(target, body)
    tags = {**st.inputs["tags"], stack.KEY_TAG: st.key.hex}
    print(f"deploying environment stack {name} ({target.kind} target)")
    stack.deploy(target, name, deploy_body, st.inputs["parameters"], tags)
    s.changed(env)
    live = s.stacks(env).get(name)
    if not live or live["tags"].get(stack.KEY_TAG) != st.key.hex:
        raise StageFailed(f"stack {name} does not carry the deployed key after the update")
    result = {"outputs": live["outputs"], "lint_warnings": report["warnings"], "updated": live["updated"],
              "template": s.cache.put_object(body.encode())}
    s.record("env", f"env:{env}", st.key, result, st.inputs)
    s.changed(env)
    return result


def for_target(target: Target, body: str, missing_imports: set[str] = frozenset()) -> str:
    """The linted body as the target will run it, saying what its compat step changed (if anything)."""
    deployable, notes = target.deployable(body, missing_imports)
    for n in notes:
        print(f"  {target.kind} compat: {n}")
    return deployable


def lint_body(s: Session, body: str, region: str, name: str) -> dict:
    """Lint with the cache: a template linted once is never linted again (cfn-lint costs ~1 s)."""
    digest = s.cache.put_object(body.encode())
    k = lint.key(digest, region)
    rec = s.cache.get_action("lint", k)
    if rec is None:
        report = lint.run(body, region)
        result = {**lint.summary(report), "report": s.cache.put_object(lint.to_bytes(report))}
        s.cache.put_action("lint", k, result)
    else:
        result = rec["result"]
        report = json.loads(s.cache.get_object(result["report"]) or b"[]")
    if report:
        print(lint.format_report(report, name))
    if result["errors"]:
        raise StageFailed(f"cfn-lint found {result['errors']} error(s) in {name}; nothing was deployed")
    return result


# --- workload stages -------------------------------------------------------------------------------------
def build_status(s: Session, name: str, env: str) -> Status:
    def compute():
        m = s.manifests[(name, env)]
        cfg = m.build_config(s.ws.root)
        if cfg is None:
            return Status(False, f"nothing to build: image.location {m.image.get('location')}", None,
                          {"location": m.image.get("location")})
        k, inputs = build.key(cfg, name, s.stat_cache)
        rec = s.cache.get_action("build", k)
        if rec:
            from . import engine
            if engine.image_id(rec["result"]["image_id"]):
                return Status(False, f"image {rec['result']['image_id'][:19]} built from the same inputs is in the engine",
                              k, rec["result"], inputs)
        # Built elsewhere (another runner, or this engine was pruned): the registry has its content tag.
        repo_name = push.repository_name(s.ws.app, name)
        digest = s.target(env).tag_digest(repo_name, f"ck-{k.hex}")
        if digest:
            return Status(False, f"not in this engine, but registry {repo_name} has its content tag "
                                 f"ck-{k.short}… ({digest[:19]})", k,
                          {"image_id": rec["result"]["image_id"] if rec else None, "digest": digest}, inputs)
        if rec:
            return Status(True, f"image {rec['result']['image_id'][:19]} was removed from the engine", k, None, inputs)
        return Status(True, s.why("build", stage_id("build", name, env), inputs, k), k, None, inputs)
    return s.memo(("build", name, env), compute)


def runnable(s: Session, stage: str, name: str, env: str) -> Status | None:
    """The stage's status if it must run now, None if it is up to date. A stage whose upstream has not
    produced its result yet cannot run: that is doit being asked for it out of order."""
    st = STATUS[stage](s, name, env)
    if not st.run:
        return None
    if st.key is None:
        raise StageFailed(f"{stage}:{name}@{env} cannot run before its upstream stages: {st.reason}")
    return st


def run_build(s: Session, name: str, env: str) -> dict:
    st = build_status(s, name, env)
    if not st.run:
        return st.result
    m = s.manifests[(name, env)]
    cfg = m.build_config(s.ws.root)
    print(f"building {name} from {os.path.relpath(cfg.dockerfile, s.ws.root)}: {st.reason}")
    result = build.apply(cfg, s.ws.app, name, st.key)
    s.record("build", stage_id("build", name, env), st.key, result, st.inputs)
    s.changed()
    return result


def push_status(s: Session, name: str, env: str) -> Status:
    def compute():
        b = build_status(s, name, env)
        if b.result and "location" in b.result:
            return Status(False, "nothing to push: image.location is used as is", None, {"image": b.result["location"]})
        if b.run:
            return Status(True, f"after build:{name}@{env}")
        target = s.target(env)
        repo_name = push.repository_name(s.ws.app, name)
        repo_uri = target.repository_uri(repo_name)
        k = push.key(repo_uri, b.key)
        rec = s.cache.get_action("push", k)
        tags = push.required_tags(s.git_tag(set(rec["result"]["tags"]) if rec else frozenset()), b.key)
        inputs = {"repository": repo_uri, "build": b.key.hex, "tags": tags}
        if rec:
            digest = rec["result"]["digest"]
            if not s.in_registry(env, repo_name, digest):
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
            if tagged and push.live(target, repo_name, digest):
                return Status(False, f"digest {digest[:19]} already in registry {repo_name} with tags "
                                     f"{', '.join(tags)} (pushed by another runner)", k,
                              {"digest": digest, "repository_uri": repo_uri, "tags": tags,
                               "image": f"{repo_uri}@{digest}"}, inputs)
            return Status(True, f"digest {digest[:19]} is in registry {repo_name}; retag with {', '.join(tags)}",
                          k, None, {**inputs, "digest": digest})
        return Status(True, s.why("push", stage_id("push", name, env), inputs, k), k, None, inputs)
    return s.memo(("push", name, env), compute)


def run_push(s: Session, name: str, env: str) -> dict:
    st = runnable(s, "push", name, env)
    if st is None:
        return push_status(s, name, env).result
    b = build_status(s, name, env)
    target = s.target(env)
    repo_name = push.repository_name(s.ws.app, name)
    print(f"pushing {name} to {repo_name}: {st.reason}")
    tags = sorted(set(st.inputs["tags"]) | {"latest"})
    if st.inputs.get("digest"):  # the registry has the image: new tags are a manifest-only retag
        result = push.retag(target, repo_name, st.inputs["digest"], tags, s.tags(name, env))
    else:
        result = push.apply(target, repo_name, b.result.get("image_id"), tags, s.tags(name, env))
    s.record("push", stage_id("push", name, env), st.key, result, {k: v for k, v in st.inputs.items() if k != "digest"})
    s.changed()
    return result


def artifact_inputs(s: Session, name: str, env: str) -> dict:
    """Digests of the workload's local artifacts (addons folder, env_file), for the package key."""
    from .hashing import tree_digest, walk_tree
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


def package_status(s: Session, name: str, env: str) -> Status:
    def compute():
        p = push_status(s, name, env)
        retag_only = p.run and (p.inputs or {}).get("digest")  # a new tag on a known digest: same image
        if p.run and not retag_only:
            return Status(True, f"after push:{name}@{env}")
        # The env stack's key (not its outputs: templates import them by name) is known even when the env
        # stage still has to run, so the template can be rendered and diffed before that.
        e = env_status(s, env)
        m = s.manifests[(name, env)]
        image = f"{p.inputs['repository']}@{p.inputs['digest']}" if retag_only else p.result["image"]
        arts = artifact_inputs(s, name, env)
        k = package.key(m, s.ws.app, env, image, e.key.hex, arts)
        inputs = {"manifest": m.data, "image": image, "env_key": e.key.hex, "recipe": RECIPE_VERSION, "artifacts": arts}
        rec = s.cache.get_action("package", k)
        if rec and all(s.cache.get_object(rec["result"][x]) is not None
                       for x in ("template", "parameters", "addons") if rec["result"].get(x)):
            return Status(False, f"template {rec['result']['template'][:12]} rendered from the same manifest and image",
                          k, rec["result"], inputs)
        return Status(True, s.why("package", stage_id("package", name, env), inputs, k), k, None, inputs)
    return s.memo(("package", name, env), compute)


def artifacts(s: Session, name: str, env: str) -> tuple[dict | None, str, bytes | None, list]:
    """What the template needs from the workload's addons and env file, computed without side effects:
    (addons render input, env file ARN, merged addons body, [(bucket, key, bytes) to upload])."""
    import hashlib
    from . import addons
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
        key = addons.s3_key(name, body)
        uploads.append((bucket, key, body))
        addons_input = {"url": target.object_url(bucket, key), "parameters": packaged["parameters"],
                        "outputs": packaged["outputs"]}
    if env_file:
        data = (s.ws.root / env_file).read_bytes()
        key = f"manual/env-files/{Path(env_file).name}/{hashlib.sha256(data).hexdigest()}.env"
        uploads.append((bucket, key, data))
        arn = f"arn:aws:s3:::{bucket}/{key}"
    return addons_input, arn, body, uploads


def upload_artifacts(s: Session, name: str, env: str) -> tuple[dict | None, str, bytes | None]:
    """Addons template and env file to the app bucket under content-addressed keys (as Copilot)."""
    addons_input, arn, body, uploads = artifacts(s, name, env)
    if uploads:
        target = s.target(env)
        target.ensure_bucket(uploads[0][0], {"copilot-application": s.ws.app})
        for bucket, key, data in uploads:
            target.upload(bucket, key, data)
            print(f"  uploaded s3://{bucket}/{key} ({len(data)} bytes)")
    return addons_input, arn, body


def run_package(s: Session, name: str, env: str) -> dict:
    st = runnable(s, "package", name, env)
    if st is None:
        return package_status(s, name, env).result
    m = s.manifests[(name, env)]
    print(f"packaging {name} for {env}: {st.reason}")
    addons_input, env_file_arn, addons_body = upload_artifacts(s, name, env)
    result = package.apply(s.cache, m, s.ws.app, env, st.inputs["image"], addons_input, env_file_arn)
    if addons_body is not None:
        result["addons"] = s.cache.put_object(addons_body)
    s.record("package", stage_id("package", name, env), st.key, result, st.inputs)
    s.changed()
    return result


def lint_status(s: Session, name: str, env: str) -> Status:
    def compute():
        p = package_status(s, name, env)
        if p.run:
            return Status(True, f"after package:{name}@{env}")
        region = s.target(env).settings.region
        k = lint.key(p.result["template"] + p.result.get("addons", ""), region)
        rec = s.cache.get_action("lint", k)
        if rec and not rec["result"]["errors"]:
            w = rec["result"]["warnings"]
            return Status(False, f"template {p.result['template'][:12]} already passed cfn-lint"
                          + (f" ({w} warning{'s' if w != 1 else ''})" if w else ""), k, rec["result"])
        if rec:
            return Status(True, f"template {p.result['template'][:12]} has {rec['result']['errors']} cfn-lint error(s)", k)
        return Status(True, f"template {p.result['template'][:12]} not linted yet", k)
    return s.memo(("lint", name, env), compute)


def run_lint(s: Session, name: str, env: str) -> dict:
    st = runnable(s, "lint", name, env)
    if st is None:
        return lint_status(s, name, env).result
    p = package_status(s, name, env)
    region = s.target(env).settings.region
    if p.result.get("addons"):
        lint_body(s, s.cache.get_object(p.result["addons"]).decode(), region, f"{name}/addons (merged)")
    result = lint_body(s, s.cache.get_object(p.result["template"]).decode(), region, f"{s.stack_name(name, env)}.yml")
    if p.result.get("addons"):
        # The stage's key covers both templates; without addons it is the key lint_body just recorded.
        s.cache.put_action("lint", st.key, result)
    s.changed()
    return result


def deploy_status(s: Session, name: str, env: str) -> Status:
    def compute():
        lt = lint_status(s, name, env)
        if lt.run:
            return Status(True, f"after lint:{name}@{env}")
        p = package_status(s, name, env)
        params = json.loads(s.cache.get_object(p.result["parameters"]))
        tags = s.tags(name, env)
        k = stack.key(p.result["template"], params, tags)
        inputs = {"template": p.result["template"], "parameters": params, "tags": tags}
        stack_name = s.stack_name(name, env)
        rec = s.cache.get_action("deploy", k)
        ok, why = stack.live_ok(s.stacks(env), stack_name, k, params, (rec or {}).get("result", {}).get("updated"))
        if s.opts.force:
            return Status(True, "force: deploy even if nothing changed", k, None, inputs)
        if ok:
            return Status(False, why, k, {"stack": stack_name}, inputs)
        if rec:
            return Status(True, why, k, None, inputs)
        return Status(True, f"{why}; {s.why('deploy', stage_id('deploy', name, env), inputs, k)}", k, None, inputs)
    return s.memo(("deploy", name, env), compute)


def run_deploy(s: Session, name: str, env: str) -> dict:
    st = runnable(s, "deploy", name, env)
    if st is None:
        return deploy_status(s, name, env).result
    m = s.manifests[(name, env)]
    target = s.target(env)
    p = package_status(s, name, env)
    body = s.cache.get_object(p.result["template"]).decode()
    stack_name = s.stack_name(name, env)
    from .templates.env import EXPORTS
    env_outputs = set((env_status(s, env).result or {}).get("outputs") or {})
    deploy_body = for_target(target, body, set(EXPORTS) - env_outputs)
    if s.opts.no_rollback:
        print(stack.NO_ROLLBACK_WARNING)
    print(f"deploying stack {stack_name} ({target.kind} target): {st.reason}")
    started = time.time()
    out = stack.deploy(target, stack_name, deploy_body, st.inputs["parameters"],
                       {**st.inputs["tags"], stack.KEY_TAG: st.key.hex}, disable_rollback=s.opts.no_rollback)
    s.changed(env)
    if s.opts.force and m.type != JOB:
        cluster = (env_status(s, env).result or {}).get("outputs", {}).get("ClusterId")
        print("  " + stack.force_new_deployment(target, stack_name, cluster, started))
    elif s.opts.force:
        print(f"  --force: {name} is a Scheduled Job; it has no service to roll (its next run uses the current image)")
    live = s.stacks(env).get(stack_name)
    ok, why = stack.live_ok(s.stacks(env), stack_name, st.key, st.inputs["parameters"])
    if not ok:
        raise StageFailed(f"after deploying, {why}")
    result = {"stack": stack_name, "stack_id": out.get("stack_id"), "status": live["status"], "updated": live["updated"]}
    s.record("deploy", stage_id("deploy", name, env), st.key, result, st.inputs)
    image = st.inputs["parameters"].get("ContainerImage")
    kind = "job" if m.type == JOB else "service"
    runs = stack.physical_id(target, stack_name, "StateMachine" if m.type == JOB else "Service")
    what = "state machine" if m.type == JOB else "ECS service"
    print(f"deployed {kind} {name} to {env}: stack {stack_name} ({live['status']}), image {image}, {what} {runs}")
    return result


# Every stage by name, with one signature (the env stage has no workload: its `name` is None).
STATUS = {"env": lambda s, name, env: env_status(s, env), "build": build_status, "push": push_status,
          "package": package_status, "lint": lint_status, "deploy": deploy_status}
RUN = {"env": lambda s, name, env: run_env(s, env), "build": run_build, "push": run_push, "package": run_package,
       "lint": run_lint, "deploy": run_deploy}
