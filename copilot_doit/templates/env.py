"""The environment stack `<app>-<env>`: network, ECS cluster, load balancers, service discovery, exports.

Composed from env_network (NAT gateways, flow logs, custom security group rules, VPC endpoints), env_efs
(the managed file system), env_cdn (CloudFront) and env_roles (Copilot's bootstrap roles). Export names
follow Copilot (`<app>-<env>-ClusterId`, ...) so workload stacks import them, copilot-doit's and Copilot's.
"""
from __future__ import annotations

from . import getatt, ref, sub
from .env_cdn import cdn as cdn_part
from .env_efs import managed_efs as efs_part
from . import env_dns, env_network, env_roles

# Bump when this module's output changes: every environment stack is then re-rendered and updated.
# env/5: Copilot's export and output names added beside copilot-doit's own (COPILOT_OUTPUTS).
# env/6: Copilot's bootstrap roles, their outputs, EnabledFeatures and the parameters Copilot's env controller
#        updates (COPILOT_PARAMETERS), so that Copilot's own workload stacks deploy against the stack.
RECIPE = "env/6"

# Parameters of Copilot's env template (template/templates/environment/cf.yml), declared as Copilot declares
# them, each with a default, so that copilot-doit passes only AppName and EnvironmentName (and
# CloudFrontPrefixListId) as before. copilot-doit does nothing with them: none of its resources depends on
# their values, except the EnvironmentManagerRole's trust (ToolsAccountPrincipalARN: when empty, the
# account's root). They exist because Copilot writes them: the env controller, a custom resource in every
# Copilot workload stack, calls UpdateStack on `<app>-<env>` with the stack's own parameter list, a
# workload name added to (or removed from) the lists below; CloudFormation refuses a parameter the template
# does not declare. Copilot's `svc deploy` also decides which features the environment offers by which of
# them it declares (describe.EnvDescriber.AvailableFeatures), and reads ServiceDiscoveryEndpoint (the
# default: copilot-doit's namespace `<env>.<app>.local`). Copilot's own `env deploy` keeps their live values
# (transformEnvControllerParameters); so does copilot-doit's env stage (kept_parameters), whose live check
# compares only the parameters it passes (stacks.live_ok).
CONTROLLER_PARAMETERS = ("ALBWorkloads", "InternalALBWorkloads", "EFSWorkloads", "NATWorkloads",
                         "AppRunnerPrivateWorkloads", "Aliases")
COPILOT_PARAMETERS = ("ALBWorkloads", "InternalALBWorkloads", "EFSWorkloads", "NATWorkloads",
                      "AppRunnerPrivateWorkloads", "ToolsAccountPrincipalARN", "AppDNSName", "AppDNSDelegationRole",
                      "Aliases", "CreateHTTPSListener", "CreateInternalHTTPSListener", "ServiceDiscoveryEndpoint")

# copilot-doit's own outputs, each exported as `<stack>-<output>`: its workloads import these.
OWN_EXPORTS = ("VpcId", "PublicSubnets", "PrivateSubnets", "ClusterId", "EnvironmentSecurityGroup",
               "PublicLoadBalancerDNSName", "HTTPListenerArn", "PublicLoadBalancerFullName",
               "InternalLoadBalancerDNSName", "InternalHTTPListenerArn", "InternalLoadBalancerFullName",
               "ServiceDiscoveryNamespaceID", "CanonicalHostedZoneID", "InternalLoadBalancerCanonicalHostedZoneID",
               "HTTPSListenerArn", "InternalHTTPSListenerArn", "ManagedFileSystemID", "CloudFrontDomainName",
               "EnvironmentHostedZone", "EnvironmentSubdomain")
