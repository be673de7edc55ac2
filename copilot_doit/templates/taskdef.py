"""The task definition: the main container, sidecars, platform, ephemeral storage."""
from __future__ import annotations

from . import getatt, ref, sub
from . import firelens, storage, tracing
from .overrides import apply_overrides
from .secrets import secrets_list
from .util import awslogs, cmd, env_list, screaming, seconds

CONDITIONS = {"start": "START", "healthy": "HEALTHY", "complete": "COMPLETE", "success": "SUCCESS"}
WINDOWS = {"windows/amd64": "WINDOWS_SERVER_2019_CORE", "windows/x86_64": "WINDOWS_SERVER_2019_CORE"}


def container_healthcheck(hc: dict | None):
    if not hc:
        return None
    command = hc.get("command")
    if isinstance(command, str):
        command = ["CMD-SHELL", command]
    return {"Command": command or ["CMD-SHELL", "exit 0"],
            "Interval": seconds(hc.get("interval", "10s")),
            "Retries": hc.get("retries", 2),
            "Timeout": seconds(hc.get("timeout", "5s")),
            "StartPeriod": seconds(hc.get("start_period", "0s"))}


def container_env(b) -> dict:
    env = {"COPILOT_APPLICATION_NAME": sub("${AppName}"), "COPILOT_ENVIRONMENT_NAME": sub("${EnvName}"),
           "COPILOT_SERVICE_NAME": sub("${WorkloadName}"),
           "COPILOT_SERVICE_DISCOVERY_ENDPOINT": sub("${EnvName}.${AppName}.local")}
    env.update(b.main_env)
    return env


def main_container(b) -> dict:
    d = b.d
    env_pairs = {k: v for k, v in (d.get("variables") or {}).items()}
    environment = [{"Name": k, "Value": v} for k, v in sorted(container_env(b).items())] + env_list(env_pairs)
    secrets = secrets_list(d.get("secrets") or {})
    for out, kind in sorted(b.addon_outputs.items()):
        if kind == "AWS::SecretsManager::Secret":
            secrets.append({"Name": screaming(out), "ValueFrom": getatt("AddonsStack", f"Outputs.{out}")})
        elif kind not in ("AWS::IAM::ManagedPolicy", "AWS::EC2::SecurityGroup"):
            environment.append({"Name": screaming(out), "Value": getatt("AddonsStack", f"Outputs.{out}")})
    c = {"Name": b.m.name, "Image": ref("ContainerImage"), "Essential": True, "Environment": environment}
    if secrets:
        c["Secrets"] = secrets
    port = (d.get("image") or {}).get("port")
    if port:
        c["PortMappings"] = [{"ContainerPort": ref("ContainerPort"), "Protocol": "tcp"}]
    if b.ri.env_file_arn:
        c["EnvironmentFiles"] = [{"Type": "s3", "Value": ref("EnvFileARN")}]
    extra = exposed_ports(b, b.m.name, port)
    if extra:
        c.setdefault("PortMappings", []).extend(extra)
    if port and sc_server(b) == b.m.name:
        _name_target(c, int(b.values["TargetPort"]))
    c["LogConfiguration"] = firelens.main_log_configuration(b)
    hc = container_healthcheck((d.get("image") or {}).get("healthcheck"))
    if hc:
        c["HealthCheck"] = hc
    mounts = storage.main_mount_points(b)
    if mounts:
        c["MountPoints"] = mounts
    if (d.get("storage") or {}).get("readonly_fs"):
        c["ReadonlyRootFilesystem"] = True
    if (d.get("image") or {}).get("credentials"):
        c["RepositoryCredentials"] = {"CredentialsParameter": d["image"]["credentials"]}
    depends = depends_on((d.get("image") or {}).get("depends_on"))
    if depends:
        c["DependsOn"] = depends
    if d.get("command") is not None:
        c["Command"] = cmd(d["command"])
    if d.get("entrypoint") is not None:
        c["EntryPoint"] = cmd(d["entrypoint"])
    labels = (d.get("image") or {}).get("labels")
    if labels:
        c["DockerLabels"] = {k: str(v) for k, v in sorted(labels.items())}
    return c


def sc_server(b) -> str | None:
    """The container whose target port Service Connect serves (as Copilot: the load balancer's target
    container, or the main container), when connect is on and the workload has a port."""
    c = (b.d.get("network") or {}).get("connect")
    port = (b.d.get("image") or {}).get("port")
    if not c or not port or "TargetPort" not in b.params:
        return None
    return b.values.get("TargetContainer", b.m.name)


def _name_target(c: dict, target_port: int):
    """Name the port mapping Service Connect serves "target" (the target port's, else the first)."""
    maps = c["PortMappings"]
    match = [m for m in maps if m["ContainerPort"] == target_port] or maps[:1]
    match[0]["Name"] = "target"


