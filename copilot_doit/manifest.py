"""Workload and environment manifests: read, interpolate, apply `environments:` overrides, validate.

The result, `Manifest`, is the resolved per-environment manifest as plain data (its canonical JSON is
a key input) plus the line map for errors.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import yamlsrc
from .errors import UserError
from .hashing import canonical_json
from .schema import (Bool, Ctx, Duration, Enum, Fields, Int, ListOf, MapOf, OneOf, Scalar, Str)

LBWS = "Load Balanced Web Service"
BACKEND = "Backend Service"
WORKER = "Worker Service"
JOB = "Scheduled Job"
SUPPORTED_TYPES = (LBWS, BACKEND, WORKER, JOB)
UNSUPPORTED_TYPES = {
    "Request-Driven Web Service": "it runs on App Runner, not ECS",
    "Static Site": "it deploys to S3 and CloudFront, not ECS",
}

# Fargate task sizes: cpu -> allowed memory (MiB).
FARGATE = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4097, 1024)),
    1024: list(range(2048, 8193, 1024)),
    2048: list(range(4096, 16385, 1024)),
    4096: list(range(8192, 30721, 1024)),
    8192: list(range(16384, 61441, 4096)),
    16384: list(range(32768, 122881, 8192)),
}
PLATFORMS = ("linux/amd64", "linux/x86_64", "linux/arm64")
ENV_VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

# --- schema -------------------------------------------------------------------------------------------
SECRET = OneOf(Str(), Fields({"secretsmanager": Str()}, desc="{secretsmanager: <name>[:<key>::]}"),
               desc="an SSM parameter name/ARN or {secretsmanager: <name>}")
VARIABLE = OneOf(Scalar(), desc="a string, number or boolean")
BUILD = OneOf(Str(desc="a Dockerfile path"),
              Fields({"dockerfile": Str(), "context": Str(), "args": MapOf(Scalar()), "target": Str(),
                      "cache_from": ListOf(Str())}, desc="a build mapping"))
CONTAINER_HEALTH = Fields({"command": OneOf(ListOf(Str()), Str()), "interval": Duration(), "retries": Int(1, 10),
                           "timeout": Duration(), "start_period": Duration()}, desc="a container healthcheck")
IMAGE_FIELDS = {"build": BUILD, "location": Str(), "port": Int(1, 65535), "healthcheck": CONTAINER_HEALTH,
                "labels": MapOf(Str())}
IMAGE_UNSUPPORTED = {"credentials": "private registry credentials", "depends_on": "container dependencies"}
ALB_HEALTH = OneOf(Str(desc="a path"),
                   Fields({"path": Str(), "port": Int(1, 65535), "success_codes": Str(),
                           "healthy_threshold": Int(2, 10), "unhealthy_threshold": Int(2, 10),
                           "interval": Duration(), "timeout": Duration(), "grace_period": Duration()},
                          desc="a target group healthcheck"))
SCALE_TARGET = OneOf(Int(1, 100), Fields({"value": Int(1, 100), "cooldown": Fields({"in": Duration(), "out": Duration()})}))
REQUESTS_TARGET = OneOf(Int(1, 1_000_000), Fields({"value": Int(1, 1_000_000),
                                                    "cooldown": Fields({"in": Duration(), "out": Duration()})}))
RANGE = OneOf(Str(r"^\d+-\d+$", "a range such as 1-10"), Fields({"min": Int(0), "max": Int(1)}, required=("min", "max")))
COUNT = OneOf(Int(0, 10000), Fields(
    {"range": RANGE, "cpu_percentage": SCALE_TARGET, "memory_percentage": SCALE_TARGET, "requests": REQUESTS_TARGET,
     "cooldown": Fields({"in": Duration(), "out": Duration()})},
    unsupported={"spot": "Fargate Spot capacity providers",
                 "response_time": "response-time scaling", "queue_delay": "queue-delay scaling"},
    desc="an autoscaling mapping"))
SIDECAR = Fields({"port": Int(1, 65535), "image": Str(), "variables": MapOf(VARIABLE, ENV_VAR_NAME),
                  "secrets": MapOf(SECRET, ENV_VAR_NAME), "essential": Bool(), "command": OneOf(ListOf(Str()), Str()),
                  "entrypoint": OneOf(ListOf(Str()), Str())},
                 unsupported={"env_file": "sidecar env files", "mount_points": "volumes",
                              "depends_on": "container dependencies", "healthcheck": "sidecar healthchecks",
                              "labels": "docker labels on sidecars", "credentials": "private registry credentials"},
                 desc="a sidecar")
VPC = Fields({"placement": Enum("public", "private"), "security_groups": ListOf(Str(r"^sg-[0-9a-f]+$", "a security group id"))},
             desc="network.vpc")
COMMON = {
    "name": Str(), "type": Str(),
    "cpu": Int(), "memory": Int(), "platform": Enum(*PLATFORMS),
    "exec": Bool(),
    "command": OneOf(ListOf(Str()), Str()), "entrypoint": OneOf(ListOf(Str()), Str()),
    "variables": MapOf(VARIABLE, ENV_VAR_NAME), "secrets": MapOf(SECRET, ENV_VAR_NAME),
    "env_file": Str(r".*\.env$", "a path ending in .env"),
    "network": Fields({"vpc": VPC}, unsupported={"connect": "Service Connect"}),
    "logging": Fields({"retention": Enum(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                                        2922, 3288, 3653)},
                      unsupported={k: "FireLens log routing" for k in
                                   ("image", "destination", "enableMetadata", "secretOptions", "configFilePath",
                                    "variables", "secrets", "env_file")}),
    "storage": Fields({"ephemeral": Int(20, 200)}, unsupported={"volumes": "EFS volumes", "readonly_fs": "read-only root filesystems"}),
    "sidecars": MapOf(SIDECAR, r"^[a-zA-Z0-9_-]+$"),
    "publish": Fields({"topics": ListOf(Fields({"name": Str(r"^[a-zA-Z0-9_-]+$", "a topic name")}, required=("name",),
                                               unsupported={"fifo": "FIFO topics"}))}),
    "environments": MapOf(Scalar()),  # checked per environment after merging, see resolve()
}
COMMON_UNSUPPORTED = {
    "taskdef_overrides": "task definition overrides",
    "observability": "X-Ray tracing",
}


def _image(port: bool) -> Fields:
    fields = dict(IMAGE_FIELDS)
    if not port:
        fields.pop("port")
    return Fields(fields, unsupported=IMAGE_UNSUPPORTED, desc="an image mapping")


HTTP_FIELDS = {"path": Str(), "healthcheck": ALB_HEALTH, "deregistration_delay": Duration(),
               "target_container": Str(), "target_port": Int(1, 65535), "stickiness": Bool(),
               "alias": OneOf(Str(), ListOf(Str()))}
HTTP_UNSUPPORTED = {"alb": "imported load balancers", "additional_rules": "additional listener rules",
                    "allowed_source_ips": "source IP restrictions", "hosted_zone": "Route 53 aliases",
                    "redirect_to_https": "HTTPS listeners", "version": "HTTP/2 and gRPC target groups",
                    "private_only": "private-only HTTP"}
DEPLOYMENT = Fields({"rolling": Enum("default", "recreate")}, unsupported={"rollback_alarms": "rollback alarms"})

SCHEMAS = {
    LBWS: Fields({**COMMON, "image": _image(True), "count": COUNT, "deployment": DEPLOYMENT,
                  "http": OneOf(Bool(), Fields(HTTP_FIELDS, unsupported=HTTP_UNSUPPORTED, desc="an http mapping"))},
                 unsupported={**COMMON_UNSUPPORTED, "nlb": "Network Load Balancers"}),
    BACKEND: Fields({**COMMON, "image": _image(True), "count": COUNT, "deployment": DEPLOYMENT,
                     "http": OneOf(Bool(), Fields(HTTP_FIELDS, unsupported=HTTP_UNSUPPORTED, desc="an http mapping"))},
                    unsupported=COMMON_UNSUPPORTED),
    WORKER: Fields({**COMMON, "image": _image(False), "count": COUNT, "deployment": DEPLOYMENT,
                    "subscribe": Fields({
                        "topics": ListOf(Fields({"name": Str(r"^[a-zA-Z0-9_-]+$", "a topic name"), "service": Str()},
                                                required=("name", "service"),
                                                unsupported={"filter_policy": "SNS filter policies",
                                                             "queue": "per-topic queues"})),
                        "queue": Fields({"retention": Duration(), "timeout": Duration(), "delay": Duration(),
                                         "dead_letter": Fields({"tries": Int(1, 1000)})},
                                        unsupported={"fifo": "FIFO queues"})})},
                   unsupported=COMMON_UNSUPPORTED),
    JOB: Fields({**{k: v for k, v in COMMON.items() if k != "exec"}, "image": _image(False),
                 "on": Fields({"schedule": Str()}, required=("schedule",)),
                 "retries": Int(0, 10), "timeout": Duration()},
                unsupported={**COMMON_UNSUPPORTED, "count": "count on a Scheduled Job (it runs one task per trigger)"}),
}

ENV_SCHEMA = Fields({
    "name": Str(), "type": Enum("Environment"),
    "network": Fields({"vpc": Fields({
        "id": Str(), "cidr": Str(r"^\d+\.\d+\.\d+\.\d+/\d+$", "a CIDR block"),
        "subnets": Fields({"public": ListOf(Fields({"id": Str(), "cidr": Str(), "az": Str()})),
                           "private": ListOf(Fields({"id": Str(), "cidr": Str(), "az": Str()}))})},
        unsupported={"security_group": "custom env security group rules", "flow_logs": "VPC flow logs"})}),
    "observability": Fields({"container_insights": Bool()}),
}, unsupported={"http": "ALB listener customisation (certificates, access logs, ingress)",
                "cdn": "CloudFront distributions"})

# Mutually exclusive alternatives: an override that sets one clears the others in the base (Copilot).
EXCLUSIVE = [({"build"}, {"location"}), ({"secretsmanager"}, {"from_cfn"})]
COUNT_EXCLUSIVE = ({"spot"}, {"range", "cpu_percentage", "memory_percentage", "requests", "response_time",
                              "queue_delay", "cooldown"})


def merge(base, override, path=()):
    """Copilot's override rules: maps merge key by key, lists and scalars replace, null keeps the base."""
    if override is None:
        return copy.deepcopy(base)
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    out = copy.deepcopy(base)
    groups = EXCLUSIVE + ([COUNT_EXCLUSIVE] if path and path[-1] == "count" else [])
    for a, b in groups:
        for mine, other in ((a, b), (b, a)):
            if any(override.get(k) is not None for k in mine):
                for k in other:
                    out.pop(k, None)
    for k, v in override.items():
        if v is None:
            continue
        out[k] = merge(out[k], v, path + (k,)) if k in out else copy.deepcopy(v)
    return out


