"""A Scheduled Job's Step Functions state machine (run the task, retries, timeout) and its EventBridge rule."""
from __future__ import annotations

import json

from . import getatt, import_env, ref, sub
from .network import awsvpc, placement_public
from .util import assume, seconds


def state_machine(b):
    retries = int(b.d.get("retries", 0))
    timeout = seconds(b.d["timeout"]) if b.d.get("timeout") else None
    task = {"Type": "Task", "Resource": "arn:${AWS::Partition}:states:::ecs:runTask.sync",
            "Parameters": {"LaunchType": "FARGATE", "PlatformVersion": "LATEST",
                           "Cluster": "${Cluster}", "TaskDefinition": "${TaskDefinition}",
                           "PropagateTags": "TASK_DEFINITION", "Group.$": "$$.Execution.Name",
                           "NetworkConfiguration": {"AwsvpcConfiguration": {
                               "Subnets": "${Subnets}", "AssignPublicIp": "ENABLED" if placement_public(b) else "DISABLED",
                               "SecurityGroups": "${SecurityGroups}"}}},
            "End": True}
    if retries:
        task["Retry"] = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": retries, "BackoffRate": 1.5}]
    if timeout:
        task["TimeoutSeconds"] = timeout
    definition = json.dumps({"Version": "1.0", "Comment": "Run AWS Fargate task", "StartAt": "Run Fargate Task",
                             "States": {"Run Fargate Task": task}}, sort_keys=True, indent=2)
    # Lists of subnets/groups are substituted as JSON arrays.
    definition = (definition.replace('"${Subnets}"', '["${Subnets}"]')
                  .replace('"${SecurityGroups}"', '["${SecurityGroups}"]'))
    net = awsvpc(b)["AwsvpcConfiguration"]
    cluster_arn = sub("arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:cluster/${Cluster}",
                      {"Cluster": import_env("ClusterId")})
    b.resources["StateMachineRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": assume("states.amazonaws.com"),
        "Policies": [{"PolicyName": "StateMachine", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iam:PassRole",
             "Resource": [getatt("ExecutionRole", "Arn"), getatt("TaskRole", "Arn")],
             "Condition": {"StringLike": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
            {"Effect": "Allow", "Action": "ecs:RunTask", "Resource": ref("TaskDefinition"),
             "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}}},
            {"Effect": "Allow", "Action": ["ecs:StopTask", "ecs:DescribeTasks"], "Resource": "*",
             "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}}},
            {"Effect": "Allow", "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
             "Resource": sub("arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/StepFunctionsGetEventsForECSTaskRule")},
        ]}}]}}
    b.resources["StateMachine"] = {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
        "StateMachineName": sub("${AppName}-${EnvName}-${WorkloadName}"),
        "RoleArn": getatt("StateMachineRole", "Arn"),
        "DefinitionString": sub(definition, {
            "Cluster": import_env("ClusterId"), "TaskDefinition": ref("TaskDefinition"),
            "Subnets": {"Fn::Join": ['","', net["Subnets"]]},
            "SecurityGroups": {"Fn::Join": ['","', net["SecurityGroups"]]}})}}


def schedule_rule(b, expression: str):
    if expression == "none":
        return
    b.resources["RuleRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": assume("events.amazonaws.com"),
        "Policies": [{"PolicyName": "EventRulePolicy", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "states:StartExecution", "Resource": ref("StateMachine")}]}}]}}
    b.resources["Rule"] = {"Type": "AWS::Events::Rule", "Properties": {
        "ScheduleExpression": ref("Schedule"), "State": "ENABLED",
        "Targets": [{"Arn": ref("StateMachine"), "Id": "statemachine", "RoleArn": getatt("RuleRole", "Arn")}]}}