# The bootstrap roles' outputs under Copilot's names (env_roles.outputs), which copilot-doit's own workloads
# do not read. Every stack also has Copilot's EnabledFeatures output (see render).
ROLE_OUTPUTS = ("EnvironmentManagerRoleARN", "CFNExecutionRoleARN")
# Additional outputs under Copilot's names (its env template, template/templates/environment/), so that
# Copilot's workload templates find what they read from an environment copilot-doit made: output key ->
# (the export name's suffix, or None when Copilot exports that value under a name copilot-doit already
# exports; the resource it needs). Copilot's names for the same values differ from copilot-doit's own, which
# stay: e.g. Copilot exports the public ALB's DNS name as `<stack>-PublicLoadBalancerDNS` from the output
# `PublicLoadBalancerDNSName`, copilot-doit as `<stack>-PublicLoadBalancerDNSName`. Its env controller hands
# the outputs to a workload stack by key (`!GetAtt EnvControllerAction.PublicLoadBalancerHostedZone`).
COPILOT_OUTPUTS = {
    "PublicLoadBalancerDNS": ("PublicLoadBalancerDNS", "PublicLoadBalancer"),
    "PublicLoadBalancerHostedZone": (None, "PublicLoadBalancer"),            # exported as CanonicalHostedZoneID
    "InternalLoadBalancerDNS": ("InternalLoadBalancerDNS", "InternalLoadBalancer"),
    "InternalLoadBalancerHostedZone": (None, "InternalLoadBalancer"),        # as InternalLoadBalancerCanonicalHostedZoneID
    "InternalLoadBalancerSecurityGroup": ("InternalLoadBalancerSecurityGroup", "InternalLoadBalancer"),
    "InternetGatewayID": ("InternetGatewayID", "InternetGateway"),
    "PublicRouteTableID": ("PublicRouteTableID", "PublicRouteTable"),
    "PrivateRouteTableIDs": ("PrivateRouteTableIDs", "PrivateRouteTable1"),
    "FilesystemID": ("FilesystemID", "FileSystem"),
}
# Every output the env stack may have (which ones depends on the manifest and the keyword arguments).
EXPORTS = OWN_EXPORTS + tuple(COPILOT_OUTPUTS) + ROLE_OUTPUTS + ("EnabledFeatures",)
# The ones every environment with both load balancers and a new VPC has.
BASE_EXPORTS = OWN_EXPORTS[:14] + ("PublicLoadBalancerDNS", "PublicLoadBalancerHostedZone", "InternalLoadBalancerDNS",
                                   "InternalLoadBalancerHostedZone", "InternalLoadBalancerSecurityGroup",
                                   "InternetGatewayID", "PublicRouteTableID") + ROLE_OUTPUTS + ("EnabledFeatures",)
DEFAULT_SSL_POLICY = "ELBSecurityPolicy-2016-08"
# Elastic Load Balancing's account per region, for the access-log bucket policy (AWS documentation).
ELB_ACCOUNTS = {
    "us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-1": "027434742980", "us-west-2": "797873946194",
    "af-south-1": "098369216593", "ca-central-1": "985666609251", "eu-central-1": "054676820928",
    "eu-west-1": "156460612806", "eu-west-2": "652711504416", "eu-south-1": "635631232127",
    "eu-west-3": "009996457667", "eu-north-1": "897822967062", "ap-east-1": "754344448648",
    "ap-northeast-1": "582318560864", "ap-northeast-2": "600734575887", "ap-northeast-3": "383597477331",
    "ap-southeast-1": "114774131450", "ap-southeast-2": "783225319266", "ap-southeast-3": "589379963580",
    "ap-south-1": "718504428378", "me-south-1": "076674570225", "sa-east-1": "507241528517",
    "us-gov-west-1": "048591011584", "us-gov-east-1": "190560391635", "cn-north-1": "638102146993",
    "cn-northwest-1": "037604701340"}


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
              "PublicLoadBalancerFullName", "CanonicalHostedZoneID", "HTTPSListener", "HTTPSListenerArn",
              "ELBAccessLogsBucket", "ELBAccessLogsBucketPolicy")
INTERNAL_ALB = ("InternalLoadBalancerSecurityGroup", "InternalLoadBalancer", "InternalHTTPListener",
                "EnvironmentSecurityGroupIngressFromInternalALB", "InternalLoadBalancerSecurityGroupIngressFromEnvironment",
                "InternalLoadBalancerDNSName", "InternalHTTPListenerArn", "InternalLoadBalancerFullName",
                "InternalLoadBalancerCanonicalHostedZoneID", "InternalHTTPSListener", "InternalHTTPSListenerArn",
                "InternalLoadBalancerSecurityGroupIngressFromVPC")


