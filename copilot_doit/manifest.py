"""Workload and environment manifests: read, interpolate, apply `environments:` overrides, validate.

The result, `Manifest`, is the resolved per-environment manifest as plain data (its canonical JSON is
a key input) plus the line map for errors.
"""
from __future__ import annotations

import copy
import os
import re
from collections import ChainMap
from pathlib import Path

from . import yamlsrc
from .errors import UserError
from .hashing import canonical_json
from .schema import (Any, Bool, Ctx, Duration, Enum, Fields, Int, ListOf, MapOf, Num, OneOf, Scalar, Spec, Str)
from .values import field, value

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
PLATFORMS = ("linux/amd64", "linux/x86_64", "linux/arm64", "linux/arm")
WINDOWS_FAMILIES = ("windows_server_2019_core", "windows_server_2019_full", "windows_server_2022_core",
                    "windows_server_2022_full")
WINDOWS_PLATFORMS = ("windows/amd64", "windows/x86_64")
ENV_VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"

# --- schema -------------------------------------------------------------------------------------------
# Field names and shapes follow Copilot's internal/pkg/manifest/*.go (v1.33).
FROM_CFN = Fields({"from_cfn": Str()}, required=("from_cfn",), desc="{from_cfn: <export name>}")
SECRET = OneOf(Str(), Fields({"secretsmanager": Str(), "from_cfn": Str()},
                             desc="{secretsmanager: <name>[:<key>::]} or {from_cfn: <export name>}"),
               desc="an SSM parameter name/ARN, {secretsmanager: <name>} or {from_cfn: <export>}")
VARIABLE = OneOf(FROM_CFN, Scalar(), desc="a string, number or boolean, or {from_cfn: <export name>}")
STR_OR_CFN = OneOf(Str(), FROM_CFN, desc="a string or {from_cfn: <export name>}")
BUILD = OneOf(Str(desc="a Dockerfile path"),
              Fields({"dockerfile": Str(), "context": Str(), "args": MapOf(Scalar()), "target": Str(),
                      "cache_from": ListOf(Str())}, desc="a build mapping"))
CMD = OneOf(ListOf(Str()), Str())
# Copilot renders Retries as given (ECS' console range is 1-10; Copilot's own fixture uses 0).
CONTAINER_HEALTH = Fields({"command": CMD, "interval": Duration(), "retries": Int(0, 10),
                           "timeout": Duration(), "start_period": Duration()}, desc="a container healthcheck")
DEPENDS_ON = MapOf(Enum("start", "healthy", "complete", "success"), r"^[a-zA-Z0-9_-]+$")
IMAGE_FIELDS = {"build": BUILD, "location": Str(), "port": Int(1, 65535), "healthcheck": CONTAINER_HEALTH,
                "labels": MapOf(Str()), "depends_on": DEPENDS_ON, "credentials": Str()}
ALB_HEALTH = OneOf(Str(desc="a path"),
                   Fields({"path": Str(), "port": Int(1, 65535), "success_codes": Str(),
                           "healthy_threshold": Int(2, 10), "unhealthy_threshold": Int(2, 10),
                           "interval": Duration(), "timeout": Duration(), "grace_period": Duration()},
                          desc="a target group healthcheck"))
COOLDOWN = Fields({"in": Duration(), "out": Duration()})


def _scale(value: Spec) -> OneOf:
    return OneOf(value, Fields({"value": value, "cooldown": COOLDOWN}, required=("value",)))


RANGE = OneOf(Str(r"^\d+-\d+$", "a range such as 1-10"),
              Fields({"min": Int(0), "max": Int(1), "spot_from": Int(0)}, required=("min", "max")))
COUNT_FIELDS = {"range": RANGE, "cpu_percentage": _scale(Num(1, 100)), "memory_percentage": _scale(Num(1, 100)),
                "requests": _scale(Int(1, 1_000_000)), "response_time": _scale(Duration()), "cooldown": COOLDOWN,
                "spot": Int(0)}