@dataclass
class Manifest:
    """A workload manifest resolved for one environment."""

    name: str
    type: str
    env: str
    file: Path
    data: dict
    lines: dict = field(repr=False, default_factory=dict)
    raw_digest: str = ""

    def canonical(self) -> str:
        return canonical_json(self.data)

    def line(self, *path) -> int | None:
        return yamlsrc.line_of(self.lines, path)

    def fail(self, path: tuple, message: str, allowed: str | None = None):
        raise UserError(message, file=str(self.file), field=yamlsrc.field_name(path), line=self.line(*path),
                        allowed=allowed)

    @property
    def image(self) -> dict:
        return self.data.get("image") or {}

    def build_config(self, root: Path) -> "BuildConfig | None":
        build = self.image.get("build")
        if build is None:
            return None
        if isinstance(build, str):
            dockerfile = root / build
            context = dockerfile.parent
            args, target, cache_from = {}, None, []
        else:
            context = root / build.get("context", os.path.dirname(build.get("dockerfile", "")) or ".")
            dockerfile = root / build["dockerfile"] if build.get("dockerfile") else context / "Dockerfile"
            args = {str(k): str(v) for k, v in (build.get("args") or {}).items()}
            target, cache_from = build.get("target"), list(build.get("cache_from") or [])
        if not dockerfile.is_file():
            self.fail(("image", "build"), f"Dockerfile {dockerfile} does not exist")
        if not context.is_dir():
            self.fail(("image", "build", "context"), f"build context {context} is not a folder")
        platform = self.data.get("platform")
        if platform == "linux/x86_64":
            platform = "linux/amd64"
        return BuildConfig(dockerfile=dockerfile.resolve(), context=context.resolve(), args=args, target=target,
                           cache_from=cache_from, platform=platform)


