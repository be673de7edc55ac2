"""deployment.rollback_alarms: CloudWatch alarms that roll an ECS deployment back (or existing alarm names)."""
from __future__ import annotations

from . import import_env, ref, sub


def _cfg(b):
    return (b.d.get("deployment") or {}).get("rollback_alarms")


def _name(suffix: str) -> dict:
    # Copilot: <app>-<env>-<svc>-<suffix>, truncated to CloudWatch's 255 characters.
    return sub("${AppName}-${EnvName}-${WorkloadName}-" + suffix)


ALARMS = (("cpu_utilization", "CPURollbackAlarm", "CopilotRollbackCPUAlarm", "CPUUtilization", "AWS/ECS"),
          ("memory_utilization", "MemoryRollbackAlarm", "CopilotRollbackMemAlarm", "MemoryUtilization", "AWS/ECS"),
          ("messages_delayed", "MessagesDelayedRollbackAlarm", "CopilotRollbackMsgsDelayedAlarm",
           "ApproximateNumberOfMessagesDelayed", "AWS/SQS"))


def rollback_alarm_names(b) -> list:
    cfg = _cfg(b)
    if not cfg:
        return []
    if isinstance(cfg, list):
        return list(cfg)
    names = []
    for key, logical, suffix, metric, namespace in ALARMS:
        if cfg.get(key) is None:
            continue
        names.append(_name(suffix))
        dims = ([{"Name": "ClusterName", "Value": import_env("ClusterId")},
                 {"Name": "ServiceName", "Value": {"Fn::Select": [2, {"Fn::Split": ["/", ref("Service")]}]}}]
                if namespace == "AWS/ECS" else [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["EventsQueue", "QueueName"]}}])
        b.resources[logical] = {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "AlarmDescription": f"Roll back the ECS service if {metric} is above {cfg[key]}",
            "AlarmName": _name(suffix),
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "DatapointsToAlarm": 2, "EvaluationPeriods": 3,
            "Dimensions": dims,
            "MetricName": metric, "Namespace": namespace,
            "Period": 60, "Statistic": "Average", "Threshold": cfg[key],
            **({"Unit": "Percent"} if namespace == "AWS/ECS" else {})}}
    return names


