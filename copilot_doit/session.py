"""One run: the options, the workspace and its selection, the cache, the targets, memoised answers.

Nothing here is specific to a stage: stages (copilot_doit/stages/) keep their own logic and use the
session for what every stage shares — the validated manifests, one target per environment, one stack
listing per environment per run, the cache and its records, and memos.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .cache import Cache
from .errors import UserError
from .hashing import Key, StatCache
from .manifest import EnvManifest, Manifest, load_environment, load_workload
from .targets import Target, target_for
from .workspace import EnvSettings, Workspace, load_workspace, select


@dataclass
class Options:
    names: list[str] | None = None
    envs: list[str] | None = None
    app: str | None = None
    force: bool = False
    no_rollback: bool = False
    resource_tags: dict = field(default_factory=dict)
    tag: str | None = None


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
        self.facts: dict = {}   # answers that hold for the whole run (e.g. the git describe text)
        self._flushers: list[Callable] = [self.stat_cache.flush]
        self._targets: dict[str, Target] = {}
        self._stacks: dict[str, dict] = {}
        self._memo: dict = {}
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

    def changed(self, env: str | None = None) -> None:
        """Forget memoised answers (and the env's stack listing) after a stage changed the world."""
        self._memo.clear()
        if env is not None:
            self._stacks.pop(env, None)

    def memo(self, key, fn: Callable):
        """`fn()` once per key until the world changes (`changed`)."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    # --- the cache's records ------------------------------------------------------------------------
    def record(self, stage: str, task: str, k: Key, result: dict, inputs: dict) -> None:
        result = {**result, "inputs": self.cache.put_json(inputs)}
        self.cache.put_action(stage, k, result, task=task)

    def why(self, stage: str, task: str, inputs: dict, k: Key | None, explain: Callable) -> str:
        """Why `task` must run: what differs from the inputs it last ran with, in the stage's words
        (`explain(old_inputs, new_inputs) -> [phrases]`)."""
        last = self.cache.get_last(stage, task)
        if last and k is not None and last.get("salt") != k.salt:
            return f"the {stage} key recipe changed ({last.get('salt')} -> {k.salt})"
        old = self.cache.get_json(last["result"]["inputs"]) if last and last["result"].get("inputs") else None
        if not old:
            return "never ran with these inputs"
        return "; ".join(explain(old, inputs)) or "inputs changed"

    def on_flush(self, fn: Callable) -> None:
        """Call `fn` whenever the run writes back what it learned (after each task, and at exit)."""
        self._flushers.append(fn)

    def flush(self) -> None:
        for fn in self._flushers:
            fn()

    # --- names of the app's resources -----------------------------------------------------------------
    def repository_name(self, name: str) -> str:
        """The workload's ECR repository `<app>/<name>` (Copilot's)."""
        return f"{self.ws.app}/{name}"

    def stack_name(self, name: str, env: str) -> str:
        return f"{self.ws.app}-{env}-{name}"[:128]

    def tags(self, name: str, env: str) -> dict:
        """`--resource-tags` merged with Copilot's reserved tags; the reserved ones win."""
        tags = dict(self.opts.resource_tags)
        tags.update({"copilot-application": self.ws.app, "copilot-environment": env, "copilot-service": name})
        return dict(sorted(tags.items()))
