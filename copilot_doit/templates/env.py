"""The environment stack `<app>-<env>`: network, ECS cluster, public ALB, service discovery, exports.

Export names follow Copilot (`<app>-<env>-ClusterId`, ...) so workload stacks import them.
"""
from __future__ import annotations

from . import getatt, ref, sub

# Bump when this module's output changes: every environment stack is then re-rendered and updated.
RECIPE = "env/3"

EXPORTS = ("VpcId", "PublicSubnets", "PrivateSubnets", "ClusterId", "EnvironmentSecurityGroup",
           "PublicLoadBalancerDNSName", "HTTPListenerArn", "PublicLoadBalancerFullName", "InternalLoadBalancerDNSName",
           "InternalHTTPListenerArn", "InternalLoadBalancerFullName", "ServiceDiscoveryNamespaceID")


def _subnets(kind: str, specs: list[dict], public: bool) -> dict:
    """One subnet per {cidr, az}; without an az the i-th zone of the region, as Copilot."""
    res = {}
    for i, spec in enumerate(specs):
        res[f"{kind}Subnet{i + 1}"] = {
            "Type": "AWS::EC2::Subnet",
            "Properties": {
                "CidrBlock": spec["cidr"],
                "VpcId": ref("VPC"),
                "AvailabilityZone": spec.get("az") or {"Fn::Select": [i, {"Fn::GetAZs": ""}]},
                "MapPublicIpOnLaunch": public,
                "Tags": [{"Key": "Name", "Value": sub(f"copilot-${{AppName}}-${{EnvironmentName}}-{kind.lower()}{i}")}],
            },
        }
    return res


PUBLIC_ALB = ("PublicLoadBalancerSecurityGroup", "PublicLoadBalancer", "HTTPListener",
              "EnvironmentSecurityGroupIngressFromPublicALB", "PublicLoadBalancerDNSName", "HTTPListenerArn",
              "PublicLoadBalancerFullName")
INTERNAL_ALB = ("InternalLoadBalancerSecurityGroup", "InternalLoadBalancer", "InternalHTTPListener",
                "EnvironmentSecurityGroupIngressFromInternalALB", "InternalLoadBalancerSecurityGroupIngressFromEnvironment",
                "InternalLoadBalancerDNSName", "InternalHTTPListenerArn", "InternalLoadBalancerFullName")


