"""Workload stacks `<app>-<env>-<name>` for the four ECS types, built as data.

One function per type (`load_balanced_web_service`, `backend_service`, `worker_service`,
`scheduled_job`), each assembled from the shared pieces below. Names of parameters, log groups, task
families and exports follow Copilot (research/copilot.md §4).
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

import xxhash

from . import RECIPE_VERSION, getatt, if_, import_env, ref, sub
from ..manifest import BACKEND, JOB, LBWS, WORKER, Manifest, duration_seconds, schedule_expression

LOG_RETENTION_DEFAULT = 30
DEREGISTRATION_DELAY_DEFAULT = 60


@dataclass
class RenderInput:
    manifest: Manifest
    app: str
    env: str
    image: str                      # repo@sha256:... for built images, image.location otherwise
    addons: dict | None = None      # {"url": ..., "parameters": {...}, "outputs": {name: kind}}
    env_file_arn: str = ""
    extra: dict = field(default_factory=dict)


def _seconds(text: str) -> int:
    return int(duration_seconds(text))


def _cmd(value):
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else list(value)


def _secret_arn(value):
    """ValueFrom of an SSM parameter name/ARN or a Secrets Manager {secretsmanager: name[:key::]}."""
    if isinstance(value, dict):
        name = value["secretsmanager"]
        if name.startswith("arn:"):
            return name
        return sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:" + name)
    if value.startswith("arn:"):
        return value
    return sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/" + value.lstrip("/"))


def _secret_policy_resource(value):
    """IAM resource for reading one secret: the parameter ARN, or the secret ARN with its random suffix."""
    if isinstance(value, dict):
        name = value["secretsmanager"]
        if name.startswith("arn:"):
            prefix, rest = name.split(":secret:", 1)
            return f"{prefix}:secret:{rest.split(':')[0]}*"
        return ("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                + name.split(":")[0] + "*")
    if value.startswith("arn:"):
        return value
    return "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/" + value.lstrip("/")


def _env_list(pairs: dict) -> list:
    return [{"Name": k, "Value": str(v).lower() if isinstance(v, bool) else str(v)} for k, v in sorted(pairs.items())]


def _secrets_list(secrets: dict) -> list:
    return [{"Name": k, "ValueFrom": _secret_arn(v)} for k, v in sorted(secrets.items())]


def _healthcheck(hc: dict | None):
    if not hc:
        return None
    cmd = hc.get("command")
    if isinstance(cmd, str):
        cmd = ["CMD-SHELL", cmd]
    out = {"Command": cmd or ["CMD-SHELL", "exit 0"],
           "Interval": _seconds(hc.get("interval", "10s")),
           "Retries": hc.get("retries", 2),
           "Timeout": _seconds(hc.get("timeout", "5s")),
           "StartPeriod": _seconds(hc.get("start_period", "0s"))}
    return out


class Builder:
    """Accumulates one workload template; each method adds one concern."""

    def __init__(self, ri: RenderInput):
        self.ri = ri
        self.m = ri.manifest
        self.d = ri.manifest.data
        self.params: dict = {}
        self.values: dict = {}
        self.conditions: dict = {}
        self.resources: dict = {}
        self.outputs: dict = {}
        self.main_env: dict = {}

    # --- parameters ---------------------------------------------------------------------------------
    def param(self, name: str, value, ptype: str = "String", default=None):
        spec = {"Type": ptype}
        if default is not None:
            spec["Default"] = default
        self.params[name] = spec
        self.values[name] = str(value).lower() if isinstance(value, bool) else str(value)

    def common_params(self):
        d, ri = self.d, self.ri
        self.param("AppName", ri.app)
        self.param("EnvName", ri.env)
        self.param("WorkloadName", self.m.name)
        self.param("ContainerImage", ri.image)
        self.param("TaskCPU", d["cpu"])
        self.param("TaskMemory", d["memory"])
        if self.m.type != JOB:  # a job runs one task per trigger; Copilot sends an unused TaskCount
            self.param("TaskCount", self.task_count())
        if ri.addons:  # Copilot always sends it (""); unused it is a cfn-lint W2001 warning
            self.param("AddonsTemplateURL", ri.addons["url"])
        if ri.env_file_arn:  # decided at render time: moto mishandles Fn::If/AWS::NoValue in lists
            self.param("EnvFileARN", ri.env_file_arn)
        self.param("LogRetention", (d.get("logging") or {}).get("retention", LOG_RETENTION_DEFAULT), "Number")

    def task_count(self) -> int:
        count = self.d.get("count", 1)
        if isinstance(count, dict):
            rng = count["range"]
            return int(rng.split("-")[0]) if isinstance(rng, str) else int(rng["min"])
        return int(count if count is not None else 1)

    # --- task definition ----------------------------------------------------------------------------
    def logs_and_roles(self):
        self.resources["LogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
            "LogGroupName": sub("/copilot/${AppName}-${EnvName}-${WorkloadName}"),
            "RetentionInDays": ref("LogRetention")}}
        secrets = dict(self.d.get("secrets") or {})
        for sc in (self.d.get("sidecars") or {}).values():
            secrets.update({f"_{k}": v for k, v in (sc.get("secrets") or {}).items()})
        statements = []
        ssm = sorted({_secret_policy_resource(v) for v in secrets.values() if not isinstance(v, dict)})
        sm = sorted({_secret_policy_resource(v) for v in secrets.values() if isinstance(v, dict)})
        if ssm:
            statements.append({"Effect": "Allow", "Action": ["ssm:GetParameters"],
                               "Resource": [sub(r) if "${" in r else r for r in ssm]})
        if sm:
            statements.append({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                               "Resource": [sub(r) if "${" in r else r for r in sm]})
        exec_policies = [{"PolicyName": "EnvFileAccess", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [ref("EnvFileARN")]},
            {"Effect": "Allow", "Action": ["s3:GetBucketLocation"],
             "Resource": [{"Fn::Join": ["", ["arn:", ref("AWS::Partition"), ":s3:::",
                                               {"Fn::Select": [0, {"Fn::Split": ["/", {"Fn::Select": [5, {"Fn::Split": [":", ref("EnvFileARN")]}]}]}]}]]}]}]}}]
        policies = [{"PolicyName": "Secrets", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}] if statements else []
        self.resources["ExecutionRole"] = {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": _assume("ecs-tasks.amazonaws.com"),
            "ManagedPolicyArns": [sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")],
            "Policies": policies + (exec_policies if self.ri.env_file_arn else [])}}
        if not self.resources["ExecutionRole"]["Properties"]["Policies"]:
            del self.resources["ExecutionRole"]["Properties"]["Policies"]
        task_statements = []
        if self.d.get("exec"):
            task_statements.append({"Effect": "Allow", "Action": [
                "ssmmessages:CreateControlChannel", "ssmmessages:OpenControlChannel",
                "ssmmessages:CreateDataChannel", "ssmmessages:OpenDataChannel"], "Resource": "*"})
        task_statements += self.extra_task_statements()
        props = {"AssumeRolePolicyDocument": _assume("ecs-tasks.amazonaws.com")}
        if task_statements:
            props["Policies"] = [{"PolicyName": "TaskPolicy", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": task_statements}}]
        managed = [getatt("AddonsStack", f"Outputs.{o}") for o, kind in sorted(((self.ri.addons or {}).get("outputs") or {}).items())
                   if kind == "AWS::IAM::ManagedPolicy"]
        if managed:
            props["ManagedPolicyArns"] = managed
        self.resources["TaskRole"] = {"Type": "AWS::IAM::Role", "Properties": props}

    def extra_task_statements(self) -> list:
        topics = ((self.d.get("publish") or {}).get("topics")) or []
        if not topics:
            return []
        return [{"Effect": "Allow", "Action": ["sns:Publish"], "Resource": [ref(_topic_id(t["name"])) for t in topics]}]

    def container_env(self) -> dict:
        env = {"COPILOT_APPLICATION_NAME": sub("${AppName}"), "COPILOT_ENVIRONMENT_NAME": sub("${EnvName}"),
               "COPILOT_SERVICE_NAME": sub("${WorkloadName}"),
               "COPILOT_SERVICE_DISCOVERY_ENDPOINT": sub("${EnvName}.${AppName}.local")}
        env.update(self.main_env)
        return env

    def main_container(self) -> dict:
        d = self.d
        env_pairs = {k: v for k, v in (d.get("variables") or {}).items()}
        injected = self.container_env()
        environment = [{"Name": k, "Value": v} for k, v in sorted(injected.items())] + _env_list(env_pairs)
        secrets = _secrets_list(d.get("secrets") or {})
        addon_outputs = (self.ri.addons or {}).get("outputs") or {}
        for out, kind in sorted(addon_outputs.items()):
            if kind == "AWS::SecretsManager::Secret":
                secrets.append({"Name": _screaming(out), "ValueFrom": getatt("AddonsStack", f"Outputs.{out}")})
            elif kind not in ("AWS::IAM::ManagedPolicy", "AWS::EC2::SecurityGroup"):
                environment.append({"Name": _screaming(out), "Value": getatt("AddonsStack", f"Outputs.{out}")})
        c = {"Name": self.m.name, "Image": ref("ContainerImage"), "Essential": True, "Environment": environment}
        if secrets:
            c["Secrets"] = secrets
        port = (d.get("image") or {}).get("port")
        if port:
            c["PortMappings"] = [{"ContainerPort": ref("ContainerPort"), "Protocol": "tcp"}]
        if self.ri.env_file_arn:
            c["EnvironmentFiles"] = [{"Type": "s3", "Value": ref("EnvFileARN")}]
        c["LogConfiguration"] = _awslogs()
        hc = _healthcheck((d.get("image") or {}).get("healthcheck"))
        if hc:
            c["HealthCheck"] = hc
        if d.get("command") is not None:
            c["Command"] = _cmd(d["command"])
        if d.get("entrypoint") is not None:
            c["EntryPoint"] = _cmd(d["entrypoint"])
        labels = (d.get("image") or {}).get("labels")
        if labels:
            c["DockerLabels"] = {k: str(v) for k, v in sorted(labels.items())}
        return c

    def sidecar_containers(self) -> list:
        out = []
        for name, sc in sorted((self.d.get("sidecars") or {}).items()):
            c = {"Name": name, "Image": sc["image"], "Essential": sc.get("essential", True),
                 "Environment": [{"Name": k, "Value": v} for k, v in sorted(self.container_env().items())]
                 + _env_list(sc.get("variables") or {}),
                 "LogConfiguration": _awslogs()}
            if sc.get("secrets"):
                c["Secrets"] = _secrets_list(sc["secrets"])
            if sc.get("port"):
                c["PortMappings"] = [{"ContainerPort": sc["port"], "Protocol": "tcp"}]
            if sc.get("command") is not None:
                c["Command"] = _cmd(sc["command"])
            if sc.get("entrypoint") is not None:
                c["EntryPoint"] = _cmd(sc["entrypoint"])
            out.append(c)
        return out

    def task_definition(self):
        d = self.d
        props = {
            "Family": sub("${AppName}-${EnvName}-${WorkloadName}"),
            "NetworkMode": "awsvpc",
            "RequiresCompatibilities": ["FARGATE"],
            "Cpu": ref("TaskCPU"),
            "Memory": ref("TaskMemory"),
            "ExecutionRoleArn": getatt("ExecutionRole", "Arn"),
            "TaskRoleArn": getatt("TaskRole", "Arn"),
            "ContainerDefinitions": [self.main_container()] + self.sidecar_containers(),
        }
        platform = d.get("platform")
        if platform:
            props["RuntimePlatform"] = {"OperatingSystemFamily": "LINUX",
                                        "CpuArchitecture": "ARM64" if platform.endswith("arm64") else "X86_64"}
        eph = (d.get("storage") or {}).get("ephemeral")
        if eph:
            props["EphemeralStorage"] = {"SizeInGiB": eph}
        self.resources["TaskDefinition"] = {"Type": "AWS::ECS::TaskDefinition", "Properties": props}

    # --- networking and the ECS service -------------------------------------------------------------
    def placement_public(self) -> bool:
        placement = ((self.d.get("network") or {}).get("vpc") or {}).get("placement", "public")
        return placement == "public"

    def awsvpc(self) -> dict:
        public = self.placement_public()
        sgs = [import_env("EnvironmentSecurityGroup")] + list(
            ((self.d.get("network") or {}).get("vpc") or {}).get("security_groups") or [])
        sgs += [getatt("AddonsStack", f"Outputs.{o}") for o, k in sorted(((self.ri.addons or {}).get("outputs") or {}).items())
                if k == "AWS::EC2::SecurityGroup"]
        return {"AwsvpcConfiguration": {
            "AssignPublicIp": "ENABLED" if public else "DISABLED",
            "Subnets": {"Fn::Split": [",", import_env("PublicSubnets" if public else "PrivateSubnets")]},
            "SecurityGroups": sgs}}

    def discovery(self, port: int | None):
        records = [{"TTL": 10, "Type": "A"}] + ([{"TTL": 10, "Type": "SRV"}] if port else [])
        self.resources["DiscoveryService"] = {"Type": "AWS::ServiceDiscovery::Service", "Properties": {
            "Description": "Discovery Service for the Copilot services",
            "DnsConfig": {"RoutingPolicy": "MULTIVALUE", "DnsRecords": records},
            "HealthCheckCustomConfig": {"FailureThreshold": 1},
            "Name": ref("WorkloadName"),
            "NamespaceId": import_env("ServiceDiscoveryNamespaceID")}}
        self.outputs["DiscoveryServiceARN"] = {"Description": "ARN of the Discovery Service.",
                                               "Value": getatt("DiscoveryService", "Arn")}

    def service(self, load_balancers: list | None = None, depends_on: list | None = None):
        d = self.d
        rolling = (d.get("deployment") or {}).get("rolling", "default")
        port = (d.get("image") or {}).get("port")
        props = {
            "PlatformVersion": "LATEST",
            "Cluster": import_env("ClusterId"),
            "TaskDefinition": ref("TaskDefinition"),
            "DesiredCount": ref("TaskCount"),
            "LaunchType": "FARGATE",
            "PropagateTags": "SERVICE",
            "EnableExecuteCommand": bool(d.get("exec", False)),
            "DeploymentConfiguration": {
                "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                "MinimumHealthyPercent": 0 if rolling == "recreate" else 100,
                "MaximumPercent": 100 if rolling == "recreate" else 200},
            "NetworkConfiguration": self.awsvpc(),
            "ServiceRegistries": [{"RegistryArn": getatt("DiscoveryService", "Arn"), **({"Port": port} if port else {})}],
        }
        if load_balancers:
            props["LoadBalancers"] = load_balancers
            props["HealthCheckGracePeriodSeconds"] = self.grace_period()
        res = {"Type": "AWS::ECS::Service", "Properties": props}
        if depends_on:
            res["DependsOn"] = depends_on
        self.resources["Service"] = res
        self.autoscaling()

    def grace_period(self) -> int:
        hc = (self.d.get("http") or {}).get("healthcheck") if isinstance(self.d.get("http"), dict) else None
        if isinstance(hc, dict) and hc.get("grace_period"):
            return _seconds(hc["grace_period"])
        return 60

    def autoscaling(self):
        count = self.d.get("count")
        if not isinstance(count, dict):
            return
        rng = count["range"]
        lo, hi = (map(int, rng.split("-")) if isinstance(rng, str) else (rng["min"], rng["max"]))
        self.resources["AutoScalingTarget"] = {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": {
            "MinCapacity": lo, "MaxCapacity": hi,
            "ResourceId": {"Fn::Join": ["/", ["service", import_env("ClusterId"), getatt("Service", "Name")]]},
            "ScalableDimension": "ecs:service:DesiredCount", "ServiceNamespace": "ecs",
            "RoleARN": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
                           "ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService")}}
        cooldown = count.get("cooldown") or {}
        for key, metric, logical in (("cpu_percentage", "ECSServiceAverageCPUUtilization", "AutoScalingPolicyCPU"),
                                     ("memory_percentage", "ECSServiceAverageMemoryUtilization", "AutoScalingPolicyMemory"),
                                     ("requests", "ALBRequestCountPerTarget", "AutoScalingPolicyRequests")):
            target = count.get(key)
            if target is None:
                continue
            cd = cooldown
            if isinstance(target, dict):
                cd = {**cooldown, **(target.get("cooldown") or {})}
                target = target["value"]
            spec = {"PredefinedMetricType": metric}
            if key == "requests":  # <load balancer full name>/<target group full name>
                lb = "InternalLoadBalancerFullName" if self.m.type == BACKEND else "PublicLoadBalancerFullName"
                spec["ResourceLabel"] = {"Fn::Join": ["/", [import_env(lb), getatt("TargetGroup", "TargetGroupFullName")]]}
            self.resources[logical] = {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Properties": {
                "PolicyName": {"Fn::Join": ["-", [ref("WorkloadName"), metric]]},
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": ref("AutoScalingTarget"),
                "TargetTrackingScalingPolicyConfiguration": {
                    "PredefinedMetricSpecification": spec,
                    "ScaleInCooldown": _seconds(cd.get("in", "2m")),
                    "ScaleOutCooldown": _seconds(cd.get("out", "1m")),
                    "TargetValue": target}}}

    def http(self, listener_export: str):
        """Target group + listener rule on the env's public (LBWS) or internal (Backend) listener."""
        http = self.d.get("http") or {}
        port = (self.d.get("image") or {}).get("port")
        target_container = http.get("target_container", self.m.name)
        target_port = http.get("target_port") or (
            port if target_container == self.m.name else (self.d["sidecars"][target_container].get("port") or port))
        path = str(http.get("path", "/"))
        rule_path = "/" if path.strip("/") == "" else path.strip("/")
        self.param("ContainerPort", port)
        self.param("TargetContainer", target_container)
        self.param("TargetPort", target_port)
        self.param("RulePath", rule_path)
        self.conditions["IsDefaultRootPath"] = {"Fn::Equals": [ref("RulePath"), "/"]}
        hc = http.get("healthcheck", "/")
        hc = {"path": hc} if isinstance(hc, str) else hc
        tg = {
            "HealthCheckPath": hc.get("path", "/"),
            "Matcher": {"HttpCode": str(hc.get("success_codes", "200"))},
            "Port": ref("TargetPort"), "Protocol": "HTTP", "TargetType": "ip",
            "VpcId": import_env("VpcId"),
            "TargetGroupAttributes": [
                {"Key": "deregistration_delay.timeout_seconds",
                 "Value": str(_seconds(http["deregistration_delay"]) if http.get("deregistration_delay") else DEREGISTRATION_DELAY_DEFAULT)},
                {"Key": "stickiness.enabled", "Value": str(bool(http.get("stickiness", False))).lower()}],
        }
        if hc.get("port"):
            tg["HealthCheckPort"] = str(hc["port"])
        for key, prop in (("healthy_threshold", "HealthyThresholdCount"), ("unhealthy_threshold", "UnhealthyThresholdCount")):
            if hc.get(key):
                tg[prop] = hc[key]
        if hc.get("interval"):
            tg["HealthCheckIntervalSeconds"] = _seconds(hc["interval"])
        if hc.get("timeout"):
            tg["HealthCheckTimeoutSeconds"] = _seconds(hc["timeout"])
        self.resources["TargetGroup"] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": tg}
        conditions = [{"Field": "path-pattern", "PathPatternConfig": {"Values": if_(
            "IsDefaultRootPath", ["/*"], [sub("/${RulePath}"), sub("/${RulePath}/*")])}}]
        alias = http.get("alias")
        if alias:
            conditions.append({"Field": "host-header", "HostHeaderConfig": {
                "Values": [alias] if isinstance(alias, str) else list(alias)}})
        self.resources["HTTPListenerRule"] = {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {
            "ListenerArn": import_env(listener_export),
            "Priority": rule_priority(self.m.name, rule_path),
            "Conditions": conditions,
            "Actions": [{"Type": "forward", "TargetGroupArn": ref("TargetGroup")}]}}
        return [{"ContainerName": ref("TargetContainer"), "ContainerPort": ref("TargetPort"),
                 "TargetGroupArn": ref("TargetGroup")}]

    def publish(self):
        topics = ((self.d.get("publish") or {}).get("topics")) or []
        if not topics:
            return
        arns = {}
        for t in topics:
            logical = _topic_id(t["name"])
            self.resources[logical] = {"Type": "AWS::SNS::Topic", "Properties": {
                "TopicName": sub("${AppName}-${EnvName}-${WorkloadName}-" + t["name"])}}
            arns[t["name"]] = ref(logical)
        self.main_env["COPILOT_SNS_TOPIC_ARNS"] = {"Fn::Join": ["", ["{"] + _json_pairs(arns) + ["}"]]}

    def addons_stack(self):
        addons = self.ri.addons
        if not addons:
            return
        params = {"App": ref("AppName"), "Env": ref("EnvName"), "Name": ref("WorkloadName")}
        params.update(addons.get("parameters") or {})
        # Copilot guards this with `Condition: HasAddons`; here the stack exists only when there are addons,
        # so the GetAtts on its outputs need no guard (and cfn-lint has nothing to warn about).
        self.resources["AddonsStack"] = {"Type": "AWS::CloudFormation::Stack",
                                         "Properties": {"Parameters": params, "TemplateURL": ref("AddonsTemplateURL")}}

    def template(self, description: str) -> tuple[dict, dict]:
        t = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": description,
            "Metadata": {"Generator": "copilot-doit", "Recipe": RECIPE_VERSION},
            "Parameters": self.params,
            "Conditions": self.conditions,
            "Resources": self.resources,
        }
        if self.outputs:
            t["Outputs"] = self.outputs
        return t, dict(sorted(self.values.items()))


