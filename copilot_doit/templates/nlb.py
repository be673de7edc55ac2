"""`nlb`: a public Network Load Balancer in the workload stack (as Copilot): its security group, one
listener + target group per listener entry, ingress from the NLB to the environment's security group."""
from __future__ import annotations

from . import getatt, import_env, ref, sub
from .util import health_check_tuning, seconds


def _listener(spec: dict):
    num, _, proto = str(spec["port"]).partition("/")
    return int(num), (proto or "tcp").upper()


def nlb(b) -> list:
    cfg = b.d.get("nlb")
    if not cfg:
        return []
    sidecars = b.d.get("sidecars") or {}
    entries = [cfg] + list(cfg.get("additional_listeners") or [])
    ingress, lbs = [], []
    for i, spec in enumerate(entries):
        suffix = str(i) if i else ""
        lport, proto = _listener(spec)
        container = spec.get("target_container", cfg.get("target_container", b.m.name))
        if spec.get("target_port"):
            tport = spec["target_port"]
        elif container != b.m.name and sidecars.get(container, {}).get("port"):
            tport = int(str(sidecars[container]["port"]).split("/")[0])
        else:
            tport = lport
        tg_proto = "TCP" if proto == "TLS" else proto
        b.exposed.append((container, tport, "udp" if tg_proto == "UDP" else "tcp"))
        ip_proto = "tcp" if proto in ("TLS", "TCP") else proto.lower()
        if proto == "TCP_UDP":
            ip_protos = ["tcp", "udp"]
        else:
            ip_protos = [ip_proto]
        for p in ip_protos:
            ingress.append({"CidrIp": "0.0.0.0/0", "Description": f"Allow {p.upper()} traffic from anyone on listener port {lport}",
                            "FromPort": lport, "IpProtocol": p, "ToPort": lport})
        hc = spec.get("healthcheck") or {}
        tg = health_check_tuning(hc)
        if tg_proto in ("UDP", "TCP_UDP"):
            tg["HealthCheckProtocol"] = "TCP"  # UDP target groups are health-checked over TCP
        tg.update({"Port": tport, "Protocol": tg_proto,
                   "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": str(
                       seconds(spec["deregistration_delay"]) if spec.get("deregistration_delay") else 60)}]
                   + ([{"Key": "stickiness.enabled", "Value": "true"}] if spec.get("stickiness") and proto != "TLS" else []),
                   "TargetType": "ip", "VpcId": import_env("VpcId")})
        b.resources[f"NetworkLoadBalancerTargetGroup{suffix}"] = {
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": tg}
        listener = {"DefaultActions": [{"TargetGroupArn": ref(f"NetworkLoadBalancerTargetGroup{suffix}"), "Type": "forward"}],
                    "LoadBalancerArn": ref("PublicNetworkLoadBalancerV2"), "Port": lport, "Protocol": proto}
        b.resources[f"NLBListener{suffix}"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": listener}
        lbs.append({"ContainerName": container, "ContainerPort": tport,
                    "TargetGroupArn": ref(f"NetworkLoadBalancerTargetGroup{suffix}")})
        b.rule_ids.append(f"NLBListener{suffix}")
    b.resources["NetworkLoadBalancerSecurityGroup"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "GroupDescription": "Allow traffic to the public facing load balancer on listener ports",
        "SecurityGroupIngress": ingress, "VpcId": import_env("VpcId"),
        "Tags": [{"Key": "Name", "Value": sub("copilot-${AppName}-${EnvName}-${WorkloadName}-nlb")}]}}
    b.resources["PublicNetworkLoadBalancerV2"] = {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
        "Scheme": "internet-facing",
        "Subnets": {"Fn::Split": [",", import_env("PublicSubnets")]},
        "Type": "network", "SecurityGroups": [getatt("NetworkLoadBalancerSecurityGroup", "GroupId")]}}
    b.resources["EnvironmentSecurityGroupIngressFromNetworkLoadBalancerSecurityGroup"] = {
        "Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "GroupId": import_env("EnvironmentSecurityGroup"), "IpProtocol": "-1",
            "SourceSecurityGroupId": getatt("NetworkLoadBalancerSecurityGroup", "GroupId")}}
    b.outputs["PublicNetworkLoadBalancerDNSName"] = {"Value": getatt("PublicNetworkLoadBalancerV2", "DNSName")}
    alias_records(b, cfg.get("alias"))
    return lbs


def alias_records(b, alias) -> None:
    """`nlb.alias` (checked against the application domain by domain.check_workload): A records aliasing the
    NLB, one group per zone of the domain (Copilot: NLBCustomDomainAction, a custom resource)."""
    from ..domain import alias_entries, zone_names, zone_of
    app_domain = b.ri.extra.get("app_domain")
    entries = alias_entries(alias)
    if not entries or not app_domain:
        return
    zone_ids = b.ri.extra.get("zone_ids") or {}
    names = zone_names(b.ri.app, b.ri.env, app_domain)
    by_zone: dict = {}
    for name, _ in entries:
        by_zone.setdefault(zone_of(name, b.ri.app, b.ri.env, app_domain), []).append(name)
    for kind, logical in (("env", "Environment"), ("app", "App"), ("root", "Root")):
        if kind not in by_zone:
            continue
        if kind != "env" and kind not in zone_ids:
            b.m.fail(("nlb", "alias"), f"the hosted zone {names[kind]} was not looked up (RenderInput.extra zone_ids)")
        b.resources[f"NLBAliasRecordsIn{logical}Zone"] = {"Type": "AWS::Route53::RecordSetGroup", "Properties": {
            "HostedZoneId": import_env("HostedZone") if kind == "env" else zone_ids[kind],
            "Comment": sub("Network load balancer aliases for service ${WorkloadName}"),
            "RecordSets": [{"Name": n, "Type": "A", "AliasTarget": {
                "HostedZoneId": getatt("PublicNetworkLoadBalancerV2", "CanonicalHostedZoneID"),
                "DNSName": getatt("PublicNetworkLoadBalancerV2", "DNSName")}} for n in by_zone[kind]]}}