def render(app: str, env: str, manifest: dict, public_alb: bool = True,
           internal_alb: bool = True, nat_gateways: bool = False, managed_efs: bool = False,
           vpc_endpoints: tuple | list = (), cloudfront_prefix_list: str | None = None,
           domain: str | None = None, zone_ids: dict | None = None, aliases: tuple | list = (),
           artifact_bucket_arn: str | None = None, artifact_key_arn: str | None = None) -> tuple[dict, dict]:
    """(template, parameters) for the environment stack. Load balancers exist only when a workload of
    the workspace needs them (Copilot does this lazily through its EnvController custom resource), and so
    do NAT gateways (`nat_gateways`: a workload is placed in private subnets) and the managed EFS file
    system (`managed_efs`: a workload has a volume with `efs: true`). `vpc_endpoints` lists AWS service
    names (`s3`, `ecr.api`, `ecr.dkr`, `logs`, ...) to reach from private subnets of a new VPC.
    `cloudfront_prefix_list` is the id of the managed prefix list
    `com.amazonaws.global.cloudfront.origin-facing` in the region (ingress restricted to the CDN).
    `domain`: the application domain (env_dns: the env's hosted zone, its delegation, the certificate and
    HTTPS listener, the `aliases`' records); `zone_ids` the ids of the app zone and, when an alias lives
    there, the domain's zone (`{"app": ..., "root": ...}`). `artifact_bucket_arn` / `artifact_key_arn`:
    the Copilot application's artifact bucket and KMS key in this region, which Copilot's CLI writes to as
    the EnvironmentManagerRole (env_roles.roles; without them the role lacks those two statements)."""
    if len(f"{app}-{env}") > env_roles.MAX_STACK_NAME:
        from ..errors import UserError
        raise UserError(f"environment {env} of application {app}: the stack name {app}-{env} is too long for "
                        f"Copilot's role name {app}-{env}-CFNExecutionRole (IAM allows 64 characters)",
                        allowed=f"application and environment names of at most {env_roles.MAX_STACK_NAME - 1} "
                                "characters together")
    want_nat, want_efs, want_endpoints = nat_gateways, managed_efs, list(vpc_endpoints or ())
    vpc_cfg = (manifest.get("network") or {}).get("vpc") or {}
    http_cfg = manifest.get("http") or {}
    pub_cfg, priv_cfg = http_cfg.get("public") or {}, http_cfg.get("private") or {}
    cdn_cfg = manifest.get("cdn")
    if cdn_cfg:
        public_alb = True  # the distribution's origin
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
        if want_nat:
            env_network.nat_gateways(resources, len(pub), len(priv))
        env_network.vpc_endpoints(resources, want_endpoints, private_subnets, len(priv) if want_nat else 0)

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

    parameters = {"AppName": {"Type": "String"}, "EnvironmentName": {"Type": "String"},
                  **_copilot_parameters(app, env, domain)}
    params = {"AppName": app, "EnvironmentName": env}
    mappings: dict = {}
    env_network.security_group_rules(resources["EnvironmentSecurityGroup"]["Properties"], vpc_cfg.get("security_group"))
    _public_http(resources, pub_cfg, cdn_cfg, cloudfront_prefix_list, parameters, params, mappings)
    _private_http(resources, priv_cfg, vpc_id if not imported else None)
    dns_outputs: dict = {}
    if domain:
        _domain(resources, dns_outputs, app, env, domain, zone_ids or {}, list(aliases), pub_cfg, public_alb)
    env_network.flow_logs(resources, vpc_cfg.get("flow_logs"), vpc_id)
    if want_efs:
        efs_part(resources, vpc_id, private_subnets)

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
        "CanonicalHostedZoneID": out("CanonicalHostedZoneID", getatt("PublicLoadBalancer", "CanonicalHostedZoneID")),
        "InternalLoadBalancerCanonicalHostedZoneID": out("InternalLoadBalancerCanonicalHostedZoneID",
                                                         getatt("InternalLoadBalancer", "CanonicalHostedZoneID")),
    }
    outputs.update(dns_outputs)
    if "HTTPSListener" in resources:
        outputs["HTTPSListenerArn"] = out("HTTPSListenerArn", ref("HTTPSListener"))
    if "InternalHTTPSListener" in resources:
        outputs["InternalHTTPSListenerArn"] = out("InternalHTTPSListenerArn", ref("InternalHTTPSListener"))
    if want_efs:
        outputs["ManagedFileSystemID"] = out("ManagedFileSystemID", ref("FileSystem"))
    cdn_part(resources, outputs, cdn_cfg, out)
    for wanted, names in ((public_alb, PUBLIC_ALB), (internal_alb, INTERNAL_ALB)):
        if not wanted:
            for n in names:
                resources.pop(n, None)
                outputs.pop(n, None)
    _copilot_outputs(resources, outputs, out)
    # Copilot's HTTPS parameters say what the stack has (Copilot decides the listeners by them).
    parameters["CreateHTTPSListener"]["Default"] = "true" if "HTTPSListener" in resources else "false"
    parameters["CreateInternalHTTPSListener"]["Default"] = "true" if "InternalHTTPSListener" in resources else "false"
    certs = (list(pub_cfg.get("certificates") or []) + list(priv_cfg.get("certificates") or [])
             + ([cdn_cfg["certificate"]] if isinstance(cdn_cfg, dict) and cdn_cfg.get("certificate") else []))
    # First, as in Copilot's template (its bootstrap stack creates them before anything else).
    resources = {**env_roles.roles(certs, artifact_bucket_arn, artifact_key_arn), **resources}
    outputs.update(env_roles.outputs())
    # Copilot's: a change of the env controller's parameters changes this output, so its UpdateStack is an
    # update (with nothing depending on them, CloudFormation would answer "No updates are to be performed",
    # which fails the env controller and with it Copilot's workload deploy).
    outputs["EnabledFeatures"] = {
        "Value": sub("${ALBWorkloads},${InternalALBWorkloads},${EFSWorkloads},${NATWorkloads},${Aliases},"
                     "${AppRunnerPrivateWorkloads}"),
        "Description": "Required output to force the stack to update if mutating feature params, like "
                       "ALBWorkloads, does not change the template."}
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"copilot-doit environment {env} of application {app}",
        # COPILOT_PARAMETERS are there for Copilot, most of them unused by copilot-doit's resources on purpose.
        "Metadata": {"cfn-lint": {"config": {"ignore_checks": ["W2001"]}}},
        "Parameters": parameters,
    }
    if mappings:
        template["Mappings"] = mappings
    template["Conditions"] = env_roles.conditions()
    template["Resources"] = resources
    template["Outputs"] = outputs
    return template, params