def _json_pairs(arns: dict) -> list:
    parts = []
    for i, (name, value) in enumerate(sorted(arns.items())):
        parts += [("," if i else "") + f'"{name}":"', value, '"']
    return parts


def _topic_id(name: str) -> str:
    return "".join(ch for ch in name.title() if ch.isalnum()) + "SNSTopic"


def _screaming(name: str) -> str:
    out = ""
    for i, ch in enumerate(name):
        if ch.isupper() and i and (name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower())):
            out += "_"
        out += ch.upper()
    return out


def _assume(service: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}


def _awslogs() -> dict:
    return {"LogDriver": "awslogs", "Options": {
        "awslogs-region": ref("AWS::Region"), "awslogs-group": ref("LogGroup"), "awslogs-stream-prefix": "copilot"}}


def rule_priority(name: str, rule_path: str) -> int:
    """A stable listener-rule priority per workload (Copilot uses a custom resource for this).

    Specific paths get 1..40000; the catch-all "/" goes to 45000..49999 so it is evaluated last.
    Derived from the name only, so adding a workload never renumbers the others.
    """
    h = xxhash.xxh32_intdigest(name.encode())
    return 45000 + h % 5000 if rule_path == "/" else 1 + h % 40000


# --- the four types -----------------------------------------------------------------------------------
def load_balanced_web_service(ri: RenderInput):
    b = Builder(ri)
    b.common_params()
    b.publish()
    b.logs_and_roles()
    lbs = None
    if b.d.get("http") is not False:
        lbs = b.http("HTTPListenerArn")
    else:
        b.param("ContainerPort", (b.d.get("image") or {}).get("port") or 80)
    b.task_definition()
    b.discovery((b.d.get("image") or {}).get("port"))
    b.service(lbs, ["HTTPListenerRule"] if lbs else None)
    b.addons_stack()
    return b.template(f"copilot-doit {LBWS} {ri.manifest.name} in {ri.app}-{ri.env}")


