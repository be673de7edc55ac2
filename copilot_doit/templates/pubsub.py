"""Publish (SNS topics of a workload, standard or FIFO) and subscribe (a worker's SQS queue, per-topic
queues, FIFO queues, dead-letter queues, filter policies)."""
from __future__ import annotations

from . import getatt, ref, sub
from .util import json_pairs, seconds


def _alnum(text: str) -> str:
    return "".join(ch for ch in text.title() if ch.isalnum())


def topic_id(name: str, fifo: bool = False) -> str:
    return _alnum(name + ("fifo" if fifo else "")) + "SNSTopic"


def _topics(b) -> list:
    return ((b.d.get("publish") or {}).get("topics")) or []


def publish_statements(b) -> list:
    topics = _topics(b)
    if not topics:
        return []
    return [{"Effect": "Allow", "Action": ["sns:Publish"],
             "Resource": [ref(topic_id(t["name"], bool(t.get("fifo")))) for t in topics]}]


def publish(b):
    topics = _topics(b)
    if not topics:
        return
    arns = {}
    for t in topics:
        fifo = t.get("fifo")
        logical = topic_id(t["name"], bool(fifo))
        props = {"TopicName": sub("${AppName}-${EnvName}-${WorkloadName}-" + t["name"] + (".fifo" if fifo else ""))}
        if fifo:
            props["FifoTopic"] = True
            if isinstance(fifo, dict) and fifo.get("content_based_deduplication"):
                props["ContentBasedDeduplication"] = True
        b.resources[logical] = {"Type": "AWS::SNS::Topic", "Properties": props}
        b.resources[logical + "Policy"] = {"Type": "AWS::SNS::TopicPolicy", "Properties": {
            "Topics": [ref(logical)], "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                "Action": ["sns:Subscribe"], "Resource": ref(logical),
                "Condition": {"StringEquals": {"sns:Protocol": "sqs"}}}]}}}
        arns[t["name"] + (".fifo" if fifo else "")] = ref(logical)
    b.main_env["COPILOT_SNS_TOPIC_ARNS"] = {"Fn::Join": ["", ["{"] + json_pairs(arns) + ["}"]]}


def _queue_props(cfg: dict, b, dlq_id: str) -> dict:
    qprops = {}
    if cfg.get("retention"):
        qprops["MessageRetentionPeriod"] = seconds(cfg["retention"])
    if cfg.get("timeout"):
        qprops["VisibilityTimeout"] = seconds(cfg["timeout"])
    if cfg.get("delay"):
        qprops["DelaySeconds"] = seconds(cfg["delay"])
    fifo = cfg.get("fifo")
    if fifo:
        qprops["FifoQueue"] = True
        if isinstance(fifo, dict):
            if fifo.get("content_based_deduplication"):
                qprops["ContentBasedDeduplication"] = True
            if fifo.get("high_throughput"):
                qprops["DeduplicationScope"], qprops["FifoThroughputLimit"] = "messageGroup", "perMessageGroupId"
            if fifo.get("deduplication_scope"):
                qprops["DeduplicationScope"] = fifo["deduplication_scope"]
            if fifo.get("throughput_limit"):
                qprops["FifoThroughputLimit"] = fifo["throughput_limit"]
    tries = (cfg.get("dead_letter") or {}).get("tries")
    if tries:
        dlq = {"MessageRetentionPeriod": 1209600}
        if fifo:
            dlq["FifoQueue"] = True
        b.resources[dlq_id] = {"Type": "AWS::SQS::Queue", "Properties": dlq}
        qprops["RedrivePolicy"] = {"deadLetterTargetArn": getatt(dlq_id, "Arn"), "maxReceiveCount": tries}
    return qprops


def _queue_policy(b, logical: str, queue: str, topic_arns: list):
    b.resources[logical] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
        "Queues": [ref(queue)],
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": getatt(queue, "Arn"),
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arns}}}]}}}


def subscribe(b):
    """The worker's events queue (+ dead-letter queue), per-topic queues, one SNS subscription per topic."""
    sub_cfg = b.d.get("subscribe") or {}
    topics = sub_cfg.get("topics") or []
    queue_cfg = sub_cfg.get("queue") or {}
    b.resources["EventsQueue"] = {"Type": "AWS::SQS::Queue", "Properties": _queue_props(queue_cfg, b, "DeadLetterQueue")}
    b.queues.append("EventsQueue")
    b.main_env["COPILOT_QUEUE_URI"] = ref("EventsQueue")
    main_arns, topic_queues = [], {}
    for t in topics:
        own = t.get("queue")
        fifo_topic = bool((own if isinstance(own, dict) else queue_cfg).get("fifo")) if own is not False else bool(queue_cfg.get("fifo"))
        arn = sub("arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:${AppName}-${EnvName}-"
                  + f"{t['service']}-{t['name']}" + (".fifo" if fifo_topic else ""))
        logical = _alnum(f"{t['service']}-{t['name']}") + "Subscription"
        target = "EventsQueue"
        if own:  # a queue of its own (true, or its own settings)
            target = _alnum(f"{t['service']}-{t['name']}") + "EventsQueue"
            cfg = own if isinstance(own, dict) else {}
            b.resources[target] = {"Type": "AWS::SQS::Queue", "Properties": _queue_props(
                cfg, b, _alnum(f"{t['service']}-{t['name']}") + "DeadLetterQueue")}
            b.queues.append(target)
            _queue_policy(b, _alnum(f"{t['service']}-{t['name']}") + "QueuePolicy", target, [arn])
            topic_queues[_alnum(f"{t['service']}-{t['name']}") + "EventsQueue"] = ref(target)
        else:
            main_arns.append(arn)
        props = {"TopicArn": arn, "Protocol": "sqs", "Endpoint": getatt(target, "Arn")}
        if t.get("filter_policy"):
            props["FilterPolicy"] = t["filter_policy"]
        b.resources[logical] = {"Type": "AWS::SNS::Subscription", "Properties": props}
    if main_arns:
        _queue_policy(b, "QueuePolicy", "EventsQueue", main_arns)
    if topic_queues:
        b.main_env["COPILOT_TOPIC_QUEUE_URIS"] = {"Fn::Join": ["", ["{"] + json_pairs(topic_queues) + ["}"]]}


def queue_task_policy(b):
    resource = getatt("EventsQueue", "Arn") if b.queues == ["EventsQueue"] else [getatt(q, "Arn") for q in b.queues]
    b.resources["TaskRole"]["Properties"].setdefault("Policies", []).append({
        "PolicyName": "Queue", "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                                          "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            "Resource": resource}]}})