# Copilot's parameters whose live values copilot-doit passes back when it updates the stack: the env
# controller's lists and the application account Copilot's CLI assumes the EnvironmentManagerRole from —
# values only Copilot knows. The others go back to their defaults (copilot-doit's own values).
KEPT_PARAMETERS = CONTROLLER_PARAMETERS + ("ToolsAccountPrincipalARN",)


def kept_parameters(live_parameters: dict | None) -> dict:
    """KEPT_PARAMETERS as the live stack has them, for copilot-doit's own update of the stack (Copilot's
    `env deploy` keeps them the same way: transformEnvControllerParameters)."""
    return {k: v for k, v in (live_parameters or {}).items() if k in KEPT_PARAMETERS}


def _copilot_parameters(app: str, env: str, domain: str | None) -> dict:
    """COPILOT_PARAMETERS as Copilot declares them, with the values Copilot's `env deploy` would pass as
    defaults (the HTTPS ones are set by `render` once the listeners are known)."""
    text = {"Type": "String", "Default": ""}
    flag = {"Type": "String", "AllowedValues": ["true", "false"], "Default": "false"}
    defaults = {"AppDNSName": domain or "", "ServiceDiscoveryEndpoint": f"{env}.{app}.local"}
    return {name: dict(flag) if name.startswith("Create") else {**text, "Default": defaults.get(name, "")}
            for name in COPILOT_PARAMETERS}


def _copilot_outputs(resources: dict, outputs: dict, out) -> None:
    """COPILOT_OUTPUTS whose resource the stack has, added after copilot-doit's own outputs (unchanged)."""
    values = {
        "PublicLoadBalancerDNS": getatt("PublicLoadBalancer", "DNSName"),
        "PublicLoadBalancerHostedZone": getatt("PublicLoadBalancer", "CanonicalHostedZoneID"),
        "InternalLoadBalancerDNS": getatt("InternalLoadBalancer", "DNSName"),
        "InternalLoadBalancerHostedZone": getatt("InternalLoadBalancer", "CanonicalHostedZoneID"),
        "InternalLoadBalancerSecurityGroup": ref("InternalLoadBalancerSecurityGroup"),
        "InternetGatewayID": ref("InternetGateway"),
        "PublicRouteTableID": ref("PublicRouteTable"),
        "PrivateRouteTableIDs": {"Fn::Join": [",", [ref(f"PrivateRouteTable{i}") for i in range(1, len(resources))
                                                    if f"PrivateRouteTable{i}" in resources]]},
        "FilesystemID": ref("FileSystem"),
    }
    for key, (export, needs) in COPILOT_OUTPUTS.items():
        if needs in resources:
            outputs[key] = out(export, values[key]) if export else {"Value": values[key]}