@dataclass(frozen=True)
class BuildConfig:
    dockerfile: Path
    context: Path
    args: dict
    target: str | None
    cache_from: list
    platform: str | None

    def dockerfile_in_context(self) -> str | None:
        try:
            return self.dockerfile.relative_to(self.context).as_posix()
        except ValueError:
            return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", file=str(path)) from None


def interpolation_vars(app: str, env: str, file: Path) -> dict:
    variables = dict(os.environ)
    for name, value in (("COPILOT_APPLICATION_NAME", app), ("COPILOT_ENVIRONMENT_NAME", env)):
        if name in os.environ and os.environ[name] != value:
            raise UserError(f"{name} is set to '{os.environ[name]}' in the environment but the deploy is "
                            f"for '{value}'", file=str(file), allowed="unset it, or set it to the same value")
        variables[name] = value
    return variables


def load_workload(path: Path, app: str, env: str, workload: str | None = None) -> Manifest:
    text = _read(path)
    data, lines = yamlsrc.load(path, text, interpolation_vars(app, env, path))
    ctx = Ctx(str(path), lines)
    if not isinstance(data, dict):
        ctx.fail((), "a manifest must be a mapping with at least 'name' and 'type'")
    wtype = data.get("type")
    if wtype in UNSUPPORTED_TYPES:
        ctx.fail(("type",), f"workload type '{wtype}' is not supported: {UNSUPPORTED_TYPES[wtype]}",
                 allowed=", ".join(SUPPORTED_TYPES))
    if wtype not in SUPPORTED_TYPES:
        ctx.fail(("type",), f"unknown workload type {wtype!r}", allowed=", ".join(SUPPORTED_TYPES))
    name = data.get("name")
    if not isinstance(name, str):
        ctx.fail(("name",), "is required and must be a string")
    if workload is not None and name != workload:
        ctx.fail(("name",), f"'{name}' must equal the folder name '{workload}'")
    envs = data.get("environments") or {}
    if not isinstance(envs, dict):
        ctx.fail(("environments",), "must be a mapping of environment name to overrides")
    override = envs.get(env)
    if override is not None and not isinstance(override, dict):
        ctx.fail(("environments", env), "must be a mapping of overrides")
    base = {k: v for k, v in data.items() if k != "environments"}
    merged = merge(base, override or {})
    # Lines of overridden fields point at the override, so errors name the line the user wrote.
    mlines = {p: ln for p, ln in lines.items() if not (p and p[0] == "environments")}
    prefix = ("environments", env)
    for p, ln in lines.items():
        if p[:2] == prefix and len(p) > 2:
            mlines[p[2:]] = ln
    ctx = Ctx(str(path), mlines, what=f" for a {wtype}")
    # Validate every environment's override shape too, so a typo in 'prod' fails a 'test' deploy early.
    for other, ov in envs.items():
        if ov is None:
            continue
        olines = {p[2:]: ln for p, ln in lines.items() if p[:2] == ("environments", other) and len(p) > 2}
        olines[()] = lines.get(("environments", other))
        if not isinstance(ov, dict):
            Ctx(str(path), lines).fail(("environments", other), "must be a mapping of overrides")
        SCHEMAS[wtype].check(merge(base, ov), (), Ctx(str(path), {**mlines, **olines}, what=f" for a {wtype}"))
    SCHEMAS[wtype].check(merged, (), ctx)
    m = Manifest(name=name, type=wtype, env=env, file=path, data=merged, lines=mlines)
    _validate_semantics(m)
    return m