def backend_service(ri: RenderInput):
    b = Builder(ri)
    b.common_params()
    b.publish()
    b.logs_and_roles()
    port = (b.d.get("image") or {}).get("port")
    lbs = None
    if isinstance(b.d.get("http"), dict):
        lbs = b.http("InternalHTTPListenerArn")
    elif port:
        b.param("ContainerPort", port)
        b.param("TargetContainer", ri.manifest.name)
        b.param("TargetPort", port)
    b.task_definition()
    b.discovery(port)
    b.service(lbs, ["HTTPListenerRule"] if lbs else None)
    b.addons_stack()
    return b.template(f"copilot-doit {BACKEND} {ri.manifest.name} in {ri.app}-{ri.env}")


def worker_service(ri: RenderInput):
    b = Builder(ri)
    b.common_params()
    b.publish()
    sub_cfg = b.d.get("subscribe") or {}
    topics = sub_cfg.get("topics") or []
    queue_cfg = sub_cfg.get("queue") or {}
    qprops = {}
    if queue_cfg.get("retention"):
        qprops["MessageRetentionPeriod"] = _seconds(queue_cfg["retention"])
    if queue_cfg.get("timeout"):
        qprops["VisibilityTimeout"] = _seconds(queue_cfg["timeout"])
    if queue_cfg.get("delay"):
        qprops["DelaySeconds"] = _seconds(queue_cfg["delay"])
    tries = (queue_cfg.get("dead_letter") or {}).get("tries")
    if tries:
        b.resources["DeadLetterQueue"] = {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 1209600}}
        qprops["RedrivePolicy"] = {"deadLetterTargetArn": getatt("DeadLetterQueue", "Arn"), "maxReceiveCount": tries}
    b.resources["EventsQueue"] = {"Type": "AWS::SQS::Queue", "Properties": qprops}
    b.main_env["COPILOT_QUEUE_URI"] = ref("EventsQueue")
    topic_arns = []
    for t in topics:
        arn = sub("arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:${AppName}-${EnvName}-"
                  + f"{t['service']}-{t['name']}")
        topic_arns.append(arn)
        logical = "".join(ch for ch in f"{t['service']}-{t['name']}".title() if ch.isalnum()) + "Subscription"
        b.resources[logical] = {"Type": "AWS::SNS::Subscription", "Properties": {
            "TopicArn": arn, "Protocol": "sqs", "Endpoint": getatt("EventsQueue", "Arn")}}
    if topic_arns:
        b.resources["QueuePolicy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [ref("EventsQueue")],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
                "Resource": getatt("EventsQueue", "Arn"),
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arns}}}]}}}
    b.logs_and_roles()
    b.resources["TaskRole"]["Properties"].setdefault("Policies", []).append({
        "PolicyName": "Queue", "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                                          "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            "Resource": getatt("EventsQueue", "Arn")}]}})
    b.task_definition()
    b.discovery(None)
    b.service()
    b.addons_stack()
    return b.template(f"copilot-doit {WORKER} {ri.manifest.name} in {ri.app}-{ri.env}")


