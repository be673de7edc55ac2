"""The compat step: adapt a linted template to what moto emulates, and say what was changed.

It runs after cfn-lint has passed on the full template (the one AWS would get), on a copy, and only for
the local target. moto silently skips resource types it does not model, and any Ref/GetAtt/Output to
such a resource then breaks the whole stack (research/feasibility.md §1.b.2). So: drop those resources,
every property or list item that refers to them, and outputs built from them; and drop references to
nested-stack outputs, which moto cannot resolve (§1.b.1). Given what the emulator holds, it also drops
Route 53 records in a hosted zone of the user's AWS account (`http.hosted_zone`) and a listener's imported
certificate the emulator's ACM lacks: both exist only in the real account, and moto fails the stack on them.
"""
from __future__ import annotations

import copy
import re

# `sorted(moto.cloudformation.parsing.get_model_map())` for moto 5.2.1, minus moto's placeholders.
# tests/test_local_compat.py checks this list against the installed moto.
MOTO_TYPES = frozenset("""
AWS::ApiGateway::Deployment AWS::ApiGateway::Method AWS::ApiGateway::Resource AWS::ApiGateway::RestApi
AWS::AutoScaling::AutoScalingGroup AWS::AutoScaling::LaunchConfiguration AWS::AutoScaling::ScheduledAction
AWS::Batch::ComputeEnvironment AWS::Batch::JobDefinition AWS::Batch::JobQueue AWS::CloudFormation::Stack
AWS::CloudWatch::Dashboard AWS::DataPipeline::Pipeline AWS::DynamoDB::Table AWS::EC2::EIP AWS::EC2::FlowLog
AWS::EC2::Instance AWS::EC2::InternetGateway AWS::EC2::LaunchTemplate AWS::EC2::NatGateway
AWS::EC2::NetworkInterface AWS::EC2::Route AWS::EC2::RouteTable AWS::EC2::SecurityGroup
AWS::EC2::SecurityGroupIngress AWS::EC2::SpotFleet AWS::EC2::Subnet AWS::EC2::SubnetRouteTableAssociation
AWS::EC2::TransitGateway AWS::EC2::VPC AWS::EC2::VPCEndpoint AWS::EC2::VPCGatewayAttachment
AWS::EC2::VPCPeeringConnection AWS::EC2::VPNGateway AWS::EC2::Volume AWS::EC2::VolumeAttachment
AWS::ECR::Repository AWS::ECS::Cluster AWS::ECS::Service AWS::ECS::TaskDefinition AWS::EFS::AccessPoint
AWS::EFS::FileSystem AWS::EFS::MountTarget AWS::EMR::Cluster AWS::EMR::InstanceGroupConfig
AWS::EMR::SecurityConfiguration AWS::ElasticLoadBalancing::LoadBalancer AWS::ElasticLoadBalancingV2::Listener
AWS::ElasticLoadBalancingV2::ListenerRule AWS::ElasticLoadBalancingV2::LoadBalancer
AWS::ElasticLoadBalancingV2::TargetGroup AWS::Events::Archive AWS::Events::EventBus AWS::Events::Rule
AWS::IAM::AccessKey AWS::IAM::InstanceProfile AWS::IAM::ManagedPolicy AWS::IAM::Policy AWS::IAM::Role
AWS::IAM::User AWS::IoT::BillingGroup AWS::IoT::JobTemplate AWS::IoT::Policy AWS::IoT::RoleAlias
AWS::IoT::Thing AWS::IoT::ThingType AWS::KMS::Alias AWS::KMS::Key AWS::Kinesis::Stream
AWS::Lambda::EventSourceMapping AWS::Lambda::Function AWS::Lambda::LayerVersion AWS::Lambda::Permission
AWS::Lambda::Version AWS::Logs::LogGroup AWS::Logs::ResourcePolicy AWS::RDS::DBInstance
AWS::RDS::DBParameterGroup AWS::RDS::DBSecurityGroup AWS::RDS::DBSubnetGroup AWS::Redshift::Cluster
AWS::Redshift::ClusterParameterGroup AWS::Redshift::ClusterSubnetGroup AWS::Route53::HealthCheck
AWS::Route53::HostedZone AWS::Route53::RecordSet AWS::Route53::RecordSetGroup AWS::S3::Bucket AWS::SNS::Topic
AWS::SQS::Queue AWS::SSM::Document AWS::SSM::Parameter AWS::SageMaker::Endpoint AWS::SageMaker::EndpointConfig
AWS::SageMaker::Model AWS::SageMaker::NotebookInstance AWS::SageMaker::NotebookInstanceLifecycleConfig
AWS::StepFunctions::StateMachine
""".split())