def _validate_semantics(m: Manifest) -> None:
    d = m.data
    image = d.get("image")
    if not isinstance(image, dict) or (image.get("build") is None and image.get("location") is None):
        m.fail(("image",), "needs 'build' or 'location'", allowed="image.build: <Dockerfile> or image.location: <uri>")
    if image.get("build") is not None and image.get("location") is not None:
        m.fail(("image", "location"), "'build' and 'location' are mutually exclusive")
    d.setdefault("cpu", 256)
    d.setdefault("memory", 512)
    cpu, mem = d["cpu"], d["memory"]
    if cpu not in FARGATE:
        m.fail(("cpu",), f"{cpu} is not a Fargate CPU size", allowed=", ".join(map(str, FARGATE)))
    if mem not in FARGATE[cpu]:
        lo, hi = FARGATE[cpu][0], FARGATE[cpu][-1]
        m.fail(("memory",), f"{mem} MiB is not valid with cpu {cpu}",
               allowed=f"{', '.join(map(str, FARGATE[cpu]))}" if len(FARGATE[cpu]) < 5 else f"{lo} to {hi} in steps of {FARGATE[cpu][1] - lo}")
    count = d.get("count")
    if isinstance(count, dict):
        rng = count.get("range")
        if rng is None:
            m.fail(("count",), "an autoscaling count needs 'range'")
        lo, hi = (map(int, rng.split("-")) if isinstance(rng, str) else (rng["min"], rng["max"]))
        if lo > hi:
            m.fail(("count", "range"), f"min {lo} is greater than max {hi}")
        if not any(count.get(k) is not None for k in ("cpu_percentage", "memory_percentage", "requests")):
            m.fail(("count",), "an autoscaling range needs a target",
                   allowed="cpu_percentage, memory_percentage, requests")
        if count.get("requests") is not None and not isinstance(d.get("http"), dict) and not (
                m.type == LBWS and d.get("http") is None):
            m.fail(("count", "requests"), "request-count scaling needs the workload behind a load balancer (http)")
    if m.type in (LBWS,):
        if image.get("port") is None and d.get("http") is not False:
            m.fail(("image", "port"), "is required for a Load Balanced Web Service with http")
    if m.type == BACKEND and isinstance(d.get("http"), dict) and image.get("port") is None:
        m.fail(("image", "port"), "is required when a Backend Service sets http")
    http = d.get("http")
    if isinstance(http, dict):
        tc = http.get("target_container")
        if tc is not None and tc != m.name and tc not in (d.get("sidecars") or {}):
            m.fail(("http", "target_container"), f"'{tc}' is not a container of this workload",
                   allowed=", ".join([m.name] + list(d.get("sidecars") or {})))
        if m.type == LBWS and http.get("path") is None:
            m.fail(("http", "path"), "is required", allowed="e.g. '/' or 'api'")
    if m.type == JOB:
        schedule_expression(d["on"]["schedule"], m)
    for cname, sc in (d.get("sidecars") or {}).items():
        if sc.get("image") is None:
            m.fail(("sidecars", cname, "image"), "is required (a sidecar image URI)")