def _ingress(port: int, cidrs: list, prefix_lists: list) -> list:
    return ([{"SourcePrefixListId": pl, "Description": f"Allow ingress from prefix list on port {port}",
              "FromPort": port, "IpProtocol": "tcp", "ToPort": port} for pl in prefix_lists]
            + [{"CidrIp": c, "Description": f"Allow ingress from source IP {c} on port {port}" if c != "0.0.0.0/0"
                else f"Allow from anyone on port {port}", "IpProtocol": "tcp", "FromPort": port, "ToPort": port}
               for c in cidrs])


def restricts_to_cdn(manifest: dict) -> bool:
    """http.public takes ingress only from CloudFront (`ingress.cdn`, or Copilot's older
    `security_groups.ingress.restrict_to.cdn`)."""
    return _restricts_to_cdn((manifest.get("http") or {}).get("public") or {})


def _restricts_to_cdn(public: dict) -> bool:
    sg_in = ((public.get("security_groups") or {}).get("ingress") or {}).get("restrict_to") or {}
    return bool((public.get("ingress") or {}).get("cdn") or sg_in.get("cdn"))


def _public_http(resources, cfg, cdn_cfg, prefix_list, parameters, params, mappings):
    """http.public: HTTPS listener with the imported certificates (HTTP stays, workloads add redirect rules),
    ssl_policy, ingress restricted to source IPs or to CloudFront, access logs."""
    if not cfg:
        return
    ingress = cfg.get("ingress") or {}
    restrict_cdn = _restricts_to_cdn(cfg)
    cidrs = list(ingress.get("source_ips") or []) or ([] if restrict_cdn else ["0.0.0.0/0"])
    pls = []
    if restrict_cdn:
        parameters["CloudFrontPrefixListId"] = {"Type": "String", "Description":
                                                "managed prefix list com.amazonaws.global.cloudfront.origin-facing"}
        params["CloudFrontPrefixListId"] = prefix_list or ""
        pls = [ref("CloudFrontPrefixListId")]
    certs = list(cfg.get("certificates") or [])
    sg = resources["PublicLoadBalancerSecurityGroup"]["Properties"]
    sg["SecurityGroupIngress"] = _ingress(80, cidrs, pls) + (_ingress(443, cidrs, pls) if certs else [])
    if certs:
        resources["HTTPSListener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "LoadBalancerArn": ref("PublicLoadBalancer"), "Port": 443, "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": certs[0]}], "SslPolicy": cfg.get("ssl_policy") or DEFAULT_SSL_POLICY,
            "DefaultActions": [{"Type": "fixed-response", "FixedResponseConfig": {
                "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no service matches this path"}}]}}
        if len(certs) > 1:
            resources["HTTPSImportCertificate"] = {"Type": "AWS::ElasticLoadBalancingV2::ListenerCertificate",
                                                   "Properties": {"ListenerArn": ref("HTTPSListener"),
                                                                  "Certificates": [{"CertificateArn": c} for c in certs[1:]]}}
    logs = cfg.get("access_logs")
    if logs:
        logs = logs if isinstance(logs, dict) else {}
        attrs = [{"Key": "access_logs.s3.enabled", "Value": "true"}]
        if logs.get("bucket_name"):
            attrs.append({"Key": "access_logs.s3.bucket", "Value": logs["bucket_name"]})
        else:
            mappings["RegionalConfigs"] = {r: {"ElbAccountId": a} for r, a in ELB_ACCOUNTS.items()}
            resources["ELBAccessLogsBucket"] = {"Type": "AWS::S3::Bucket", "Properties": {
                "VersioningConfiguration": {"Status": "Enabled"},
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
                "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                   "IgnorePublicAcls": True, "RestrictPublicBuckets": True}}}
            resources["ELBAccessLogsBucketPolicy"] = {"Type": "AWS::S3::BucketPolicy", "Properties": {
                "Bucket": ref("ELBAccessLogsBucket"), "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Action": ["s3:PutObject"], "Effect": "Allow",
                    "Resource": [{"Fn::Join": ["", ["arn:", ref("AWS::Partition"), ":s3:::", ref("ELBAccessLogsBucket")]
                                               + (["/", logs["prefix"]] if logs.get("prefix") else [])
                                               + ["/AWSLogs/", ref("AWS::AccountId"), "/*"]]}],
                    "Principal": {"AWS": {"Fn::Join": ["", [sub("arn:${AWS::Partition}:iam::"), {"Fn::FindInMap": [
                        "RegionalConfigs", ref("AWS::Region"), "ElbAccountId"]}, ":root"]]}}}]}}}
            attrs.append({"Key": "access_logs.s3.bucket", "Value": ref("ELBAccessLogsBucket")})
            resources["PublicLoadBalancer"]["DependsOn"] = "ELBAccessLogsBucketPolicy"
        if logs.get("prefix"):
            attrs.append({"Key": "access_logs.s3.prefix", "Value": logs["prefix"]})
        resources["PublicLoadBalancer"]["Properties"]["LoadBalancerAttributes"] = attrs


