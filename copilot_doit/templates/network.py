"""The awsvpc network configuration: placement (public/private subnets, or listed subnet ids) and
security groups (ids, {from_cfn}, `deny_default` dropping the environment's group)."""
from __future__ import annotations

from . import getatt, import_env


def _vpc(b) -> dict:
    return (b.d.get("network") or {}).get("vpc") or {}


def placement_public(b) -> bool:
    placement = _vpc(b).get("placement", "public")
    return placement == "public"


def subnet_ids(b) -> list | None:
    placement = _vpc(b).get("placement")
    if isinstance(placement, dict):
        return list(placement["subnets"])
    return None


def security_groups(b) -> list:
    cfg = _vpc(b).get("security_groups") or []
    groups, deny = (cfg, False) if isinstance(cfg, list) else (cfg.get("groups") or [], bool(cfg.get("deny_default")))
    sgs = [] if deny else [import_env("EnvironmentSecurityGroup")]
    sgs += [{"Fn::ImportValue": g["from_cfn"]} if isinstance(g, dict) else g for g in groups]
    sgs += [getatt("AddonsStack", f"Outputs.{o}") for o, k in sorted(b.addon_outputs.items())
            if k == "AWS::EC2::SecurityGroup"]
    return sgs


def awsvpc(b) -> dict:
    public = placement_public(b)
    ids = subnet_ids(b)
    return {"AwsvpcConfiguration": {
        "AssignPublicIp": "ENABLED" if public else "DISABLED",
        "Subnets": ids if ids is not None else {"Fn::Split": [",", import_env("PublicSubnets" if public else "PrivateSubnets")]},
        "SecurityGroups": security_groups(b)}}


def needs_nat(data: dict) -> bool:
    """Whether a resolved workload manifest runs in the environment's private subnets (Copilot then gives the
    environment NAT gateways, through its EnvController)."""
    placement = (((data.get("network") or {}).get("vpc")) or {}).get("placement")
    return placement == "private"