_SUB_VAR = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def _is_intrinsic(v) -> bool:
    return isinstance(v, dict) and len(v) == 1 and next(iter(v)) in ("Ref", "Condition") or (
        isinstance(v, dict) and len(v) == 1 and next(iter(v)).startswith("Fn::"))


class _Refs:
    def __init__(self, removed: set[str], nested: set[str], missing_imports: set[str]):
        self.removed, self.nested, self.missing_imports = removed, nested, missing_imports

    def hit(self, v) -> bool:
        """Does this value (deeply) refer to something that will not exist?"""
        if isinstance(v, list):
            return any(self.hit(x) for x in v)
        if not isinstance(v, dict):
            return False
        if len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref" and arg in self.removed:
                return True
            if k == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                res, attr = parts[0], (parts[1] if len(parts) > 1 else "")
                if res in self.removed or (res in self.nested and str(attr).startswith("Outputs.")):
                    return True
            if k == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] if len(arg) > 1 else {})
                names = {m.group(1) for m in _SUB_VAR.finditer(text)} - set(variables)
                if names & self.removed or self.hit(list(variables.values())):
                    return True
            if k == "Fn::ImportValue":
                name = arg.get("Fn::Sub") if isinstance(arg, dict) else arg
                if isinstance(name, str) and any(name.endswith("-" + o) for o in self.missing_imports):
                    return True
        return any(self.hit(x) for x in v.values())


def _prune(value, refs: _Refs, path: str, notes: list[str]):
    """Return (value, keep). Drops intrinsics that refer to removed things, and their container."""
    if _is_intrinsic(value) and refs.hit(value):
        return None, False
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            nv, keep = _prune(v, refs, f"{path}.{k}", notes)
            if keep:
                out[k] = nv
            else:
                notes.append(f"removed {path}.{k} (refers to a resource or nested-stack output the emulator lacks)")
        return out, True
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            nv, keep = _prune(v, refs, f"{path}[{i}]", notes)
            # A list item that lost a field is dropped whole: half a registry/load-balancer entry is worse.
            if not keep:
                notes.append(f"removed {path}[{i}] (refers to a resource or nested-stack output the emulator lacks)")
            elif not (isinstance(v, dict) and not _is_intrinsic(v) and len(nv) < len(v)):
                out.append(nv)
            else:
                # The item lost a field: drop it whole, and report the item rather than the field.
                notes[:] = [n for n in notes if not n.startswith(f"removed {path}[{i}].")]
                notes.append(f"removed {path}[{i}] (refers to a resource or nested-stack output the emulator lacks)")
        return out, True
    return value, True


RECORD_TYPES = ("AWS::Route53::RecordSet", "AWS::Route53::RecordSetGroup")


def _zone_of(props: dict) -> str | None:
    """The literal hosted zone a record resource names (id, or name when no id), None when computed."""
    zid = props.get("HostedZoneId")
    if isinstance(zid, str):
        return zid.rsplit("/", 1)[-1]
    name = props.get("HostedZoneName")
    if zid is None and isinstance(name, str):
        return name if name.endswith(".") else name + "."
    return None


def _records_outside_emulator(resources: dict, hosted_zones) -> dict[str, str]:
    """Record resources in a literal hosted zone the emulator does not hold: {logical id: zone}.

    A hosted zone id written into a manifest (`http.hosted_zone`) is a zone of the user's AWS account; the
    emulator holds only the zones created in it. `hosted_zones` is what it holds (ids, and names ending in
    '.'), or a callable giving that (asked only when some record names a literal zone); None: unknown, keep.
    """
    literal = {n: z for n, r in resources.items() if r.get("Type") in RECORD_TYPES
               and (z := _zone_of(r.get("Properties") or {})) is not None}
    if not literal or hosted_zones is None:
        return {}
    held = _held(hosted_zones)
    return {n: z for n, z in literal.items() if z not in held and z.rstrip(".") + "." not in held}