def render(app: str, env: str, manifest: dict, public_alb: bool = True,
           internal_alb: bool = True) -> tuple[dict, dict]:
    """(template, parameters) for the environment stack. Load balancers exist only when a workload of
    the workspace needs them (Copilot does this lazily through its EnvController custom resource)."""
    vpc_cfg = (manifest.get("network") or {}).get("vpc") or {}
    insights = bool((manifest.get("observability") or {}).get("container_insights", False))
    imported = vpc_cfg.get("id")
    resources: dict = {}
    if imported:
        subnets = vpc_cfg.get("subnets") or {}
        public_ids = [s["id"] for s in subnets.get("public") or [] if s.get("id")]
        private_ids = [s["id"] for s in subnets.get("private") or [] if s.get("id")]
        vpc_id = imported
        public_subnets = public_ids
        private_subnets = private_ids
    else:
        cidr = vpc_cfg.get("cidr", "10.0.0.0/16")
        base = cidr.split("/")[0].split(".")
        block = lambda n: f"{base[0]}.{base[1]}.{n}.0/24"  # noqa: E731
        subnets = vpc_cfg.get("subnets") or {}
        pub = [s for s in subnets.get("public") or [] if s.get("cidr")] or [{"cidr": block(0)}, {"cidr": block(1)}]
        priv = [s for s in subnets.get("private") or [] if s.get("cidr")] or [{"cidr": block(2)}, {"cidr": block(3)}]
        resources.update({
            "VPC": {"Type": "AWS::EC2::VPC", "Properties": {
                "CidrBlock": cidr, "EnableDnsHostnames": True, "EnableDnsSupport": True,
                "Tags": [{"Key": "Name", "Value": sub("copilot-${AppName}-${EnvironmentName}")}]}},
            "InternetGateway": {"Type": "AWS::EC2::InternetGateway"},
            "InternetGatewayAttachment": {"Type": "AWS::EC2::VPCGatewayAttachment", "Properties": {
                "InternetGatewayId": ref("InternetGateway"), "VpcId": ref("VPC")}},
            "PublicRouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref("VPC")}},
            "DefaultPublicRoute": {"Type": "AWS::EC2::Route", "DependsOn": "InternetGatewayAttachment",
                                   "Properties": {"RouteTableId": ref("PublicRouteTable"),
                                                  "DestinationCidrBlock": "0.0.0.0/0",
                                                  "GatewayId": ref("InternetGateway")}},
        })
        resources.update(_subnets("Public", pub, True))
        resources.update(_subnets("Private", priv, False))
        for i in range(len(pub)):
            resources[f"PublicSubnet{i + 1}RouteTableAssociation"] = {
                "Type": "AWS::EC2::SubnetRouteTableAssociation",
                "Properties": {"RouteTableId": ref("PublicRouteTable"), "SubnetId": ref(f"PublicSubnet{i + 1}")}}
        vpc_id = ref("VPC")
        public_subnets = [ref(f"PublicSubnet{i + 1}") for i in range(len(pub))]
        private_subnets = [ref(f"PrivateSubnet{i + 1}") for i in range(len(priv))]

    resources.update({
        "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {
            "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled" if insights else "disabled"}]}},
        "PublicLoadBalancerSecurityGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "Access to the public facing load balancer",
            "VpcId": vpc_id,
            "SecurityGroupIngress": [{"CidrIp": "0.0.0.0/0", "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
                                      "Description": "Allow from anyone on port 80"}]}},
        "InternalLoadBalancerSecurityGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "Access to the internal load balancer", "VpcId": vpc_id}},
        "EnvironmentSecurityGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": sub("${AppName}-${EnvironmentName}-EnvironmentSecurityGroup"),
            "VpcId": vpc_id}},
        "EnvironmentSecurityGroupIngressFromSelf": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "Description": "Ingress from other containers in the same security group",
            "GroupId": ref("EnvironmentSecurityGroup"), "IpProtocol": "-1",
            "SourceSecurityGroupId": ref("EnvironmentSecurityGroup")}},
        "EnvironmentSecurityGroupIngressFromPublicALB": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "Description": "Ingress from the public ALB", "GroupId": ref("EnvironmentSecurityGroup"),
            "IpProtocol": "-1", "SourceSecurityGroupId": ref("PublicLoadBalancerSecurityGroup")}},
        "EnvironmentSecurityGroupIngressFromInternalALB": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "Description": "Ingress from the internal ALB", "GroupId": ref("EnvironmentSecurityGroup"),
            "IpProtocol": "-1", "SourceSecurityGroupId": ref("InternalLoadBalancerSecurityGroup")}},
        "InternalLoadBalancerSecurityGroupIngressFromEnvironment": {
            "Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
                "Description": "Ingress from services in the environment",
                "GroupId": ref("InternalLoadBalancerSecurityGroup"), "IpProtocol": "-1",
                "SourceSecurityGroupId": ref("EnvironmentSecurityGroup")}},
        "PublicLoadBalancer": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
            "Scheme": "internet-facing", "Type": "application",
            "SecurityGroups": [ref("PublicLoadBalancerSecurityGroup")],
            "Subnets": public_subnets}},
        "HTTPListener": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "LoadBalancerArn": ref("PublicLoadBalancer"), "Port": 80, "Protocol": "HTTP",
            "DefaultActions": [{"Type": "fixed-response", "FixedResponseConfig": {
                "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no service matches this path"}}]}},
        "InternalLoadBalancer": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
            "Scheme": "internal", "Type": "application",
            "SecurityGroups": [ref("InternalLoadBalancerSecurityGroup")],
            "Subnets": private_subnets}},
        "InternalHTTPListener": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "LoadBalancerArn": ref("InternalLoadBalancer"), "Port": 80, "Protocol": "HTTP",
            "DefaultActions": [{"Type": "fixed-response", "FixedResponseConfig": {
                "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no service matches this path"}}]}},
        "ServiceDiscoveryNamespace": {"Type": "AWS::ServiceDiscovery::PrivateDnsNamespace", "Properties": {
            "Name": sub("${EnvironmentName}.${AppName}.local"), "Vpc": vpc_id}},
    })

    def out(name, value):
        return {"Value": value, "Export": {"Name": sub("${AWS::StackName}-" + name)}}

    outputs = {
        "VpcId": out("VpcId", vpc_id),
        "PublicSubnets": out("PublicSubnets", {"Fn::Join": [",", public_subnets]}),
        "PrivateSubnets": out("PrivateSubnets", {"Fn::Join": [",", private_subnets]}),
        "ClusterId": out("ClusterId", ref("Cluster")),
        "EnvironmentSecurityGroup": out("EnvironmentSecurityGroup", ref("EnvironmentSecurityGroup")),
        "PublicLoadBalancerDNSName": out("PublicLoadBalancerDNSName", getatt("PublicLoadBalancer", "DNSName")),
        "HTTPListenerArn": out("HTTPListenerArn", ref("HTTPListener")),
        "PublicLoadBalancerFullName": out("PublicLoadBalancerFullName", getatt("PublicLoadBalancer", "LoadBalancerFullName")),
        "InternalLoadBalancerDNSName": out("InternalLoadBalancerDNSName", getatt("InternalLoadBalancer", "DNSName")),
        "InternalHTTPListenerArn": out("InternalHTTPListenerArn", ref("InternalHTTPListener")),
        "InternalLoadBalancerFullName": out("InternalLoadBalancerFullName",
                                            getatt("InternalLoadBalancer", "LoadBalancerFullName")),
        "ServiceDiscoveryNamespaceID": out("ServiceDiscoveryNamespaceID", getatt("ServiceDiscoveryNamespace", "Id")),
    }
    for wanted, names in ((public_alb, PUBLIC_ALB), (internal_alb, INTERNAL_ALB)):
        if not wanted:
            for n in names:
                resources.pop(n, None)
                outputs.pop(n, None)
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"copilot-doit environment {env} of application {app}",
        "Parameters": {
            "AppName": {"Type": "String"},
            "EnvironmentName": {"Type": "String"},
        },
        "Resources": resources,
        "Outputs": outputs,
    }
    params = {"AppName": app, "EnvironmentName": env}
    return template, params
