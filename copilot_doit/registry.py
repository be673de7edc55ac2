"""Copilot's application registry: the SSM parameters through which `copilot svc ls`, `svc status`,
`svc logs` and `svc exec` find an application, its environments and its workloads.

Plain functions over a boto3 SSM client, shaped exactly as Copilot's `internal/pkg/config` writes them
(store.go, app.go, env.go, workload.go; schema version "1.0"):

    /copilot/applications/<app>                      {"name","account","permissionsBoundary"?,"domain",
                                                      "domainHostedZoneID","version","tags"?}
    /copilot/applications/<app>/environments/<env>   {"app","name","region","accountID","registryURL",
                                                      "executionRoleARN","managerRoleARN",...}
    /copilot/applications/<app>/components/<name>    {"app","name","type"}   (svc init / job init)

Values are Go's `json.Marshal` of those structs: compact, fields in struct order, `<`, `>`, `&` escaped.
copilot-doit reads the first two and writes only the third (`register_workload`), never overwriting an
entry. boto3 is never imported here: the caller passes a client.
"""
from __future__ import annotations

import json
import sys
import threading

from .errors import UserError
from .values import value

ROOT = "/copilot/applications/"
SCHEMA_VERSION = "1.0"

# Copilot's workload types (internal/pkg/manifest/manifestinfo): what a component entry may say.
SERVICE_TYPES = ("Request-Driven Web Service", "Load Balanced Web Service", "Backend Service", "Worker Service",
                 "Static Site")
JOB_TYPES = ("Scheduled Job",)


def app_path(app: str) -> str:
    return f"{ROOT}{app}"


def env_path(app: str, env: str) -> str:
    return f"{ROOT}{app}/environments/{env}"


def workload_path(app: str, name: str) -> str:
    return f"{ROOT}{app}/components/{name}"


@value(frozen=True)
class App:
    """`config.Application`."""
    name: str
    account: str
    domain: str = ""
    domain_hosted_zone_id: str = ""
    version: str = ""
    permissions_boundary: str = ""
    tags: tuple = ()          # ((key, value), ...) sorted: the app's resource tags


@value(frozen=True)
class Env:
    """`config.Environment`. `prod` is Copilot's deprecated flag (removed from what Copilot writes in
    v1.21, #3923): True only when an older entry still carries `"prod": true`."""
    app: str
    name: str
    region: str
    account_id: str
    registry_url: str = ""
    execution_role_arn: str = ""
    manager_role_arn: str = ""
    prod: bool = False


@value(frozen=True)
class Workload:
    """`config.Workload`."""
    app: str
    name: str
    type: str


class RegistryConflict(UserError):
    """An SSM entry exists for this workload with something else in it (another type, another app)."""


