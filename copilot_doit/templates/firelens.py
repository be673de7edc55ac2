"""logging: FireLens log routing (a `firelens_log_router` sidecar running Fluent Bit, and the awsfirelens
log driver on the main container), as Copilot renders it when anything besides `retention` is set."""
from __future__ import annotations

from .secrets import secret_arn
from .util import awslogs, env_list

DEFAULT_IMAGE = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"


def enabled(b) -> bool:
    logging = b.d.get("logging") or {}
    return any(k != "retention" and v is not None for k, v in logging.items())


def main_log_configuration(b) -> dict:
    if not enabled(b):
        return awslogs()
    logging = b.d["logging"]
    cfg = {"LogDriver": "awsfirelens"}
    if logging.get("destination"):
        cfg["Options"] = {k: str(v).lower() if isinstance(v, bool) else str(v)
                          for k, v in sorted(logging["destination"].items())}
    if logging.get("secretOptions"):
        cfg["SecretOptions"] = [{"Name": k, "ValueFrom": secret_arn(v)}
                                for k, v in sorted(logging["secretOptions"].items())]
    return cfg


def router_container(b, common_env: list, env_file_arn: str | None) -> list:
    if not enabled(b):
        return []
    logging = b.d["logging"]
    options = {"enable-ecs-log-metadata": str(logging.get("enableMetadata", True)).lower()}
    if logging.get("configFilePath"):
        options.update({"config-file-type": "file", "config-file-value": logging["configFilePath"]})
    c = {"Name": "firelens_log_router", "Image": logging.get("image", DEFAULT_IMAGE),
         "Environment": common_env + env_list(logging.get("variables") or {})}
    if env_file_arn:
        c["EnvironmentFiles"] = [{"Type": "s3", "Value": env_file_arn}]
    if logging.get("secrets"):
        c["Secrets"] = [{"Name": k, "ValueFrom": secret_arn(v)} for k, v in sorted(logging["secrets"].items())]
    c["FirelensConfiguration"] = {"Type": "fluentbit", "Options": options}
    c["LogConfiguration"] = awslogs()
    return [c]