def _held(known) -> set[str]:
    return set(known() if callable(known) else known)


def _certificates_outside_emulator(resources: dict, certificates, notes: list[str]) -> None:
    """Drop a listener's literal ACM certificate the emulator's ACM does not hold (an imported certificate of
    the user's account: moto answers CertificateNotFound and fails the stack). The listener stays, without it."""
    listeners = [(n, r["Properties"]) for n, r in resources.items()
                 if r.get("Type") == "AWS::ElasticLoadBalancingV2::Listener" and isinstance(r.get("Properties"), dict)
                 and isinstance(r["Properties"].get("Certificates"), list)]
    literal = [(n, p, i, c["CertificateArn"]) for n, p in listeners for i, c in enumerate(p["Certificates"])
               if isinstance(c, dict) and isinstance(c.get("CertificateArn"), str) and ":acm:" in c["CertificateArn"]]
    if not literal or certificates is None:
        return
    held = _held(certificates)
    for name, props, i, arn in reversed(literal):
        if arn not in held:
            del props["Certificates"][i]
            notes.append(f"removed {name}.Properties.Certificates[{i}]: certificate {arn} is not in the emulator's "
                         "ACM (a certificate of your AWS account)")
    for name, props in listeners:
        if not props["Certificates"]:
            del props["Certificates"]


def adapt(template: dict, missing_imports: set[str] | None = None,
          hosted_zones=None, certificates=None) -> tuple[dict, list[str]]:
    """(template for moto, notes). Never mutates the input.

    What the emulator holds, each a collection or a callable returning one (asked only when the template
    names such a thing literally; None: not known, nothing is dropped for it):
    `hosted_zones`: hosted zone ids and names (ending in '.'); Route 53 records in any other zone are dropped.
    `certificates`: ACM certificate ARNs; a listener's certificate not among them is dropped."""
    t = copy.deepcopy(template)
    notes: list[str] = []
    resources = t.get("Resources") or {}
    removed = {name for name, r in resources.items()
               if r.get("Type") not in MOTO_TYPES or str(r.get("Type", "")).startswith("Custom::")}
    nested = {name for name, r in resources.items() if r.get("Type") == "AWS::CloudFormation::Stack"}
    for name in sorted(removed):
        notes.append(f"removed resource {name} ({resources[name].get('Type')}): not emulated by moto")
        del resources[name]
    for name, zone in sorted(_records_outside_emulator(resources, hosted_zones).items()):
        notes.append(f"removed resource {name} ({resources[name].get('Type')}): its hosted zone {zone} is not in "
                     "the emulator (a zone of your AWS account)")
        del resources[name]
        removed.add(name)
    _certificates_outside_emulator(resources, certificates, notes)
    refs = _Refs(removed, nested, set(missing_imports or ()))
    # A resource left without a required reference is dropped too, until nothing changes.
    changed = True
    while changed:
        changed = False
        for name, r in list(resources.items()):
            deps = r.get("DependsOn")
            if deps:
                deps_l = [deps] if isinstance(deps, str) else list(deps)
                kept = [d for d in deps_l if d not in refs.removed]
                if kept != deps_l:
                    if kept:
                        r["DependsOn"] = kept
                    else:
                        r.pop("DependsOn")
            props = r.get("Properties") or {}
            top_hits = [k for k, v in props.items() if refs.hit(v) and _is_intrinsic(v)]
            essential = {"AWS::SNS::Subscription": {"TopicArn", "Endpoint"}}.get(r.get("Type"), set())
            if any(k in essential for k in top_hits):
                notes.append(f"removed resource {name}: its {', '.join(top_hits)} refers to a removed resource")
                del resources[name]
                refs.removed.add(name)
                changed = True
                continue
            if props:
                r["Properties"], _ = _prune(props, refs, f"{name}.Properties", notes)
    outputs = t.get("Outputs") or {}
    for name, o in list(outputs.items()):
        if refs.hit(o.get("Value")):
            notes.append(f"removed output {name} (built from a resource the emulator lacks)")
            del outputs[name]
    return t, notes