def exposed_ports(b, container: str, primary: int | None) -> list:
    """Port mappings a container needs besides its own port: load balancer target ports (ALB rules, NLB)."""
    out, seen = [], {(primary, "tcp")}
    for cname, port, proto in b.exposed:
        if cname == container and (port, proto) not in seen:
            seen.add((port, proto))
            out.append({"ContainerPort": port, "Protocol": proto})
    return out


def depends_on(deps: dict | None) -> list:
    return [{"Condition": CONDITIONS[cond], "ContainerName": name} for name, cond in sorted((deps or {}).items())]


def sidecar_port(sc: dict) -> tuple[int, str] | None:
    port = sc.get("port")
    if port is None:
        return None
    if isinstance(port, int):
        return port, "tcp"
    num, _, proto = str(port).partition("/")
    return int(num), (proto or "tcp").lower()


def sidecar_containers(b) -> list:
    out = []
    common = [{"Name": k, "Value": v} for k, v in sorted(container_env(b).items())]
    env_files = b.ri.env_file_arns or b.ri.extra.get("env_file_arns") or {}
    out += firelens.router_container(b, common, env_files.get("logging"))
    out += tracing.collector_container(b)
    for name, sc in sorted((b.d.get("sidecars") or {}).items()):
        c = {"Name": name, "Image": sc["image"], "Essential": sc.get("essential", True),
             "Environment": common + env_list(sc.get("variables") or {}),
             "LogConfiguration": firelens.main_log_configuration(b) if firelens.enabled(b) else awslogs()}
        if sc.get("secrets"):
            c["Secrets"] = secrets_list(sc["secrets"])
        port = sidecar_port(sc)
        if port:
            c["PortMappings"] = [{"ContainerPort": port[0], "Protocol": port[1]}]
        extra = exposed_ports(b, name, port[0] if port else None)
        if extra:
            c.setdefault("PortMappings", []).extend(extra)
        if sc_server(b) == name and c.get("PortMappings"):
            _name_target(c, int(b.values["TargetPort"]))
        if sc.get("command") is not None:
            c["Command"] = cmd(sc["command"])
        if sc.get("entrypoint") is not None:
            c["EntryPoint"] = cmd(sc["entrypoint"])
        if env_files.get(name):
            c["EnvironmentFiles"] = [{"Type": "s3", "Value": env_files[name]}]
        hc = container_healthcheck(sc.get("healthcheck"))
        if hc:
            c["HealthCheck"] = hc
        mounts = storage.sidecar_mount_points(sc)
        if mounts:
            c["MountPoints"] = mounts
        if sc.get("labels"):
            c["DockerLabels"] = {k: str(v) for k, v in sorted(sc["labels"].items())}
        if sc.get("depends_on"):
            c["DependsOn"] = depends_on(sc["depends_on"])
        if sc.get("credentials"):
            c["RepositoryCredentials"] = {"CredentialsParameter": sc["credentials"]}
        out.append(c)
    return out


def runtime_platform(platform) -> dict | None:
    if not platform:
        return None
    if isinstance(platform, dict):
        fam, arch = platform["osfamily"], platform["architecture"]
        return {"OperatingSystemFamily": "LINUX" if fam == "linux" else fam.upper(),
                "CpuArchitecture": "ARM64" if arch.startswith("arm") else "X86_64"}
    if platform in WINDOWS:
        return {"OperatingSystemFamily": WINDOWS[platform], "CpuArchitecture": "X86_64"}
    return {"OperatingSystemFamily": "LINUX", "CpuArchitecture": "ARM64" if platform.endswith(("arm64", "arm")) else "X86_64"}


def task_definition(b):
    d = b.d
    props = {
        "Family": sub("${AppName}-${EnvName}-${WorkloadName}"),
        "NetworkMode": "awsvpc",
        "RequiresCompatibilities": ["FARGATE"],
        "Cpu": ref("TaskCPU"),
        "Memory": ref("TaskMemory"),
        "ExecutionRoleArn": getatt("ExecutionRole", "Arn"),
        "TaskRoleArn": getatt("TaskRole", "Arn"),
        "ContainerDefinitions": [main_container(b)] + sidecar_containers(b),
    }
    platform = runtime_platform(d.get("platform"))
    if platform:
        props["RuntimePlatform"] = platform
    eph = (d.get("storage") or {}).get("ephemeral")
    if eph:
        props["EphemeralStorage"] = {"SizeInGiB": eph}
    volumes = storage.task_volumes(b)
    if volumes:
        props["Volumes"] = volumes
    storage.access_point(b)
    b.resources["TaskDefinition"] = {"Type": "AWS::ECS::TaskDefinition", "Properties": props}
    if d.get("taskdef_overrides"):
        apply_overrides(b, props, d["taskdef_overrides"])
