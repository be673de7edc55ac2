"""The log group, the task execution role (image pull, logs, secrets, env file) and the task role."""
from __future__ import annotations

from . import getatt, ref, sub
from .pubsub import publish_statements
from .storage import storage_statements
from .tracing import tracing_statements
from .secrets import imported_secrets, secret_policy_resource
from .util import assume


def logs_and_roles(b):
    b.resources["LogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": sub("/copilot/${AppName}-${EnvName}-${WorkloadName}"),
        "RetentionInDays": ref("LogRetention")}}
    secrets = dict(b.d.get("secrets") or {})
    for sc in (b.d.get("sidecars") or {}).values():
        secrets.update({f"_{k}": v for k, v in (sc.get("secrets") or {}).items()})
    logging = b.d.get("logging") or {}
    for group in ("secrets", "secretOptions"):
        secrets.update({f"_log_{group}_{k}": v for k, v in (logging.get(group) or {}).items()})
    statements = []
    plain = [v for v in secrets.values() if not (isinstance(v, dict) and v.get("from_cfn"))]
    ssm = sorted({secret_policy_resource(v) for v in plain if not isinstance(v, dict)})
    sm = sorted({secret_policy_resource(v) for v in plain if isinstance(v, dict)})
    if ssm:
        statements.append({"Effect": "Allow", "Action": ["ssm:GetParameters"],
                           "Resource": [sub(r) if "${" in r else r for r in ssm]})
    if sm:
        statements.append({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                           "Resource": [sub(r) if "${" in r else r for r in sm]})
    imported = imported_secrets(secrets.values())
    if imported:  # the export's value is the parameter's or the secret's ARN
        statements.append({"Effect": "Allow", "Action": ["ssm:GetParameters", "secretsmanager:GetSecretValue"],
                           "Resource": [{"Fn::ImportValue": name} for name in imported]})
    creds = sorted({c for c in [(b.d.get("image") or {}).get("credentials")]
                    + [sc.get("credentials") for sc in (b.d.get("sidecars") or {}).values()] if c})
    if creds:  # private registry credentials: a Secrets Manager secret ARN
        statements.append({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": creds})
    exec_policies = [{"PolicyName": "EnvFileAccess", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [ref("EnvFileARN")]},
        {"Effect": "Allow", "Action": ["s3:GetBucketLocation"],
         "Resource": [{"Fn::Join": ["", ["arn:", ref("AWS::Partition"), ":s3:::",
                                           {"Fn::Select": [0, {"Fn::Split": ["/", {"Fn::Select": [5, {"Fn::Split": [":", ref("EnvFileARN")]}]}]}]}]]}]}]}}]
    policies = [{"PolicyName": "Secrets", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}] if statements else []
    b.resources["ExecutionRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": assume("ecs-tasks.amazonaws.com"),
        "ManagedPolicyArns": [sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")],
        "Policies": policies + (exec_policies if b.ri.env_file_arn else [])}}
    if not b.resources["ExecutionRole"]["Properties"]["Policies"]:
        del b.resources["ExecutionRole"]["Properties"]["Policies"]
    task_statements = []
    if b.d.get("exec"):
        task_statements.append({"Effect": "Allow", "Action": [
            "ssmmessages:CreateControlChannel", "ssmmessages:OpenControlChannel",
            "ssmmessages:CreateDataChannel", "ssmmessages:OpenDataChannel"], "Resource": "*"})
    task_statements += publish_statements(b)
    task_statements += storage_statements(b)
    task_statements += tracing_statements(b)
    props = {"AssumeRolePolicyDocument": assume("ecs-tasks.amazonaws.com")}
    if task_statements:
        props["Policies"] = [{"PolicyName": "TaskPolicy", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": task_statements}}]
    managed = [getatt("AddonsStack", f"Outputs.{o}") for o, kind in sorted(b.addon_outputs.items())
               if kind == "AWS::IAM::ManagedPolicy"]
    if managed:
        props["ManagedPolicyArns"] = managed
    b.resources["TaskRole"] = {"Type": "AWS::IAM::Role", "Properties": props}
