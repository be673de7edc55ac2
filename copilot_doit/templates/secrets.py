"""Container secrets: SSM parameters and Secrets Manager secrets, as references only."""
from __future__ import annotations

from . import sub


def secret_arn(value):
    """ValueFrom of an SSM parameter name/ARN, a Secrets Manager {secretsmanager: name[:key::]} or a
    {from_cfn: <export>} whose value is the secret's ARN."""
    if isinstance(value, dict) and value.get("from_cfn"):
        return {"Fn::ImportValue": value["from_cfn"]}
    if isinstance(value, dict):
        name = value["secretsmanager"]
        if name.startswith("arn:"):
            return name
        return sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:" + name)
    if value.startswith("arn:"):
        return value
    return sub("arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/" + value.lstrip("/"))


def secret_policy_resource(value):
    """IAM resource for reading one secret: the parameter ARN, or the secret ARN with its random suffix."""
    if isinstance(value, dict) and value.get("from_cfn"):
        return None
    if isinstance(value, dict):
        name = value["secretsmanager"]
        if name.startswith("arn:"):
            prefix, rest = name.split(":secret:", 1)
            return f"{prefix}:secret:{rest.split(':')[0]}*"
        return ("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                + name.split(":")[0] + "*")
    if value.startswith("arn:"):
        return value
    return "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/" + value.lstrip("/")


def secrets_list(secrets: dict) -> list:
    return [{"Name": k, "ValueFrom": secret_arn(v)} for k, v in sorted(secrets.items())]


def imported_secrets(secrets) -> list:
    """The export names of {from_cfn: ...} secrets (their values are ARNs, read by the execution role)."""
    return sorted({v["from_cfn"] for v in secrets if isinstance(v, dict) and v.get("from_cfn")})


def variable_value(value):
    """A container environment value: a scalar as a string, or {from_cfn: <export>} imported."""
    if isinstance(value, dict):
        return {"Fn::ImportValue": value["from_cfn"]}
    return str(value).lower() if isinstance(value, bool) else str(value)
