"""One run: the options, the workspace and its selection, the cache, the targets, memoised answers.

Nothing here is specific to a stage: stages (copilot_doit/stages/) keep their own logic and use the
session for what every stage shares — the validated manifests, one target per environment, one stack
listing per environment per run, the cache and its records, and memos.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path
from typing import Callable

from . import yamlsrc
from .cache import Cache
from .domain import app_domain, check_workload as check_workload_domain, has_imported_certs, wants_domain
from .errors import UserError
from .hashing import Key, StatCache
from .stacks import workload_stack_name
from .manifest import EnvManifest, Manifest, load_environment, load_workload
from .targets import Target, target_for
from .values import field, value
from .workspace import EnvSettings, Workspace, find_workspace_dir, load_workspace, select


@value
class Options:
    names: list[str] | None = None
    envs: list[str] | None = None
    app: str | None = None
    force: bool = False
    no_rollback: bool = False
    resource_tags: dict = field(default_factory=dict)
    tag: str | None = None
    # Environment stacks (Copilot's --deploy-env / --no-deploy-env): None (default) creates a missing one and
    # updates copilot-doit's own, except one Copilot's SSM entry marks `prod` (asked on a TTY, else kept);
    # True also replaces a Copilot-made one's template and updates prod; False never updates an existing one.
    deploy_env: bool | None = None
    prod_confirmed: tuple = ()  # environments marked prod whose update was confirmed on a TTY (cli.py)
    detach: bool = False       # --detach: start workload stack operations and return without waiting


# Tags copilot-doit and Copilot set themselves: a user's value would be silently replaced, so refuse it.
RESERVED_TAGS = ("copilot-application", "copilot-environment", "copilot-service", "copilot-doit:deploy-key")
# Docker's tag grammar (distribution/reference): the image tag must be a valid one for every registry.
IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def parse_resource_tags(text: str | None) -> dict:
    """`k=v,k2=v2` (cobra's StringToString), within AWS's tag limits and without Copilot's own keys."""
    out: dict = {}
    if not text:
        return out
    for item in text.split(","):
        if not item.strip():
            continue
        k, sep, v = item.partition("=")
        k, v = k.strip(), v.strip()
        if not sep or not k:
            raise UserError(f"'{item}' is not key=value", field="resource-tags", allowed="k1=v1,k2=v2")
        if k in RESERVED_TAGS:
            raise UserError(f"tag key '{k}' is reserved: copilot-doit sets it itself", field="resource-tags",
                            allowed=f"any key but {', '.join(RESERVED_TAGS)}")
        if len(k) > 128 or len(v) > 256 or k.lower().startswith("aws:"):
            raise UserError(f"tag '{k[:40]}' is outside AWS's tag limits", field="resource-tags",
                            allowed="keys of 1-128 characters not starting with 'aws:', values up to 256")
        out[k] = v
    return out


def check_image_tag(tag: str | None) -> None:
    if tag is not None and not IMAGE_TAG_RE.match(tag):
        raise UserError(f"'{tag[:60]}{'…' if len(tag) > 60 else ''}' is not a valid image tag", field="tag",
                        allowed="1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'")


def cache_root_for(ws_root: Path) -> Path:
    return Path(os.environ.get("COPILOT_DOIT_CACHE") or ws_root / "cache")


def _cache_client_factory(cfg: dict, cache_root: Path):
    """boto3 clients for the shared cache's account (S3, and SSM/Secrets Manager for its key)."""
    def client(service: str):
        settings = EnvSettings(name="cache", target=cfg.get("target", "aws"), region=cfg.get("region", "us-east-1"),
                               profile=cfg.get("profile"))
        return target_for(settings, cache_root).client(service)
    return client


def remote_store(ws: Workspace, cache_root: Path):
    """The shared S3 cache named in copilot-doit.yml (`cache: {s3: {...}}`), or None."""
    cfg = (ws.cache_config or {}).get("s3")
    if not cfg:
        return None
    from .cache import S3Store
    factory = _cache_client_factory(cfg, cache_root)
    return S3Store(cfg["bucket"], cfg.get("prefix", ""), cfg.get("expected_owner"), lambda: factory("s3"))


def team_key(ws: Workspace, cache_root: Path):
    """The key that authenticates cache records (README: trust model): $COPILOT_DOIT_CACHE_KEY or the
    source named by `cache.s3.hmac_key`; fetched on first use only."""
    from .trust import TeamKey, key_source_from_config
    cfg = (ws.cache_config or {}).get("s3") or {}
    return TeamKey(key_source_from_config(ws.cache_config), _cache_client_factory(cfg, cache_root))


def check_build_context(m: Manifest, root: Path, resolved_root: Path, home: Path) -> None:
    """The build context is sent to the engine and hashed file by file: the filesystem root or a home
    folder would take minutes and send secrets along, so they are refused; a context outside the
    repository is accepted (Copilot accepts it) with a warning. `resolved_root`, `home`: `root` and the
    user's home folder resolved (once per run, not per workload)."""
    cfg = m.build_config(root)
    if cfg is None:
        return
    context = cfg.context   # resolved already
    path = ("image", "build", "context") if isinstance(m.image.get("build"), dict) else ("image", "build")
    if context == Path("/") or context == home or context.parent == Path("/home"):
        m.fail(path, f"the build context {context} is the filesystem root or a home folder",
               allowed="a folder holding the Dockerfile's inputs, relative to the workspace root")
    if not context.is_relative_to(resolved_root):
        print(f"warning: {m.file}: the build context {context} is outside the workspace {root}", file=sys.stderr)


def check_subscriptions(m: Manifest, ws: Workspace, loaded: dict) -> None:
    """`subscribe.topics[].service` names a workload of this workspace that publishes that topic."""
    topics = (m.data.get("subscribe") or {}).get("topics") or []
    for i, topic in enumerate(topics):
        service = topic.get("service")
        path = ("subscribe", "topics", i, "service")
        if service not in ws.workloads:
            m.fail(path, f"no workload named '{service}' in this workspace",
                   allowed=", ".join(ws.workloads) or "none found")
        try:
            publisher = loaded.get((service, m.env)) or load_workload(ws.manifest_path(service), ws.app, m.env, service)
        except UserError:
            continue  # its own deploy reports its own mistake
        published = [t.get("name") for t in (publisher.data.get("publish") or {}).get("topics") or []]
        if topic.get("name") not in published:
            m.fail(("subscribe", "topics", i, "name"),
                   f"workload '{service}' publishes no topic named '{topic.get('name')}'",
                   allowed=", ".join(str(t) for t in published) or f"none: {service} has no publish.topics")


YAML_MEMO = "yaml-memo.bin"

# Memo keys (first element) that are facts about shared things (a registry digest, an uploaded object, an
# imported load balancer), not about one workload: forgotten when a change says it may have touched that
# kind of thing (Session.changed's `facts`; all of them unless the caller says which).
SHARED_FACTS = ("in-registry", "s3-object", "imported-alb")

# A workload's stages in pipeline order: a stage's run changes its own status and every later stage's (they
# read it through its status), never an earlier one's (Session.changed's `stage`).
WORKLOAD_ORDER = ("build", "push", "package", "lint", "deploy")


class Change:
    """One Session.changed call, kept in the session's log: what it made stale, answered by `drops` for a
    memo key and by `drops_stack` for a stack read. The log lets a memo computed while changes happened (checks
    run beside stages under -j N) ask exactly whether one of them touched it."""

    __slots__ = ("everything", "name", "stages", "facts", "env", "stack")

    def __init__(self, name: str | None, stage: str | None, facts, env: str | None, stack: str | None):
        self.everything = name is None
        self.name = name
        # None: all of the workload's answers (no stage said, or the env's stage, which has no workload)
        self.stages = WORKLOAD_ORDER[WORKLOAD_ORDER.index(stage):] if stage in WORKLOAD_ORDER else None
        self.facts = tuple(facts)
        self.env, self.stack = env, stack

    def drops(self, key) -> bool:
        if self.everything:
            return True
        if not isinstance(key, tuple) or len(key) < 2:
            return True            # not a workload's and not a named fact: conservatively, any change
        if key[0] in SHARED_FACTS:
            return key[0] in self.facts
        # Of the workload's answers, only an earlier stage's status outlives a later stage's change.
        return key[1] == self.name and (self.stages is None or key[0] not in WORKLOAD_ORDER or key[0] in self.stages)

    def drops_stack(self, key) -> bool:
        """Whether a stack read under `key` (the env's listing, or (env, stack name)) may be stale now."""
        if self.env is None:
            return self.everything  # a change of everything (or a forget) also re-reads what was on the wire
        if key == self.env:
            return True            # the region's listing holds every stack of the env
        if not (isinstance(key, tuple) and key[0] == self.env):
            return False
        # The changed stack, and its nested stacks (named `<parent>-<logical id>-<suffix>`): a workload's
        # deploy changes no other stack of the environment.
        return self.stack is None or key[1] == self.stack or key[1].startswith(self.stack + "-")


def load_workspace_with_memo(app_override: str | None = None) -> Workspace:
    """load_workspace, reading YAML through the parsed-YAML memo (yamlsrc.Memo) of the workspace's cache: a
    no-op then never imports PyYAML. The memo is written back only by a run that ended without error."""
    try:
        yamlsrc.use_memo(cache_root_for(find_workspace_dir().parent) / YAML_MEMO)
    except UserError:
        pass  # load_workspace says what is wrong
    return load_workspace(app_override=app_override)


# A run that reads at most this many stacks of an environment asks for each by name (Session.stacks).
STACKS_BY_NAME = 3


class StacksByName:
    """An environment's stacks as a read-only mapping that asks for each stack by name when first read."""

    def __init__(self, session, env: str):
        self._session, self._env = session, env

    def get(self, name: str, default=None):
        found = self._session.stack(self._env, name)
        return default if found is None else found

    def __getitem__(self, name: str) -> dict:
        found = self._session.stack(self._env, name)
        if found is None:
            raise KeyError(name)
        return found

    def __contains__(self, name: str) -> bool:
        return self._session.stack(self._env, name) is not None


class Session:
    """One run: the workspace, the selection, the cache, and memoised statuses."""

    def __init__(self, opts: Options):
        check_image_tag(opts.tag)
        self.opts = opts
        self.ws: Workspace = load_workspace_with_memo(opts.app)
        self.names, self.envs = select(self.ws, opts.names, opts.envs)
        self.cache_root = cache_root_for(self.ws.root)
        self.cache = Cache(self.cache_root, remote_store(self.ws, self.cache_root), team_key(self.ws, self.cache_root))
        self.stat_cache = StatCache(self.cache_root / "state.db")
        self.pid = os.getpid()
        self.facts: dict = {}   # answers that hold for the whole run (e.g. the git describe text)
        self._flushers: list[Callable] = [self.stat_cache.flush]
        self._targets: dict[str, Target] = {}
        self._stacks: dict = {}   # env -> the region's listing; (env, name) -> {"stack": one stack or None}
        self._stacks_changed: set[str] = set()   # envs where a stage changed a stack this run
        self._memo: dict = {}
        # Every change of the world this run (changed, forget_everything), in order. An answer computed while
        # one of them touched it is stale and is not stored (memo, _remember): checks may run beside stages.
        self._changes: list[Change] = []
        self._locks: dict = {}
        self._locks_lock = threading.Lock()
        self._taken: set = set()   # keys of work a stage took this run (first_to_take)
        self._background: list[threading.Thread] = []   # this run's checks going on beside it (settle)
        self.stopping = threading.Event()   # the run is ending: what runs in the background takes no new job
        # Every selected manifest is read and validated up front: a mistake stops the run before
        # anything is applied, with file, field and line.
        self.env_manifests: dict[str, EnvManifest] = {
            e: load_environment(self.ws.env_manifest_path(e), self.ws.app, e) for e in self.envs}
        self.manifests: dict[tuple[str, str], Manifest] = {
            (n, e): load_workload(self.ws.manifest_path(n), self.ws.app, e, n) for n in self.names for e in self.envs}
        resolved_root, home = self.ws.root.resolve(), Path.home().resolve()
        for m in self.manifests.values():  # paths too (Dockerfile, context, env_file): a stat each
            check_build_context(m, self.ws.root, resolved_root, home)
            if m.data.get("env_file") and not (self.ws.root / m.data["env_file"]).is_file():
                m.fail(("env_file",), f"{self.ws.root / m.data['env_file']} does not exist",
                       allowed="a path relative to the workspace root (the folder above the workspace)")
            check_subscriptions(m, self.ws, self.manifests)
            env_data = self.env_manifests[m.env].data
            # Imported certificates decide aliases without the domain: only otherwise may Copilot's SSM
            # entry of the app (a network call on real AWS) be read to find it.
            needs_domain = wants_domain(m) and not has_imported_certs(env_data)
            check_workload_domain(m, env_data, self.ws.app,
                                  app_domain(self, m.env) if needs_domain else self.ws.domain)

    # --- shared lookups -------------------------------------------------------------------------------
    def target(self, env: str) -> Target:
        try:
            return self._targets[env]
        except KeyError:
            pass
        with self.lock_for(("target", env)):  # statuses run in threads: one target (and one service start)
            if env not in self._targets:
                self._targets[env] = target_for(self.ws.env_settings(env), self.cache_root, self.ws.app)
            return self._targets[env]

    def execution_role(self, env: str) -> str | None:
        """Copilot's CloudFormation execution role of an environment it registered (SSM `executionRoleARN`):
        Copilot creates and updates stacks as that role, and so does copilot-doit; None when standalone."""
        entry = self.target(env).copilot_env(self.ws.app, env)
        return (entry.execution_role_arn or None) if entry is not None else None

    def stacks(self, env: str, every: bool = False):
        """The environment's stacks by name, shared by the env and every workload stage: one DescribeStacks
        page walk of the region per run, or, when this run reads no more than STACKS_BY_NAME of them (the
        environment's and one or two workloads'), each asked for by name — an account may hold hundreds of
        stacks, and a walk of them costs a page (a round trip) per hundred. `every`: the whole listing
        (plan's orphan search)."""
        if not every and self._by_name(env):
            return StacksByName(self, env)
        listing = self._stacks.get(env)
        if listing is None:
            with self.lock_for(("stacks", env)):
                listing = self._stacks.get(env)
                if listing is None:   # (an env without stacks is an empty listing, remembered too)
                    listing = self._remember(env, self.target(env).describe_stacks)
        return listing  # a local: another thread's changed() may drop the entry at any moment

    def _remember(self, key, read: Callable):
        """`read()`, remembered under `key` (an env's listing, or (env, stack name)) — unless a change touched
        that read (Change.drops_stack) while it was on the wire: then it is stale, and read again."""
        while True:
            seen = len(self._changes)
            value = read()
            with self._locks_lock:
                if not any(c.drops_stack(key) for c in self._changes[seen:]):
                    self._stacks[key] = value
                    return value

    def walks_stacks(self, env: str) -> bool:
        """Whether this run's next read of the env's stacks is the region's walk (not reads by name)."""
        return env not in self._stacks and not self._by_name(env)

    def _by_name(self, env: str) -> bool:
        """Stacks are read by name when the run needs few of them, or once it changed one of the env's
        stacks (changed(env) drops the listing): each later check then reads its own stack in one round
        trip instead of walking the region's pages again (a -j 8 deploy of 20 workloads walked the region
        once per deployed workload, each walk in doit's dispatching thread, which every worker waits on)."""
        if env in self._stacks:
            return False
        return 1 + len(self.names) <= STACKS_BY_NAME or env in self._stacks_changed

    def read_ahead(self, env: str) -> list[threading.Thread]:
        """Started threads reading, by name, the selected workloads' stacks of `env` when this run asks for
        stacks by name (`stacks`): each workload's deploy check, at the end of its chain of checks (build,
        push, package, lint), then finds its stack read already instead of waiting one more round trip
        (~20 ms of a one-workload no-op on the emulator). None when the env's stacks come from one walk."""
        if not self._by_name(env):
            return []   # the first check walks the region, once (not here: that would hold up the checks)

        def read(name: str) -> None:
            try:
                self.stack(env, name)
            except Exception:  # noqa: BLE001 — the deploy check asks again and reports it in its words
                pass
        threads = [threading.Thread(target=read, args=(self.stack_name(n, env),), daemon=True) for n in self.names]
        for t in threads:
            t.start()
        return threads

    def stack(self, env: str, name: str) -> dict | None:
        """One stack of the environment (None: there is none), asked once per run until changed(env)."""
        key = (env, name)
        try:
            return self._stacks[key]["stack"]
        except KeyError:
            pass
        with self.lock_for(("stack", env, name)):
            found = self._stacks.get(key)
            if found is None:
                found = self._remember(key, lambda: {"stack": self.target(env).describe_stack(name)})
            return found["stack"]

    def changed(self, env: str | None = None, name: str | None = None, *, stage: str | None = None,
                facts=SHARED_FACTS, stack: str | None = None) -> None:
        """Forget memoised answers (and stack reads) after a stage changed the world. Without `name`,
        everything. With `name`, that workload's answers (in every environment: two environments share an
        image) — only its `stage`'s and the later stages' when `stage` is given — and the shared facts of
        the kinds in `facts` (all by default: say which, or none, when the change cannot touch them). With
        `env`, the env's stack listing and its stack reads — only `stack`'s (and its nested stacks') when
        given. Other workloads' answers still hold: a deploy of one workload among fifty does not re-check the
        other forty-nine after each of its stages, nor its own build after its lint."""
        target = self._targets.get(env) if env is not None else None
        if target is not None:
            target.stacks_changed()   # a read it started ahead (warm_up's walk) is stale now
        change = Change(name, stage, facts, env, stack)
        with self._locks_lock:
            self._changes.append(change)
            if change.everything:
                self._memo.clear()
            else:
                for key in [k for k in self._memo if change.drops(k)]:
                    self._memo.pop(key, None)
            if env is not None:
                self._stacks_changed.add(env)
                for key in [k for k in self._stacks if change.drops_stack(k)]:
                    self._stacks.pop(key, None)

    def forget_everything(self) -> None:
        """Drop every memo and stack listing (a forked worker process starts from the world; a handed-over
        session whose checks another run may have made stale)."""
        self.settle()   # checks still going on would answer for the world as it was
        with self._locks_lock:
            self._changes.append(Change(None, None, SHARED_FACTS, None, None))
            self._memo.clear()
            self._stacks.clear()
        self.facts.pop("prefetched", None)   # the next check computes them all again, concurrently

    def memo(self, key, fn: Callable):
        """`fn()` once per key until the world changes (`changed`). Thread-safe: statuses are computed
        concurrently (stages.prefetch), and a key computed by one thread is waited for by the others."""
        try:
            return self._memo[key]
        except KeyError:
            pass
        with self.lock_for(key):
            try:
                return self._memo[key]
            except KeyError:
                pass
            seen = len(self._changes)
            value = fn()
            with self._locks_lock:
                # Computed while a stage changed what it depends on (checks run beside stages, prefetch):
                # returned to its caller, who asked before that change, but not kept for later askers.
                if not any(c.drops(key) for c in self._changes[seen:]):
                    self._memo[key] = value
            return value  # a local: another thread's changed() may clear the memo at any moment

    def once(self, key, fn: Callable):
        """`fn()` once per run (facts that no stage changes: the git describe text, the base-image memo)."""
        try:
            return self.facts[key]
        except KeyError:
            pass
        with self.once_lock(key):
            if key not in self.facts:
                self.facts[key] = fn()
            return self.facts[key]  # facts are never cleared

    def once_lock(self, key) -> threading.RLock:
        """The lock `once(key)` holds while it computes: a caller that would start work for that fact in the
        background takes it without waiting, and starts nothing while `once` is asking (git.start_run_tag)."""
        return self.lock_for(("once", key))

    def in_background(self, fn: Callable, name: str) -> None:
        """`fn()` in a thread beside the run (stages.prefetch's checks); `settle` waits for it."""
        thread = threading.Thread(target=fn, name=name, daemon=True)
        with self._locks_lock:
            self._background.append(thread)
        thread.start()

    def settle(self) -> None:
        """Wait for what runs in the background (before a fork, before forgetting every answer, at exit):
        a thread must not be copied mid-flight into a forked child, nor outlive the run's last flush."""
        me = threading.current_thread()
        while True:
            with self._locks_lock:
                waiting = [t for t in self._background if t is not me]
                self._background = [t for t in self._background if t is me]
            if not waiting:
                return
            for thread in waiting:
                thread.join()

    def stop_background(self) -> None:
        """The run is ending (its exit; doit stopped at a failure or a Ctrl-C before asking every check):
        what runs in the background takes no new job and is not waited for. A check cut short is asked
        again by the next run; an endpoint that stopped answering must not hold up the exit."""
        self.stopping.set()

    def lock_for(self, key) -> threading.RLock:
        """One lock per key for this run (threads of one process)."""
        with self._locks_lock:
            return self._locks.setdefault(key, threading.RLock())

    def first_to_take(self, key) -> bool:
        """Whether no task took the work under `key` before in this run (and, from now on, that one did)."""
        with self._locks_lock:
            if key in self._taken:
                return False
            self._taken.add(key)
            return True

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
        return workload_stack_name(self.ws.app, env, name)

    def tags(self, name: str, env: str) -> dict:
        """`--resource-tags` merged with Copilot's reserved tags; the reserved ones win."""
        tags = dict(self.opts.resource_tags)
        tags.update({"copilot-application": self.ws.app, "copilot-environment": env, "copilot-service": name})
        return dict(sorted(tags.items()))