COUNT = OneOf(Int(0, 10000), Fields(COUNT_FIELDS, desc="an autoscaling mapping"))
WORKER_COUNT = OneOf(Int(0, 10000), Fields(
    {**{k: v for k, v in COUNT_FIELDS.items() if k not in ("requests", "response_time")},
     "queue_delay": Fields({"acceptable_latency": Duration(), "msg_processing_time": Duration(), "cooldown": COOLDOWN},
                           required=("acceptable_latency", "msg_processing_time"))},
    desc="an autoscaling mapping"))
MOUNT_POINT = Fields({"source_volume": Str(), "path": Str(), "read_only": Bool()}, required=("source_volume", "path"))
SIDECAR = Fields({"port": OneOf(Int(1, 65535), Str(r"^\d+(/(tcp|udp))?$", "a port such as 8080 or 8080/tcp")),
                  "image": Str(), "variables": MapOf(VARIABLE, ENV_VAR_NAME),
                  "secrets": MapOf(SECRET, ENV_VAR_NAME), "essential": Bool(), "command": CMD, "entrypoint": CMD,
                  "env_file": Str(r".*\.env$", "a path ending in .env"), "mount_points": ListOf(MOUNT_POINT),
                  "depends_on": DEPENDS_ON, "healthcheck": CONTAINER_HEALTH, "labels": MapOf(Str()),
                  "credentials": Str()},
                 desc="a sidecar")
PLACEMENT = OneOf(Enum("public", "private"),
                  Fields({"subnets": OneOf(ListOf(Str()), Fields({"from_tags": MapOf(OneOf(Str(), ListOf(Str())))}))},
                         required=("subnets",), desc="{subnets: [<subnet id>, ...]}"))
SG_LIST = ListOf(OneOf(Str(r"^sg-[0-9a-f]+$", "a security group id"), FROM_CFN))
VPC = Fields({"placement": PLACEMENT,
              "security_groups": OneOf(SG_LIST, Fields({"groups": SG_LIST, "deny_default": Bool()}))},
             desc="network.vpc")
CONNECT = OneOf(Bool(), Fields({"alias": Str()}))
LOGGING = Fields({"retention": Enum(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                                    2557, 2922, 3288, 3653),
                  "image": Str(), "destination": MapOf(Scalar()), "enableMetadata": Bool(),
                  "secretOptions": MapOf(SECRET), "configFilePath": Str(), "variables": MapOf(VARIABLE, ENV_VAR_NAME),
                  "secrets": MapOf(SECRET, ENV_VAR_NAME), "env_file": Str(r".*\.env$", "a path ending in .env")})
EFS = OneOf(Bool(), Fields({"id": STR_OR_CFN, "root_dir": Str(), "auth": Fields({"iam": Bool(), "access_point_id": Str()}),
                            "uid": Int(0), "gid": Int(0)}, desc="an efs mapping"))
VOLUME = Fields({"path": Str(), "read_only": Bool(), "efs": EFS}, required=("path",), desc="a volume")
STORAGE = Fields({"ephemeral": Int(20, 200), "readonly_fs": Bool(), "volumes": MapOf(VOLUME, r"^[a-zA-Z0-9_-]+$")})
FIFO_TOPIC = OneOf(Bool(), Fields({"content_based_deduplication": Bool()}))
PLATFORMS_ALL = PLATFORMS + WINDOWS_PLATFORMS
PLATFORM = OneOf(Enum(*PLATFORMS_ALL), Fields(
    {"osfamily": Enum("linux", *WINDOWS_FAMILIES), "architecture": Enum("x86_64", "amd64", "arm64", "arm")},
    required=("osfamily", "architecture"), desc="{osfamily, architecture}"))
OVERRIDE = Fields({"path": Str(), "value": Any()}, required=("path",), desc="a taskdef override {path, value}")
ROLLBACK = OneOf(ListOf(Str()), Fields({"cpu_utilization": Num(0), "memory_utilization": Num(0),
                                        "messages_delayed": Int(0)}))