# --- schedules (Copilot's conversion to EventBridge expressions) ----------------------------------------
_PREDEFINED = {"@yearly": "cron(0 0 1 1 ? *)", "@annually": "cron(0 0 1 1 ? *)", "@monthly": "cron(0 0 1 * ? *)",
               "@weekly": "cron(0 0 ? * 1 *)", "@daily": "cron(0 0 * * ? *)", "@midnight": "cron(0 0 * * ? *)",
               "@hourly": "cron(0 * * * ? *)"}


def duration_seconds(text: str) -> float:
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    if not m or not text:
        raise ValueError(text)
    h, mi, s = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def schedule_expression(schedule: str, m: Manifest | None = None) -> str:
    s = schedule.strip()
    path = ("on", "schedule")

    def bad(msg):
        if m:
            m.fail(path, msg, allowed="@daily, @hourly, @weekly, @monthly, @yearly, @every <duration>, "
                                      "a 5-field cron, rate(...), cron(...), none")
        raise ValueError(msg)

    if s == "none" or s.startswith("rate(") or s.startswith("cron("):
        return s
    if s in _PREDEFINED:
        return _PREDEFINED[s]
    if s.startswith("@every "):
        try:
            secs = duration_seconds(s[len("@every "):].strip())
        except ValueError:
            bad(f"'{s}' has an invalid duration")
        if secs < 60 or secs % 60:
            bad(f"'{s}' must be a whole number of minutes, at least 1m")
        mins = int(secs // 60)
        return "rate(1 minute)" if mins == 1 else f"rate({mins} minutes)"
    parts = s.split()
    if len(parts) != 5:
        bad(f"'{s}' is not a schedule")
    minute, hour, dom, month, dow = parts
    if dow == "*":
        dow = "?"
    elif dom == "*":
        dom = "?"
        dow = re.sub(r"\d", lambda d: str(int(d.group()) % 7 + 1), dow)
    else:
        bad(f"'{s}': day-of-month and day-of-week cannot both be set")
    return f"cron({minute} {hour} {dom} {month} {dow} *)"


# --- environments -------------------------------------------------------------------------------------
@dataclass
class EnvManifest:
    name: str
    file: Path
    data: dict
    lines: dict = field(repr=False, default_factory=dict)

    def canonical(self) -> str:
        return canonical_json(self.data)


def load_environment(path: Path, app: str, env: str) -> EnvManifest:
    text = _read(path)
    data, lines = yamlsrc.load(path, text, interpolation_vars(app, env, path))
    data = data or {}
    ctx = Ctx(str(path), lines, what=" for an Environment")
    if not isinstance(data, dict):
        ctx.fail((), "an environment manifest must be a mapping")
    ENV_SCHEMA.check(data, (), ctx)
    if data.get("name") not in (None, env):
        ctx.fail(("name",), f"'{data.get('name')}' must equal the folder name '{env}'")
    return EnvManifest(name=env, file=path, data={k: v for k, v in data.items()}, lines=lines)
