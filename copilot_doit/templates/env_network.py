"""Environment network extras: NAT gateways for private placement, VPC flow logs, the environment security
group's custom rules (`network.vpc.security_group`), gateway/interface VPC endpoints."""
from __future__ import annotations

from . import getatt, ref, sub


def nat_gateways(resources: dict, n_public: int, n_private: int):
    """One NAT gateway per private subnet (in the public subnet of the same index, as Copilot), each private
    subnet routed through its own."""
    for i in range(1, n_private + 1):
        pub = (i - 1) % max(n_public, 1) + 1
        resources[f"NatGateway{i}Attachment"] = {"Type": "AWS::EC2::EIP", "DependsOn": "InternetGatewayAttachment",
                                                 "Properties": {"Domain": "vpc"}}
        resources[f"NatGateway{i}"] = {"Type": "AWS::EC2::NatGateway", "Properties": {
            "AllocationId": getatt(f"NatGateway{i}Attachment", "AllocationId"), "SubnetId": ref(f"PublicSubnet{pub}"),
            "Tags": [{"Key": "Name", "Value": sub(f"copilot-${{AppName}}-${{EnvironmentName}}-{i - 1}")}]}}
        resources[f"PrivateRouteTable{i}"] = {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref("VPC")}}
        resources[f"PrivateRoute{i}"] = {"Type": "AWS::EC2::Route", "Properties": {
            "RouteTableId": ref(f"PrivateRouteTable{i}"), "DestinationCidrBlock": "0.0.0.0/0",
            "NatGatewayId": ref(f"NatGateway{i}")}}
        resources[f"PrivateRouteTable{i}Association"] = {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "RouteTableId": ref(f"PrivateRouteTable{i}"), "SubnetId": ref(f"PrivateSubnet{i}")}}


def flow_logs(resources: dict, cfg, vpc_id):
    if not cfg:
        return
    retention = cfg.get("retention", 14) if isinstance(cfg, dict) else 14
    resources["FlowLogsGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": sub("/copilot/${AppName}-${EnvironmentName}-vpc-flow-logs"), "RetentionInDays": retention}}
    resources["FlowLogRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "vpc-flow-logs.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": "FlowLogs", "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogGroups",
                                          "logs:DescribeLogStreams"],
            "Resource": getatt("FlowLogsGroup", "Arn")}]}}]}}
    resources["VpcFlowLog"] = {"Type": "AWS::EC2::FlowLog", "Properties": {
        "DeliverLogsPermissionArn": getatt("FlowLogRole", "Arn"), "LogDestinationType": "cloud-watch-logs",
        "LogGroupName": ref("FlowLogsGroup"), "ResourceId": vpc_id, "ResourceType": "VPC", "TrafficType": "ALL"}}


def _rule(r: dict, direction: str) -> dict:
    ports = r["ports"]
    lo, hi = (ports, ports) if isinstance(ports, int) else (int(x) for x in ports.split("-"))
    out = {"CidrIp": r["cidr"], "IpProtocol": str(r["ip_protocol"]), "FromPort": lo, "ToPort": hi}
    if direction == "egress":
        out["Description"] = "Custom egress rule from the environment manifest"
    else:
        out["Description"] = "Custom ingress rule from the environment manifest"
    return out


def security_group_rules(sg_props: dict, cfg: dict | None):
    """`network.vpc.security_group`: ingress/egress rules on the environment security group (Copilot puts
    them on the same group). An empty egress list keeps AWS's default allow-all egress."""
    if not cfg:
        return
    if cfg.get("ingress"):
        sg_props["SecurityGroupIngress"] = [_rule(r, "ingress") for r in cfg["ingress"]]
    if cfg.get("egress"):
        sg_props["SecurityGroupEgress"] = [_rule(r, "egress") for r in cfg["egress"]]


def vpc_endpoints(resources: dict, services: list, private_subnets: list, n_private_route_tables: int):
    """Interface endpoints (e.g. ecr.api, ecr.dkr, logs, ssm, secretsmanager) in the private subnets and the S3
    gateway endpoint, so tasks in private subnets without NAT can pull images and write logs."""
    if not services:
        return
    resources["VpcEndpointSecurityGroup"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "GroupDescription": "HTTPS from the environment to the VPC endpoints", "VpcId": ref("VPC"),
        "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                  "SourceSecurityGroupId": ref("EnvironmentSecurityGroup")}]}}
    for svc in services:
        logical = "".join(p.title() for p in svc.replace(".", "-").split("-")) + "VpcEndpoint"
        if svc == "s3":
            resources[logical] = {"Type": "AWS::EC2::VPCEndpoint", "Properties": {
                "ServiceName": sub("com.amazonaws.${AWS::Region}.s3"), "VpcEndpointType": "Gateway",
                "VpcId": ref("VPC"),
                "RouteTableIds": [ref(f"PrivateRouteTable{i}") for i in range(1, n_private_route_tables + 1)]
                or [ref("PublicRouteTable")]}}
        else:
            resources[logical] = {"Type": "AWS::EC2::VPCEndpoint", "Properties": {
                "ServiceName": sub("com.amazonaws.${AWS::Region}." + svc), "VpcEndpointType": "Interface",
                "PrivateDnsEnabled": True, "VpcId": ref("VPC"), "SubnetIds": private_subnets,
                "SecurityGroupIds": [ref("VpcEndpointSecurityGroup")]}}
