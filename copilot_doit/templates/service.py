"""The ECS service: deployment settings, capacity providers (Fargate Spot), Service Connect, Cloud Map
(service discovery) registration, rollback alarms."""
from __future__ import annotations

from . import getatt, import_env, ref, sub
from .alarms import rollback_alarm_names
from .autoscaling import autoscaling, count_range
from .network import awsvpc
from .taskdef import sc_server
from .util import awslogs, seconds


def discovery(b, port: int | None):
    records = [{"TTL": 10, "Type": "A"}] + ([{"TTL": 10, "Type": "SRV"}] if port else [])
    b.resources["DiscoveryService"] = {"Type": "AWS::ServiceDiscovery::Service", "Properties": {
        "Description": "Discovery Service for the Copilot services",
        "DnsConfig": {"RoutingPolicy": "MULTIVALUE", "DnsRecords": records},
        "HealthCheckCustomConfig": {"FailureThreshold": 1},
        "Name": ref("WorkloadName"),
        "NamespaceId": import_env("ServiceDiscoveryNamespaceID")}}
    b.outputs["DiscoveryServiceARN"] = {"Description": "ARN of the Discovery Service.",
                                        "Value": getatt("DiscoveryService", "Arn"),
                                        "Export": {"Name": sub("${AWS::StackName}-DiscoveryServiceARN")}}


def grace_period(b) -> int:
    hc = (b.d.get("http") or {}).get("healthcheck") if isinstance(b.d.get("http"), dict) else None
    if isinstance(hc, dict) and hc.get("grace_period"):
        return seconds(hc["grace_period"])
    nlb_hc = (b.d.get("nlb") or {}).get("healthcheck") or {}
    if nlb_hc.get("grace_period"):
        return seconds(nlb_hc["grace_period"])
    return 60


def capacity_providers(b) -> list | None:
    """Copilot's Fargate Spot strategy: `count.spot: n` runs everything on Spot; `range.spot_from: n` keeps
    the first n-1 tasks on Fargate (base) and the rest on Spot."""
    count = b.d.get("count")
    if not isinstance(count, dict):
        return None
    rng = count.get("range")
    spot_from = rng.get("spot_from") if isinstance(rng, dict) else None
    if count.get("spot") is None and spot_from is None:
        return None
    cps = [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]
    if spot_from is not None:
        lo, _ = count_range(count)
        if spot_from >= lo:
            cps.append({"CapacityProvider": "FARGATE", "Weight": 0, "Base": max(spot_from - 1, 0)})
    return cps


def connect(b) -> tuple[bool, str | None]:
    """(enabled, alias) of network.connect."""
    c = (b.d.get("network") or {}).get("connect")
    if c is None or c is False:
        return False, None
    return True, (c.get("alias") if isinstance(c, dict) else None)


def service_connect(b, server_port: bool) -> dict | None:
    enabled, alias = connect(b)
    if not enabled:
        return None
    cfg = {"Enabled": True, "Namespace": sub("${EnvName}.${AppName}.local"), "LogConfiguration": awslogs()}
    if server_port:
        cfg["Services"] = [{"PortName": "target", "DiscoveryName": {"Fn::Join": ["-", [ref("WorkloadName"), "sc"]]},
                            "ClientAliases": [{"Port": ref("TargetPort"), "DnsName": alias or ref("WorkloadName")}]}]
    return cfg


def service(b, load_balancers: list | None = None, depends_on: list | None = None):
    d = b.d
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
        "NetworkConfiguration": awsvpc(b),
    }
    if "DiscoveryService" in b.resources:  # a Worker Service is not discoverable (as Copilot)
        props["ServiceRegistries"] = [{"RegistryArn": getatt("DiscoveryService", "Arn"), **({"Port": port} if port else {})}]
    alarms = rollback_alarm_names(b)
    if alarms:
        props["DeploymentConfiguration"]["Alarms"] = {"AlarmNames": alarms, "Enable": True, "Rollback": True}
    cps = capacity_providers(b)
    if cps:
        del props["LaunchType"]
        props["CapacityProviderStrategy"] = cps
    sc = service_connect(b, server_port=sc_server(b) is not None)
    if sc:
        props["ServiceConnectConfiguration"] = sc
    if load_balancers:
        props["LoadBalancers"] = load_balancers
        props["HealthCheckGracePeriodSeconds"] = grace_period(b)
    res = {"Type": "AWS::ECS::Service", "Properties": props}
    if depends_on:
        res["DependsOn"] = depends_on
    b.resources["Service"] = res
    autoscaling(b)