COMMON = {
    "name": Str(), "type": Str(),
    "cpu": Int(), "memory": Int(), "platform": PLATFORM,
    "exec": Bool(),
    "command": CMD, "entrypoint": CMD,
    "variables": MapOf(VARIABLE, ENV_VAR_NAME), "secrets": MapOf(SECRET, ENV_VAR_NAME),
    "env_file": Str(r".*\.env$", "a path ending in .env"),
    "network": Fields({"vpc": VPC, "connect": CONNECT}),
    "logging": LOGGING,
    "storage": STORAGE,
    "sidecars": MapOf(SIDECAR, r"^[a-zA-Z0-9_-]+$"),
    "publish": Fields({"topics": ListOf(Fields({"name": Str(r"^[a-zA-Z0-9_-]+$", "a topic name"), "fifo": FIFO_TOPIC},
                                               required=("name",)))}),
    "taskdef_overrides": ListOf(OVERRIDE),
    "observability": Fields({"tracing": Enum("awsxray")}),
    "environments": MapOf(Scalar()),  # checked per environment after merging, see resolve()
}
COMMON_UNSUPPORTED: dict = {}


def _image(port: bool) -> Fields:
    fields = dict(IMAGE_FIELDS)
    if not port:
        fields.pop("port")
    return Fields(fields, desc="an image mapping")


ALIAS = OneOf(Str(), ListOf(OneOf(Str(), Fields({"name": Str(), "hosted_zone": Str()}, required=("name",)))),
              desc="a domain, a list of domains, or a list of {name, hosted_zone}")
RULE_FIELDS = {"path": Str(), "healthcheck": ALB_HEALTH, "deregistration_delay": Duration(),
               "target_container": Str(), "target_port": Int(1, 65535), "stickiness": Bool(),
               "alias": ALIAS, "allowed_source_ips": ListOf(Str(r"^[0-9a-fA-F.:]+/\d+$", "a CIDR block")),
               "hosted_zone": Str(), "redirect_to_https": Bool(), "version": Enum("grpc", "http1", "http2", "GRPC",
                                                                                   "HTTP1", "HTTP2")}
HTTP_FIELDS = {**RULE_FIELDS, "additional_rules": ListOf(Fields(RULE_FIELDS, required=("path",),
                                                                 desc="an additional listener rule")),
               "alb": Str(desc="an imported ALB ARN or name")}
DEPLOYMENT = Fields({"rolling": Enum("default", "recreate"), "rollback_alarms": ROLLBACK})
NLB_HEALTH = Fields({"port": Int(1, 65535), "healthy_threshold": Int(2, 10), "unhealthy_threshold": Int(2, 10),
                     "timeout": Duration(), "interval": Duration(), "grace_period": Duration()})
NLB_LISTENER = {"port": Str(r"^\d+(/(tcp|udp|tls|tcp_udp|TCP|UDP|TLS|TCP_UDP))?$", "a port such as 80/tcp"),
                "healthcheck": NLB_HEALTH, "target_container": Str(), "target_port": Int(1, 65535),
                "ssl_policy": Str(), "stickiness": Bool(), "deregistration_delay": Duration()}
NLB_PORT = Str(r"^\d+(/(tcp|udp|tcp_udp|TCP|UDP|TCP_UDP))?$", "a port such as 80/tcp (tcp, udp or tcp_udp)")
NLB_LISTENER["port"] = NLB_PORT
NLB_TLS = {"ssl_policy": "TLS listeners (Copilot validates their certificate for the application domain through a "
                         "custom resource)"}
del NLB_LISTENER["ssl_policy"]
# nlb.alias: names in the application domain's hosted zones (checked against it in domain.check_workload).
NLB_ALIAS = OneOf(Str(), ListOf(Str()), desc="a domain or a list of domains")
NLB = Fields({**NLB_LISTENER, "alias": NLB_ALIAS,
              "additional_listeners": ListOf(Fields(NLB_LISTENER, required=("port",), unsupported=NLB_TLS))},
             required=("port",), unsupported=NLB_TLS)
QUEUE_FIFO = OneOf(Bool(), Fields({"content_based_deduplication": Bool(), "deduplication_scope": Enum("messageGroup", "queue"),
                                   "throughput_limit": Enum("perMessageGroupId", "perQueue"), "high_throughput": Bool()}))
QUEUE = Fields({"retention": Duration(), "timeout": Duration(), "delay": Duration(),
                "dead_letter": Fields({"tries": Int(1, 1000)}), "fifo": QUEUE_FIFO})