def go_json(fields: list[tuple[str, object]]) -> str:
    """Go's `json.Marshal` of a struct whose fields are `fields` in order (strings and maps of strings
    only): no spaces, non-ASCII kept, `<`, `>`, `&`, U+2028 and U+2029 escaped as Go escapes them."""
    text = json.dumps(dict(fields), separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def workload_json(app: str, name: str, wtype: str) -> str:
    """What Copilot's `createWorkload` stores: `{"app":…,"name":…,"type":…}`."""
    return go_json([("app", app), ("name", name), ("type", wtype)])


def app_json(a: App) -> str:
    """What Copilot's `CreateApplication` stores (omitempty on permissionsBoundary and tags)."""
    fields: list = [("name", a.name), ("account", a.account)]
    if a.permissions_boundary:
        fields.append(("permissionsBoundary", a.permissions_boundary))
    fields += [("domain", a.domain), ("domainHostedZoneID", a.domain_hosted_zone_id),
               ("version", a.version or SCHEMA_VERSION)]
    if a.tags:
        fields.append(("tags", dict(sorted(a.tags))))  # Go marshals map keys sorted
    return go_json(fields)


def env_json(e: Env) -> str:
    """What Copilot's `CreateEnvironment` stores (without the deprecated customConfig/telemetry)."""
    return go_json([("app", e.app), ("name", e.name), ("region", e.region), ("accountID", e.account_id),
                    ("registryURL", e.registry_url), ("executionRoleARN", e.execution_role_arn),
                    ("managerRoleARN", e.manager_role_arn)])


def _get(ssm, name: str) -> str | None:
    """The parameter's value, or None when it does not exist."""
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None


def _decode(text: str, path: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise UserError(f"SSM parameter {path} is not Copilot's JSON: {text[:120]!r}",
                        allowed="the JSON object Copilot writes (copilot app init / env init / svc init)")
    return data


def _get_json(ssm, path: str) -> dict | None:
    """The parameter's JSON object, or None when it does not exist (one GetParameter)."""
    text = _get(ssm, path)
    return None if text is None else _decode(text, path)


def _str(data: dict, key: str) -> str:
    v = data.get(key)
    return v if isinstance(v, str) else ""


def read_app(ssm, app: str) -> App | None:
    """`/copilot/applications/<app>`, or None when Copilot has no such application here (one GetParameter)."""
    d = _get_json(ssm, app_path(app))
    if d is None:
        return None
    tags = d.get("tags") if isinstance(d.get("tags"), dict) else {}
    return App(name=_str(d, "name") or app, account=_str(d, "account"), domain=_str(d, "domain"),
               domain_hosted_zone_id=_str(d, "domainHostedZoneID"), version=_str(d, "version"),
               permissions_boundary=_str(d, "permissionsBoundary"),
               tags=tuple(sorted((str(k), str(v)) for k, v in tags.items())))


def read_env(ssm, app: str, env: str) -> Env | None:
    """`/copilot/applications/<app>/environments/<env>`, or None (one GetParameter)."""
    d = _get_json(ssm, env_path(app, env))
    if d is None:
        return None
    return Env(app=_str(d, "app") or app, name=_str(d, "name") or env, region=_str(d, "region"),
               account_id=_str(d, "accountID"), registry_url=_str(d, "registryURL"),
               execution_role_arn=_str(d, "executionRoleARN"), manager_role_arn=_str(d, "managerRoleARN"),
               prod=d.get("prod") is True)


def read_workload(ssm, app: str, name: str) -> Workload | None:
    """`/copilot/applications/<app>/components/<name>`, or None (one GetParameter)."""
    d = _get_json(ssm, workload_path(app, name))
    if d is None:
        return None
    return Workload(app=_str(d, "app"), name=_str(d, "name"), type=_str(d, "type"))


def _check_same(found: Workload, app: str, name: str, wtype: str) -> None:
    if found.type != wtype:
        raise RegistryConflict(
            f"{name} is registered in Copilot's application {app} as a {found.type or 'workload of no type'} "
            f"(SSM {workload_path(app, name)}), but its manifest says {wtype}: copilot-doit does not change "
            "another workload's registration", field="type",
            allowed=f"type: {found.type} in the manifest, or `copilot svc delete -n {name}` / "
                    f"`copilot job delete -n {name}` first")
    if found.app != app or found.name != name:
        raise RegistryConflict(f"SSM {workload_path(app, name)} names application '{found.app}' and workload "
                               f"'{found.name}', not {app}/{name}: copilot-doit does not overwrite it")


def register_workload(ssm, app: str, name: str, wtype: str, *, app_entry: App | None = None) -> str:
    """Register a deployed workload as Copilot's `svc init` / `job init` do (`Store.CreateService` /
    `CreateJob`): PutParameter `/copilot/applications/<app>/components/<name>` = `{"app","name","type"}`,
    Type String, Description `Copilot <type> <name>`, tags `copilot-application` and `copilot-service`.

    Read first: an equal entry is left alone ("unchanged": no write); an entry of another type or app is a
    `RegistryConflict` (never overwritten). The application must exist (Copilot checks it too; pass the
    `app_entry` already read to save a call). Returns "created" or "unchanged"."""
    if wtype not in SERVICE_TYPES + JOB_TYPES:
        raise UserError(f"'{wtype}' is not one of Copilot's workload types", field="type",
                        allowed=", ".join(SERVICE_TYPES + JOB_TYPES))
    if app_entry is None:
        app_entry = read_app(ssm, app)
    if app_entry is None:
        raise UserError(f"application {app} is not registered in Copilot's SSM store: cannot register {name}",
                        allowed="`copilot app init` first, or deploy standalone")
    found = read_workload(ssm, app, name)
    if found is not None:
        _check_same(found, app, name, wtype)
        return "unchanged"
    try:
        ssm.put_parameter(Name=workload_path(app, name), Description=f"Copilot {wtype} {name}", Type="String",
                          Value=workload_json(app, name, wtype),
                          Tags=[{"Key": "copilot-application", "Value": app},
                                {"Key": "copilot-service", "Value": name}])
    except ssm.exceptions.ParameterAlreadyExists:  # registered by someone else since the read
        found = read_workload(ssm, app, name)
        if found is not None:
            _check_same(found, app, name, wtype)
        return "unchanged"
    return "created"


STANDALONE = ("application {app} is not registered in Copilot's SSM store: deploying standalone "
              "(copilot svc ls will not list it)")
UNREADABLE = ("warning: cannot read application {app} from Copilot's SSM store ({why}): deploying standalone "
              "(copilot svc ls will not list it; allow ssm:GetParameter on /copilot/applications/{app} to use it)")
_said: set = set()
_said_lock = threading.Lock()


def say_standalone_once(app: str, why: str | None = None, out=None) -> bool:
    """Print STANDALONE (or, when the entry could not be read, UNREADABLE) once per process — a run —
    and application; True when printed now."""
    with _said_lock:
        if app in _said:
            return False
        _said.add(app)
    text = STANDALONE.format(app=app) if why is None else UNREADABLE.format(app=app, why=why)
    print(text, file=out or (sys.stdout if why is None else sys.stderr), flush=True)
    return True


def read_app_or_unreadable(ssm, app: str) -> App | None:
    """`read_app`, except that an identity without ssm:GetParameter (AccessDenied) is told once and
    deploys standalone, as before copilot-doit read Copilot's registry."""
    try:
        return read_app(ssm, app)
    except ssm.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
            raise
        say_standalone_once(app, why=code)
        return None
