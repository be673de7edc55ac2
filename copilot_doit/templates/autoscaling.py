"""Application Auto Scaling of the ECS service: a scalable target and target-tracking policies
(cpu, memory, ALB requests per target, ALB response time, worker queue backlog per task)."""
from __future__ import annotations

from . import getatt, import_env, ref, sub
from ..manifest import BACKEND
from .util import seconds


def count_range(count: dict) -> tuple[int, int]:
    rng = count["range"]
    if isinstance(rng, str):
        lo, hi = rng.split("-")
        return int(lo), int(hi)
    return int(rng["min"]), int(rng["max"])


def _lb_full_name(b):
    alb = b.ri.imported_alb or {}
    if (isinstance(b.d.get("http"), dict) and b.d["http"].get("alb")):
        return alb.get("full_name", "")
    return import_env("InternalLoadBalancerFullName" if b.m.type == BACKEND else "PublicLoadBalancerFullName")


def _policy(b, logical, name, target, cd, spec):
    b.resources[logical] = {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Properties": {
        "PolicyName": {"Fn::Join": ["-", [ref("WorkloadName"), name]]},
        "PolicyType": "TargetTrackingScaling",
        "ScalingTargetId": ref("AutoScalingTarget"),
        "TargetTrackingScalingPolicyConfiguration": {
            **spec,
            "ScaleInCooldown": seconds(cd.get("in", "2m")),
            "ScaleOutCooldown": seconds(cd.get("out", "1m")),
            "TargetValue": target}}}


def autoscaling(b):
    count = b.d.get("count")
    if not isinstance(count, dict) or count.get("range") is None:
        return
    lo, hi = count_range(count)
    b.resources["AutoScalingTarget"] = {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": {
        "MinCapacity": lo, "MaxCapacity": hi,
        "ResourceId": {"Fn::Join": ["/", ["service", import_env("ClusterId"), getatt("Service", "Name")]]},
        "ScalableDimension": "ecs:service:DesiredCount", "ServiceNamespace": "ecs",
        "RoleARN": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
                       "ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService")}}
    cooldown = count.get("cooldown") or {}

    def target_of(key):
        target = count.get(key)
        if target is None:
            return None, None
        if isinstance(target, dict):
            return target["value"], {**cooldown, **(target.get("cooldown") or {})}
        return target, cooldown

    for key, metric, logical in (("cpu_percentage", "ECSServiceAverageCPUUtilization", "AutoScalingPolicyCPU"),
                                 ("memory_percentage", "ECSServiceAverageMemoryUtilization", "AutoScalingPolicyMemory"),
                                 ("requests", "ALBRequestCountPerTarget", "AutoScalingPolicyRequests")):
        target, cd = target_of(key)
        if target is None:
            continue
        spec = {"PredefinedMetricType": metric}
        if key == "requests":  # <load balancer full name>/<target group full name>
            spec["ResourceLabel"] = {"Fn::Join": ["/", [_lb_full_name(b), getatt(b.main_tg, "TargetGroupFullName")]]}
        _policy(b, logical, metric, target, cd, {"PredefinedMetricSpecification": spec})
    target, cd = target_of("response_time")
    if target is not None:  # seconds, as Copilot
        lb = _lb_full_name(b)
        _policy(b, "AutoScalingPolicyResponseTime", "ALBAverageResponseTime", seconds(target), cd, {
            "CustomizedMetricSpecification": {
                "Dimensions": [{"Name": "LoadBalancer", "Value": lb},
                               {"Name": "TargetGroup", "Value": getatt(b.main_tg, "TargetGroupFullName")}],
                "MetricName": "TargetResponseTime", "Namespace": "AWS/ApplicationELB", "Statistic": "Average"}})
    queue = count.get("queue_delay")
    if queue:
        queue_delay(b, queue, {**cooldown, **(queue.get("cooldown") or {})})


def queue_delay(b, queue: dict, cd: dict):
    """Backlog per task, as plain CloudFormation: a target-tracking policy on metric math
    (visible messages of each queue / running tasks) instead of Copilot's BacklogPerTaskCalculator Lambda.
    Target = acceptable_latency / msg_processing_time, as Copilot computes it."""
    target = max(1, int(seconds(queue["acceptable_latency"]) // max(seconds(queue["msg_processing_time"]), 1)))
    for logical_queue in b.queues:
        metrics = [
            {"Id": "m1", "ReturnData": False, "MetricStat": {"Stat": "Sum", "Metric": {
                "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": getatt(logical_queue, "QueueName")}]}}},
            {"Id": "m2", "ReturnData": False, "MetricStat": {"Stat": "Average", "Metric": {
                "Namespace": "ECS/ContainerInsights", "MetricName": "RunningTaskCount",
                "Dimensions": [{"Name": "ClusterName", "Value": import_env("ClusterId")},
                               {"Name": "ServiceName", "Value": getatt("Service", "Name")}]}}},
            {"Id": "e1", "Expression": "m1 / MAX([m2, 1])", "Label": "BacklogPerTask", "ReturnData": True},
        ]
        suffix = "" if logical_queue == "EventsQueue" else logical_queue
        _policy(b, f"AutoScalingPolicy{logical_queue}", f"BacklogPerTask{suffix}", target, cd, {
            "CustomizedMetricSpecification": {"Metrics": metrics}})