SCHEMAS = {
    LBWS: Fields({**COMMON, "image": _image(True), "count": COUNT, "deployment": DEPLOYMENT,
                  "http": OneOf(Bool(), Fields(HTTP_FIELDS, desc="an http mapping")), "nlb": NLB}),
    BACKEND: Fields({**COMMON, "image": _image(True), "count": COUNT, "deployment": DEPLOYMENT,
                     "http": OneOf(Bool(), Fields(HTTP_FIELDS, desc="an http mapping"))}),
    WORKER: Fields({**COMMON, "image": _image(False), "count": WORKER_COUNT, "deployment": DEPLOYMENT,
                    "subscribe": Fields({
                        "topics": ListOf(Fields({"name": Str(r"^[a-zA-Z0-9_-]+$", "a topic name"), "service": Str(),
                                                 "filter_policy": MapOf(Any()), "queue": OneOf(Bool(), QUEUE)},
                                                required=("name", "service"))),
                        "queue": QUEUE})}),
    JOB: Fields({**{k: v for k, v in COMMON.items() if k != "exec"}, "image": _image(False),
                 "on": Fields({"schedule": Str()}, required=("schedule",)),
                 "retries": Int(0, 10), "timeout": Duration()},
                unsupported={"count": "count on a Scheduled Job (it runs one task per trigger)"}),
}

SG_RULE = Fields({"cidr": Str(), "ports": OneOf(Int(0, 65535), Str(r"^\d+-\d+$", "a port range such as 0-65535")),
                  "ip_protocol": Str()}, required=("cidr", "ports", "ip_protocol"))
SUBNET = Fields({"id": Str(), "cidr": Str(), "az": Str()})
CERTS = ListOf(Str())
CDN_INGRESS = Fields({"ingress": Fields({"restrict_to": Fields({"cdn": Bool()})})})
ENV_SCHEMA = Fields({
    "name": Str(), "type": Enum("Environment"),
    "network": Fields({"vpc": Fields({
        "id": Str(), "cidr": Str(r"^\d+\.\d+\.\d+\.\d+/\d+$", "a CIDR block"),
        "subnets": Fields({"public": ListOf(SUBNET), "private": ListOf(SUBNET)}),
        "security_group": Fields({"ingress": ListOf(SG_RULE), "egress": ListOf(SG_RULE)}),
        "flow_logs": OneOf(Bool(), Fields({"retention": Int(1)}))})}),
    "observability": Fields({"container_insights": Bool()}),
    "http": Fields({
        "public": Fields({"certificates": CERTS, "ssl_policy": Str(),
                          "access_logs": OneOf(Bool(), Fields({"bucket_name": Str(), "prefix": Str()})),
                          "ingress": Fields({"cdn": Bool(), "source_ips": ListOf(Str())}),
                          "security_groups": CDN_INGRESS}),
        "private": Fields({"certificates": CERTS, "ssl_policy": Str(), "subnets": ListOf(Str()),
                           "ingress": Fields({"vpc": Bool()}),
                           "security_groups": Fields({"ingress": Fields({"from_vpc": Bool()})})})}),
    "cdn": OneOf(Bool(), Fields({"certificate": Str(), "terminate_tls": Bool(),
                                 "static_assets": Fields({"location": Str(), "alias": Str(), "path": Str()},
                                                         required=("location", "path"))})),
})

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


@value
class Manifest:
    """A workload manifest resolved for one environment."""

    name: str
    type: str
    env: str
    file: Path
    data: dict
    lines: dict = field(repr=False, default_factory=dict)
    raw_digest: str = ""
    # root -> (BuildConfig or None,): asked for by the session's path checks and by several stages, and
    # each answer costs two realpaths and two stats.
    _build_configs: dict = field(init=False, repr=False, compare=False, default_factory=dict)

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
        found = self._build_configs.get(root)
        if found is None:
            found = self._build_configs[root] = (self._resolve_build(root),)
        return found[0]

    def _resolve_build(self, root: Path) -> "BuildConfig | None":
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


@value(frozen=True)
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
    return yamlsrc.read_text(path)


