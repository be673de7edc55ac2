"""observability.tracing: awsxray adds the AWS Distro for OpenTelemetry collector sidecar (as Copilot)."""
from __future__ import annotations

from .util import awslogs

COLLECTOR_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.17.0"


def enabled(b) -> bool:
    return (b.d.get("observability") or {}).get("tracing") == "awsxray"


def collector_container(b) -> list:
    if not enabled(b):
        return []
    return [{"Name": "aws-otel-collector", "Image": COLLECTOR_IMAGE, "Command": ["--config=/etc/ecs/ecs-xray.yaml"],
             "Essential": True, "LogConfiguration": awslogs()}]


def tracing_statements(b) -> list:
    if not enabled(b):
        return []
    return [{"Effect": "Allow", "Action": [
        "logs:PutLogEvents", "logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams",
        "logs:DescribeLogGroups", "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
        "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries", "ssm:GetParameters"], "Resource": "*"}]
