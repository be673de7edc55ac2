"""Small helpers shared by the workload template parts (durations, commands, names, IAM documents)."""
from __future__ import annotations

import shlex

from . import ref
from ..manifest import duration_seconds


def seconds(text: str) -> int:
    return int(duration_seconds(text))


def health_check_tuning(hc: dict) -> dict:
    """A target group's health-check port, thresholds, interval and timeout from a manifest's
    healthcheck mapping (ALB and NLB target groups alike); only what the manifest sets."""
    tg: dict = {}
    if hc.get("port"):
        tg["HealthCheckPort"] = str(hc["port"])
    for key, prop in (("healthy_threshold", "HealthyThresholdCount"), ("unhealthy_threshold", "UnhealthyThresholdCount")):
        if hc.get(key):
            tg[prop] = hc[key]
    if hc.get("interval"):
        tg["HealthCheckIntervalSeconds"] = seconds(hc["interval"])
    if hc.get("timeout"):
        tg["HealthCheckTimeoutSeconds"] = seconds(hc["timeout"])
    return tg


def cmd(value):
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else list(value)


def env_list(pairs: dict) -> list:
    """Container environment entries; a {from_cfn: <export>} value is imported from that export."""
    return [{"Name": k, "Value": {"Fn::ImportValue": v["from_cfn"]} if isinstance(v, dict)
             else str(v).lower() if isinstance(v, bool) else str(v)} for k, v in sorted(pairs.items())]


def json_pairs(arns: dict) -> list:
    """Fn::Join parts of a JSON object {name: value} whose values are intrinsic functions."""
    parts = []
    for i, (name, value) in enumerate(sorted(arns.items())):
        parts += [("," if i else "") + f'"{name}":"', value, '"']
    return parts


def screaming(name: str) -> str:
    """CamelCase -> SCREAMING_SNAKE_CASE, as Copilot names addon outputs in the container environment."""
    out = ""
    for i, ch in enumerate(name):
        if ch.isupper() and i and (name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower())):
            out += "_"
        out += ch.upper()
    return out


def assume(service: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}


def awslogs() -> dict:
    return {"LogDriver": "awslogs", "Options": {
        "awslogs-region": ref("AWS::Region"), "awslogs-group": ref("LogGroup"), "awslogs-stream-prefix": "copilot"}}