def interpolation_vars(app: str, env: str, file: Path) -> ChainMap:
    """`${}` values: the two copilot-doit supplies over the process environment (a view, not a copy: a
    manifest names a few variables, and copying os.environ for each of 500 manifests cost ~0.1 s)."""
    variables: dict = {}
    for name, value in (("COPILOT_APPLICATION_NAME", app), ("COPILOT_ENVIRONMENT_NAME", env)):
        if name in os.environ and os.environ[name] != value:
            raise UserError(f"{name} is set to '{os.environ[name]}' in the environment but the deploy is "
                            f"for '{value}'", file=str(file), allowed="unset it, or set it to the same value")
        variables[name] = value
    return ChainMap(variables, os.environ)


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


SSM_NAME = re.compile(r"^(arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter)?/?[A-Za-z0-9_.\-/]+$")
SECRETS_MANAGER_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@\-]+"
                                 r"(:[^:]*:[^:]*:[^:]*)?$")
SECRETS_MANAGER_NAME = re.compile(r"^[A-Za-z0-9/_+=.@\-]+(:[^:]*:[^:]*:[^:]*)?$")


def _validate_secrets(m: Manifest, secrets: dict, where: tuple) -> None:
    """References only, and well-formed ones: a value that is not a name would reach the template's
    Fn::Sub (`${AWS::…}` inside a name) or an ARN that ECS rejects only at deploy time."""
    for name, value in (secrets or {}).items():
        path = where + (name,)
        if isinstance(value, str):
            if not SSM_NAME.match(value):
                m.fail(path, f"'{value[:80]}' is not an SSM parameter name or ARN",
                       allowed="a name of letters, digits and _ . - / (or an arn:aws:ssm:…:parameter/… ARN)")
        elif isinstance(value, dict) and isinstance(value.get("secretsmanager"), str):
            sm = value["secretsmanager"]
            if sm.startswith("arn:") and not SECRETS_MANAGER_ARN.match(sm):
                m.fail(path + ("secretsmanager",), f"'{sm[:100]}' is not a Secrets Manager secret ARN",
                       allowed="arn:aws:secretsmanager:<region>:<account>:secret:<name>[:<json-key>:<stage>:<version>]")
            if not sm.startswith("arn:") and not SECRETS_MANAGER_NAME.match(sm):
                m.fail(path + ("secretsmanager",), f"'{sm[:100]}' is not a Secrets Manager secret name",
                       allowed="letters, digits and /_+=.@- then optionally :<json-key>:<stage>:<version>")


