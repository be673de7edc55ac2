"""The workspace: Copilot's folder layout, the app name, and per-environment deploy settings.

    <root>/copilot/ or <root>/manifests/     the workspace folder (found walking up from the cwd)
        .workspace                           application: <app>
        copilot-doit.yml                     deploy settings Copilot keeps in SSM (target, region, ...)
        <workload>/manifest.yml  <workload>/addons/
        environments/<env>/manifest.yml

Paths in manifests are relative to <root>, the parent of the workspace folder, as in Copilot.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from . import yamlsrc
from .errors import UserError
from .values import field, value

WORKSPACE_DIRS = ("copilot", "manifests")
CONFIG_FILE = "copilot-doit.yml"
SPECIAL_DIRS = {"environments", "pipelines", "addons", "overrides"}
NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
# Copilot's workload and environment names (internal/pkg/cli/validate.go, basicNameValidation).
COPILOT_NAME_RE = re.compile(r"^[a-z][a-z0-9-]+$")
COPILOT_NAME_RULE = ("at least 2 characters, starting with a letter, only lower-case letters, digits and "
                     "hyphens, no consecutive or trailing hyphen")
MAX_PARENTS = 5
TARGETS = ("local", "aws")
# A DNS name as Route 53 and ACM take it: 2+ labels of letters, digits and inner hyphens, 253 characters at most.
DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN_RE = re.compile(rf"^{DNS_LABEL}(?:\.{DNS_LABEL})+$")


@value(frozen=True)
class EnvSettings:
    name: str
    target: str = "aws"           # "local": the embedded moto server + registry; "aws": real AWS
    region: str = "us-east-1"
    profile: str | None = None
    account: str | None = None    # expected account id; a mismatch is an error before anything changes
    region_set: bool = False      # `region` written in copilot-doit.yml (else Copilot's SSM entry may say it)
    registry_region: str | None = None  # `application.region`: where Copilot keeps the app's SSM registry


@value
class Workspace:
    root: Path                    # parent of the workspace folder: base of every relative path
    dir: Path                     # the copilot/ or manifests/ folder
    app: str
    workloads: list[str]
    environments: list[str]
    settings: dict[str, EnvSettings] = field(default_factory=dict)
    cache_config: dict = field(default_factory=dict)
    domain: str | None = None     # the application domain (`application: {domain: ...}`), Copilot's SSM value
    registry_region: str | None = None  # `application: {region: ...}`: the app's home region (Copilot's SSM)

    def manifest_path(self, workload: str) -> Path:
        return self.dir / workload / "manifest.yml"

    def env_manifest_path(self, env: str) -> Path:
        return self.dir / "environments" / env / "manifest.yml"

    def addons_dir(self, workload: str) -> Path:
        return self.dir / workload / "addons"

    def env_settings(self, env: str) -> EnvSettings:
        return self.settings.get(env) or EnvSettings(name=env, registry_region=self.registry_region)


def find_workspace_dir(start: Path | None = None) -> Path:
    env = os.environ.get("COPILOT_DOIT_WORKSPACE")
    if env:
        p = Path(env).resolve()
        if not (p / ".workspace").is_file():
            raise UserError("no .workspace file in the folder named by COPILOT_DOIT_WORKSPACE", file=str(p))
        return p
    cur = (start or Path.cwd()).resolve()
    for _ in range(MAX_PARENTS + 1):
        if cur.name in WORKSPACE_DIRS and (cur / ".workspace").is_file():
            return cur
        for name in WORKSPACE_DIRS:
            if (cur / name / ".workspace").is_file():
                return cur / name
        if cur.parent == cur:
            break
        cur = cur.parent
    raise UserError("no workspace found: expected a copilot/ or manifests/ folder with a .workspace file "
                    f"in {Path.cwd()} or up to {MAX_PARENTS} folders above it")


def _read_yaml(path: Path):
    return yamlsrc.load(path, yamlsrc.read_text(path), variables=None)


def load_workspace(start: Path | None = None, app_override: str | None = None) -> Workspace:
    wdir = find_workspace_dir(start)
    wfile = wdir / ".workspace"
    data, lines = _read_yaml(wfile)
    if not isinstance(data, dict) or not isinstance(data.get("application"), str):
        raise UserError("must hold 'application: <name>'", file=str(wfile), field="application",
                        line=yamlsrc.line_of(lines, ("application",)))
    app = app_override or data["application"]
    if not NAME_RE.match(app) or len(app) > 32:
        raise UserError(f"invalid application name '{app}'", file=str(wfile), field="application",
                        line=yamlsrc.line_of(lines, ("application",)),
                        allowed="lowercase letters, digits and hyphens, starting with a letter, at most 32")
    workloads = sorted(p.name for p in wdir.iterdir()
                       if p.is_dir() and p.name not in SPECIAL_DIRS and (p / "manifest.yml").is_file())
    env_dir = wdir / "environments"
    envs = sorted(p.name for p in env_dir.iterdir() if (p / "manifest.yml").is_file()) if env_dir.is_dir() else []
    ws = Workspace(root=wdir.parent, dir=wdir, app=app, workloads=workloads, environments=envs)
    _load_config(ws)
    return ws


def _load_config(ws: Workspace) -> None:
    path = ws.dir / CONFIG_FILE
    if not path.exists():
        return
    data, lines = _read_yaml(path)
    data = data or {}
    if not isinstance(data, dict):
        raise UserError("must be a mapping with 'environments:' and optional 'cache:' and 'application:'",
                        file=str(path), line=1)
    for key in data:
        if key not in ("environments", "cache", "application"):
            raise UserError("is not a known setting", file=str(path), field=str(key),
                            line=yamlsrc.line_of(lines, (key,)), allowed="environments, cache, application")
    ws.domain = _application_domain(data.get("application"), path, lines)
    ws.registry_region = _application_region(data.get("application"), path, lines)
    envs = data.get("environments") or {}
    if not isinstance(envs, dict):
        raise UserError("must be a mapping of environment name to settings", file=str(path),
                        field="environments", line=yamlsrc.line_of(lines, ("environments",)))
    allowed = ("target", "region", "profile", "account")
    for env, s in envs.items():
        s = s or {}
        where = ("environments", env)
        if not isinstance(s, dict):
            raise UserError("must be a mapping", file=str(path), field=yamlsrc.field_name(where),
                            line=yamlsrc.line_of(lines, where), allowed=", ".join(allowed))
        for k, v in s.items():
            if k not in allowed:
                raise UserError("is not a known environment setting", file=str(path),
                                field=yamlsrc.field_name(where + (k,)), line=yamlsrc.line_of(lines, where + (k,)),
                                allowed=", ".join(allowed))
            if not isinstance(v, str):
                raise UserError("must be a string", file=str(path), field=yamlsrc.field_name(where + (k,)),
                                line=yamlsrc.line_of(lines, where + (k,)))
        target = s.get("target", "aws")
        if target not in TARGETS:
            raise UserError(f"unknown target '{target}'", file=str(path),
                            field=yamlsrc.field_name(where + ("target",)),
                            line=yamlsrc.line_of(lines, where + ("target",)), allowed=", ".join(TARGETS))
        ws.settings[env] = EnvSettings(name=env, target=target, region=s.get("region", "us-east-1"),
                                       profile=s.get("profile"), account=s.get("account"),
                                       region_set="region" in s, registry_region=ws.registry_region)
    cache = data.get("cache") or {}
    if not isinstance(cache, dict):
        raise UserError("must be a mapping", file=str(path), field="cache", line=yamlsrc.line_of(lines, ("cache",)))
    for k in cache:
        if k != "s3":
            raise UserError("is not a known cache setting", file=str(path), field=f"cache.{k}",
                            line=yamlsrc.line_of(lines, ("cache", k)), allowed="s3")
    s3 = cache.get("s3")
    if s3 is not None:
        allowed = ("bucket", "prefix", "expected_owner", "region", "profile", "target", "hmac_key")
        if not isinstance(s3, dict) or not isinstance(s3.get("bucket"), str):
            raise UserError("needs at least 'bucket: <name>'", file=str(path), field="cache.s3",
                            line=yamlsrc.line_of(lines, ("cache", "s3")), allowed=", ".join(allowed))
        for k, v in s3.items():
            where = ("cache", "s3", k)
            if k not in allowed:
                raise UserError("is not a known setting", file=str(path), field=yamlsrc.field_name(where),
                                line=yamlsrc.line_of(lines, where), allowed=", ".join(allowed))
            if k == "hmac_key":  # {env: NAME} | {ssm: /name} | {secretsmanager: name}: see trust.py
                from .trust import parse_key_source
                parse_key_source(v, file=str(path), line=yamlsrc.line_of(lines, where))
                continue
            if not isinstance(v, str):
                raise UserError("must be a string (quote account ids)", file=str(path),
                                field=yamlsrc.field_name(where), line=yamlsrc.line_of(lines, where))
        if s3.get("target", "aws") not in TARGETS:
            raise UserError(f"unknown target '{s3['target']}'", file=str(path), field="cache.s3.target",
                            line=yamlsrc.line_of(lines, ("cache", "s3", "target")), allowed=", ".join(TARGETS))
    ws.cache_config = cache


def _application_domain(app_cfg, path: Path, lines: dict) -> str | None:
    """`application: {domain: example.com}`: the domain Copilot keeps in SSM (`copilot app init --domain`)."""
    if app_cfg is None:
        return None
    if not isinstance(app_cfg, dict):
        raise UserError("must be a mapping", file=str(path), field="application",
                        line=yamlsrc.line_of(lines, ("application",)), allowed="domain, region")
    for k in app_cfg:
        if k not in ("domain", "region"):
            raise UserError("is not a known application setting", file=str(path), field=f"application.{k}",
                            line=yamlsrc.line_of(lines, ("application", k)), allowed="domain, region")
    domain = app_cfg.get("domain")
    if domain is None:
        return None
    where = dict(file=str(path), field="application.domain", line=yamlsrc.line_of(lines, ("application", "domain")))
    if not isinstance(domain, str):
        raise UserError("must be a string", **where, allowed="a DNS name such as example.com")
    if len(domain) > 253 or not DOMAIN_RE.match(domain):
        raise UserError(f"'{domain[:80]}' is not a DNS name", **where,
                        allowed="lower-case labels of letters, digits and hyphens separated by dots, such as example.com")
    return domain


REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def _application_region(app_cfg, path: Path, lines: dict) -> str | None:
    """`application: {region: us-west-2}`: the region where Copilot keeps the application's registry (the
    region `copilot app init` ran in). Checked by _application_domain's loop for unknown keys first."""
    region = app_cfg.get("region") if isinstance(app_cfg, dict) else None
    if region is None:
        return None
    if not isinstance(region, str) or not REGION_RE.match(region):
        raise UserError(f"'{str(region)[:40]}' is not an AWS region", file=str(path), field="application.region",
                        line=yamlsrc.line_of(lines, ("application", "region")), allowed="a region name such as us-west-2")
    return region


def select(ws: Workspace, names: list[str] | None, envs: list[str] | None) -> tuple[list[str], list[str]]:
    """Validate a `name=`/`env=` selection against the workspace (default: all)."""
    names = names or ws.workloads
    envs = envs or ws.environments
    for n in names:
        if n not in ws.workloads:
            raise UserError(f"no workload named '{n}' in {ws.dir}", field="name",
                            allowed=", ".join(ws.workloads) or "none found")
        check_name(n, "workload", ws.manifest_path(n))
    for e in envs:
        if e not in ws.environments:
            raise UserError(f"no environment named '{e}' in {ws.dir / 'environments'}", field="env",
                            allowed=", ".join(ws.environments) or "none found")
        check_name(e, "environment", ws.env_manifest_path(e))
    return names, envs


def check_name(name: str, kind: str, where: Path) -> None:
    """Copilot's rule for workload and environment names (they become stack, repository and DNS names)."""
    if not COPILOT_NAME_RE.match(name) or "--" in name or name.endswith("-") or len(name) > 255:
        raise UserError(f"{kind} name '{name}' (its folder name) is invalid", file=str(where), field="name",
                        allowed=COPILOT_NAME_RULE)