def scheduled_job(ri: RenderInput):
    b = Builder(ri)
    b.common_params()
    expression = schedule_expression(b.d["on"]["schedule"])
    b.param("Schedule", expression)
    b.publish()
    b.logs_and_roles()
    b.task_definition()
    retries = int(b.d.get("retries", 0))
    timeout = _seconds(b.d["timeout"]) if b.d.get("timeout") else None
    task = {"Type": "Task", "Resource": "arn:${AWS::Partition}:states:::ecs:runTask.sync",
            "Parameters": {"LaunchType": "FARGATE", "PlatformVersion": "LATEST",
                           "Cluster": "${Cluster}", "TaskDefinition": "${TaskDefinition}",
                           "PropagateTags": "TASK_DEFINITION", "Group.$": "$$.Execution.Name",
                           "NetworkConfiguration": {"AwsvpcConfiguration": {
                               "Subnets": "${Subnets}", "AssignPublicIp": "ENABLED" if b.placement_public() else "DISABLED",
                               "SecurityGroups": "${SecurityGroups}"}}},
            "End": True}
    if retries:
        task["Retry"] = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": retries, "BackoffRate": 1.5}]
    if timeout:
        task["TimeoutSeconds"] = timeout
    definition = json.dumps({"Version": "1.0", "Comment": "Run AWS Fargate task", "StartAt": "Run Fargate Task",
                             "States": {"Run Fargate Task": task}}, sort_keys=True, indent=2)
    # Lists of subnets/groups are substituted as JSON arrays.
    definition = (definition.replace('"${Subnets}"', '["${Subnets}"]')
                  .replace('"${SecurityGroups}"', '["${SecurityGroups}"]'))
    net = b.awsvpc()["AwsvpcConfiguration"]
    b.resources["StateMachineRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": _assume("states.amazonaws.com"),
        "Policies": [{"PolicyName": "StateMachine", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iam:PassRole",
             "Resource": [getatt("ExecutionRole", "Arn"), getatt("TaskRole", "Arn")],
             "Condition": {"StringLike": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
            {"Effect": "Allow", "Action": "ecs:RunTask", "Resource": ref("TaskDefinition"),
             "Condition": {"ArnEquals": {"ecs:cluster": sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:cluster/${Cluster}",
                                                            {"Cluster": import_env("ClusterId")})}}},
            {"Effect": "Allow", "Action": ["ecs:StopTask", "ecs:DescribeTasks"], "Resource": "*",
             "Condition": {"ArnEquals": {"ecs:cluster": sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:cluster/${Cluster}",
                                                            {"Cluster": import_env("ClusterId")})}}},
            {"Effect": "Allow", "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
             "Resource": sub("arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/StepFunctionsGetEventsForECSTaskRule")},
        ]}}]}}
    b.resources["StateMachine"] = {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
        "StateMachineName": sub("${AppName}-${EnvName}-${WorkloadName}"),
        "RoleArn": getatt("StateMachineRole", "Arn"),
        "DefinitionString": sub(definition, {
            "Cluster": import_env("ClusterId"), "TaskDefinition": ref("TaskDefinition"),
            "Subnets": {"Fn::Join": ['","', net["Subnets"]]},
            "SecurityGroups": {"Fn::Join": ['","', net["SecurityGroups"]]}})}}
    if expression != "none":
        b.resources["RuleRole"] = {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": _assume("events.amazonaws.com"),
            "Policies": [{"PolicyName": "EventRulePolicy", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "states:StartExecution", "Resource": ref("StateMachine")}]}}]}}
        b.resources["Rule"] = {"Type": "AWS::Events::Rule", "Properties": {
            "ScheduleExpression": ref("Schedule"), "State": "ENABLED",
            "Targets": [{"Arn": ref("StateMachine"), "Id": "statemachine", "RoleArn": getatt("RuleRole", "Arn")}]}}
    b.addons_stack()
    return b.template(f"copilot-doit {JOB} {ri.manifest.name} in {ri.app}-{ri.env}")


RENDERERS = {LBWS: load_balanced_web_service, BACKEND: backend_service, WORKER: worker_service, JOB: scheduled_job}


def render(ri: RenderInput) -> tuple[dict, dict]:
    return RENDERERS[ri.manifest.type](ri)