def _validate_semantics(m: Manifest) -> None:
    d = m.data
    _validate_secrets(m, d.get("secrets"), ("secrets",))
    for sidecar, body in (d.get("sidecars") or {}).items():
        if isinstance(body, dict):
            _validate_secrets(m, body.get("secrets"), ("sidecars", sidecar, "secrets"))
    if isinstance(d.get("logging"), dict):
        _validate_secrets(m, d["logging"].get("secrets"), ("logging", "secrets"))
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
    platform = d.get("platform")
    if (platform in WINDOWS_PLATFORMS or (isinstance(platform, dict) and platform["osfamily"] != "linux")) and (
            cpu < 1024 or mem < 2048):
        m.fail(("platform",), "Windows tasks need at least cpu 1024 and memory 2048 (Fargate)")
    count = d.get("count")
    if isinstance(count, dict):
        rng = count.get("range")
        if rng is None and count.get("spot") is None:
            m.fail(("count",), "an autoscaling count needs 'range'", allowed="range, or spot: <count>")
        if rng is not None:
            lo, hi = ((int(x) for x in rng.split("-")) if isinstance(rng, str) else (rng["min"], rng["max"]))
            if lo > hi:
                m.fail(("count", "range"), f"min {lo} is greater than max {hi}")
            targets = ("cpu_percentage", "memory_percentage", "requests", "response_time", "queue_delay")
            if not any(count.get(k) is not None for k in targets):
                m.fail(("count",), "an autoscaling range needs a target", allowed=", ".join(
                    t for t in targets if (t != "queue_delay") == (m.type != WORKER) or t in ("cpu_percentage", "memory_percentage")))
        for k in ("requests", "response_time"):
            if count.get(k) is not None and not isinstance(d.get("http"), dict) and not (
                    m.type == LBWS and d.get("http") is None):
                m.fail(("count", k), f"{k} scaling needs the workload behind a load balancer (http)")
    containers = [m.name] + list(d.get("sidecars") or {})
    for me, path, deps in [(m.name, ("image", "depends_on"), (image or {}).get("depends_on"))] + [
            (n, ("sidecars", n, "depends_on"), sc.get("depends_on")) for n, sc in (d.get("sidecars") or {}).items()]:
        for cname in deps or {}:
            if cname not in containers or cname == me:
                m.fail(path + (cname,), f"'{cname}' is not another container of this workload",
                       allowed=", ".join(containers))
    volumes = (d.get("storage") or {}).get("volumes") or {}
    managed = [n for n, v in volumes.items() if v.get("efs") is True or (
        isinstance(v.get("efs"), dict) and not v["efs"].get("id"))]
    if len(managed) > 1:
        m.fail(("storage", "volumes", managed[1], "efs"), "only one volume can use the managed EFS file system")
    for n, v in volumes.items():
        efs = v.get("efs")
        if isinstance(efs, dict) and not efs.get("id") and (efs.get("root_dir") or efs.get("auth")):
            m.fail(("storage", "volumes", n, "efs"), "root_dir and auth need an 'id' (an existing file system)")
        if isinstance(efs, dict) and efs.get("id") and (efs.get("uid") is not None or efs.get("gid") is not None):
            m.fail(("storage", "volumes", n, "efs", "uid"), "uid/gid apply to the managed file system only (no 'id')")
    for cname, sc in (d.get("sidecars") or {}).items():
        for i, mp in enumerate(sc.get("mount_points") or []):
            if mp["source_volume"] not in volumes:
                m.fail(("sidecars", cname, "mount_points", i, "source_volume"), f"'{mp['source_volume']}' is not a volume",
                       allowed=", ".join(volumes) or "define it under storage.volumes")
    placement = ((d.get("network") or {}).get("vpc") or {}).get("placement")
    if isinstance(placement, dict) and isinstance(placement.get("subnets"), dict):
        m.fail(("network", "vpc", "placement", "subnets", "from_tags"),
               "is not supported by copilot-doit: selecting subnets by tag needs an AWS lookup at render time",
               allowed="a list of subnet ids")
    nlb = d.get("nlb")
    if isinstance(nlb, dict):
        for i, spec in enumerate([nlb] + list(nlb.get("additional_listeners") or [])):
            path = ("nlb",) if i == 0 else ("nlb", "additional_listeners", i - 1)
            tc = spec.get("target_container")
            if tc is not None and tc not in containers:
                m.fail(path + ("target_container",), f"'{tc}' is not a container of this workload",
                       allowed=", ".join(containers))
    if m.type in (LBWS,):
        if image.get("port") is None and d.get("http") is not False:
            m.fail(("image", "port"), "is required for a Load Balanced Web Service with http")
    if m.type == BACKEND and isinstance(d.get("http"), dict) and image.get("port") is None:
        m.fail(("image", "port"), "is required when a Backend Service sets http")
    http = d.get("http")
    if isinstance(http, dict):
        for path, rule in [(("http",), http)] + [(("http", "additional_rules", i), r)
                                                  for i, r in enumerate(http.get("additional_rules") or [])]:
            tc = rule.get("target_container")
            if tc is not None and tc not in containers:
                m.fail(path + ("target_container",), f"'{tc}' is not a container of this workload",
                       allowed=", ".join(containers))
            if tc is not None and tc != m.name and rule.get("target_port") is None and \
                    (d["sidecars"][tc].get("port") is None):
                m.fail(path + ("target_port",), f"is required: sidecar '{tc}' exposes no port")
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