def _export(name, value):
    return {"Value": value, "Export": {"Name": sub("${AWS::StackName}-" + name)}}


def _domain(resources, outputs, app, env, domain, zone_ids, aliases, pub_cfg, public_alb):
    """The application domain's parts (env_dns), and HTTPS on the public load balancer's security group."""
    from ..domain import zone_of
    zones = {a: zone_of(a, app, env, domain) for a in aliases}
    imported_certs = bool(pub_cfg.get("certificates"))
    env_dns.dns(resources, outputs, _export, app=app, env=env, domain=domain, zone_ids=zone_ids, aliases=aliases,
                zones=zones, public_alb=public_alb, imported_certs=imported_certs)
    sg = resources["PublicLoadBalancerSecurityGroup"]["Properties"]
    if "HTTPSListener" in resources and not any(r.get("FromPort") == 443 for r in sg["SecurityGroupIngress"]):
        sg["SecurityGroupIngress"] += [{**r, "FromPort": 443, "ToPort": 443,
                                        "Description": r["Description"].replace("port 80", "port 443")}
                                       for r in sg["SecurityGroupIngress"] if r.get("FromPort") == 80]


def _private_http(resources, cfg, vpc_id):
    """http.private: HTTPS listener on the internal ALB, its subnets, ingress from the whole VPC."""
    if not cfg:
        return
    if cfg.get("subnets"):
        resources["InternalLoadBalancer"]["Properties"]["Subnets"] = list(cfg["subnets"])
    certs = list(cfg.get("certificates") or [])
    if certs:
        resources["InternalHTTPSListener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "LoadBalancerArn": ref("InternalLoadBalancer"), "Port": 443, "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": certs[0]}], "SslPolicy": cfg.get("ssl_policy") or DEFAULT_SSL_POLICY,
            "DefaultActions": [{"Type": "fixed-response", "FixedResponseConfig": {
                "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no service matches this path"}}]}}
        if len(certs) > 1:
            resources["InternalHTTPSImportCertificate"] = {
                "Type": "AWS::ElasticLoadBalancingV2::ListenerCertificate",
                "Properties": {"ListenerArn": ref("InternalHTTPSListener"),
                               "Certificates": [{"CertificateArn": c} for c in certs[1:]]}}
    if (cfg.get("ingress") or {}).get("vpc") and vpc_id is not None:
        resources["InternalLoadBalancerSecurityGroupIngressFromVPC"] = {
            "Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
                "Description": "Ingress from the VPC", "GroupId": ref("InternalLoadBalancerSecurityGroup"),
                "IpProtocol": "tcp", "FromPort": 443 if certs else 80, "ToPort": 443 if certs else 80,
                "CidrIp": getatt("VPC", "CidrBlock")}}


def needs(workloads: list) -> dict:
    """Keyword arguments of `render` that follow from the workspace's resolved workload manifests for this
    environment (Copilot derives the same through its EnvController custom resource): NAT gateways when a
    workload is placed in private subnets, the managed EFS file system when a volume has `efs: true`."""
    from .network import needs_nat
    from .storage import needs_managed_efs
    return {"nat_gateways": any(needs_nat(d) for d in workloads),
            "managed_efs": any(needs_managed_efs(d) for d in workloads)}


def https(env_manifest: dict, workload_type: str, domain: str | None = None) -> bool:
    """Whether a workload's listener rules go on the HTTPS listener: the environment imports certificates
    for the public ALB (Load Balanced Web Service) or the internal one (Backend Service), or the app has a
    domain (the env stack then requests the public ALB's certificate, env_dns)."""
    http = env_manifest.get("http") or {}
    side = http.get("private" if workload_type == "Backend Service" else "public") or {}
    return bool(side.get("certificates")) or (bool(domain) and workload_type != "Backend Service")