def aws_day_of_week(field: str) -> str:
    """A standard cron's day-of-week (0 or 7 = Sunday .. 6 = Saturday) in AWS cron's numbering (1 = Sunday ..
    7 = Saturday). Only the days move: a step (`*/2`, `1-5/2`) is a count, and `#n` an occurrence; a range
    ending on Sunday-as-7 wraps (`5-7` -> `6-7,1`). Names (MON-FRI) are the same in both."""
    def day(text: str) -> str:
        return str(int(text) % 7 + 1) if text.isdigit() else text

    out = []
    for part in field.split(","):
        base, slash, step = part.partition("/")
        if "#" in base:
            d, _, nth = base.partition("#")
            base = f"{day(d)}#{nth}"
        elif "-" in base:
            a, _, b = base.partition("-")
            if b == "7" and a.isdigit() and a not in ("0", "7"):
                if slash:
                    raise ValueError(f"the step of '{part}' across Sunday has no AWS cron form")
                out.append(f"{day(a)}-7,1")
                continue
            base = f"{day(a)}-{day(b)}"
        else:
            base = day(base)
        out.append(base + (slash + step if slash else ""))
    return ",".join(out)


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
        try:
            dow = aws_day_of_week(dow)
        except ValueError as exc:
            bad(f"'{s}': {exc}")
    else:
        bad(f"'{s}': day-of-month and day-of-week cannot both be set")
    return f"cron({minute} {hour} {dom} {month} {dow} *)"


# --- environments -------------------------------------------------------------------------------------
@value
class EnvManifest:
    name: str
    file: Path
    data: dict
    lines: dict = field(repr=False, default_factory=dict)

    def canonical(self) -> str:
        return canonical_json(self.data)


def _validate_cidrs(ctx: Ctx, vpc: dict) -> None:
    """CIDR blocks are real IPv4 networks: the VPC a /16 to /28 (AWS's range), subnets inside it."""
    import ipaddress

    def network(value, path, lo, hi):
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except (ValueError, TypeError) as exc:
            ctx.fail(path, f"'{value}' is not an IPv4 CIDR block ({exc})", allowed="e.g. 10.0.0.0/16")
        if not lo <= net.prefixlen <= hi:
            ctx.fail(path, f"'{value}' has a /{net.prefixlen} prefix", allowed=f"/{lo} to /{hi}")
        return net

    block = network(vpc["cidr"], ("network", "vpc", "cidr"), 16, 28) if vpc.get("cidr") else None
    for kind in ("public", "private"):
        subnets = (vpc.get("subnets") or {}).get(kind)
        for i, sn in enumerate(subnets if isinstance(subnets, list) else []):
            if isinstance(sn, dict) and sn.get("cidr"):
                net = network(sn["cidr"], ("network", "vpc", "subnets", kind, i, "cidr"), 16, 28)
                if block is not None and not net.subnet_of(block):
                    ctx.fail(("network", "vpc", "subnets", kind, i, "cidr"),
                             f"'{sn['cidr']}' is not inside the VPC's {block}", allowed=f"a block inside {block}")


def load_environment(path: Path, app: str, env: str) -> EnvManifest:
    text = _read(path)
    data, lines = yamlsrc.load(path, text, interpolation_vars(app, env, path))
    data = data or {}
    ctx = Ctx(str(path), lines, what=" for an Environment")
    if not isinstance(data, dict):
        ctx.fail((), "an environment manifest must be a mapping")
    ENV_SCHEMA.check(data, (), ctx)
    vpc = (data.get("network") or {}).get("vpc") or {}
    private = (data.get("http") or {}).get("private") or {}
    from_vpc = (((private.get("security_groups") or {}).get("ingress")) or {}).get("from_vpc")
    if from_vpc is not None:  # Copilot's deprecated spelling of http.private.ingress.vpc
        private.setdefault("ingress", {}).setdefault("vpc", from_vpc)
    if vpc.get("id") and (private.get("ingress") or {}).get("vpc"):
        ctx.fail(("http", "private", "ingress", "vpc"), "is not supported by copilot-doit with an imported VPC "
                 "(its CIDR block is not known when rendering)", allowed="a new VPC, or security_group rules")
    if data.get("name") not in (None, env):
        ctx.fail(("name",), f"'{data.get('name')}' must equal the folder name '{env}'")
    _validate_cidrs(ctx, vpc)
    return EnvManifest(name=env, file=path, data={k: v for k, v in data.items()}, lines=lines)
