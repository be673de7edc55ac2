"""The accumulator every workload template part writes into, and the render input."""
from __future__ import annotations


from ..values import field, value
from . import RECIPE_VERSION
from ..manifest import JOB, Manifest

LOG_RETENTION_DEFAULT = 30


@value
class RenderInput:
    manifest: Manifest
    app: str
    env: str
    image: str                      # repo@sha256:... for built images, image.location otherwise
    addons: dict | None = None      # {"url": ..., "parameters": {...}, "outputs": {name: kind}}
    env_file_arn: str = ""
    extra: dict = field(default_factory=dict)
    # Optional, all default to "not there" (the output for a manifest without these features is unchanged):
    env_file_arns: dict = field(default_factory=dict)  # S3 ARNs of uploaded env files: sidecar name / "logging"
    https: bool = False             # the env's ALB has an HTTPS listener (http.public/private.certificates)
    imported_alb: dict | None = None  # http.alb resolved: {"listener_arn", "https_listener_arn", "security_groups", ...}


class Builder:
    """Accumulates one workload template: parameters (with their values), conditions, resources, outputs.
    The parts (taskdef, service, alb, ...) are functions that take the builder and add one concern."""

    def __init__(self, ri: RenderInput):
        self.ri = ri
        self.m = ri.manifest
        self.d = ri.manifest.data
        self.params: dict = {}
        self.values: dict = {}
        self.conditions: dict = {}
        self.resources: dict = {}
        self.outputs: dict = {}
        self.main_env: dict = {}
        self.main_tg = "TargetGroup"  # logical id of the main ALB target group
        self.rule_ids: list = []  # listener rules the service waits for
        self.queues: list = []    # logical ids of a worker's SQS queues (queue-delay scaling)
        self.exposed: list = []   # (container, port, protocol) that load balancers target

    def param(self, name: str, value, ptype: str = "String", default=None):
        spec = {"Type": ptype}
        if default is not None:
            spec["Default"] = default
        self.params[name] = spec
        self.values[name] = str(value).lower() if isinstance(value, bool) else str(value)

    def common_params(self):
        d, ri = self.d, self.ri
        self.param("AppName", ri.app)
        self.param("EnvName", ri.env)
        self.param("WorkloadName", self.m.name)
        self.param("ContainerImage", ri.image)
        self.param("TaskCPU", d["cpu"])
        self.param("TaskMemory", d["memory"])
        if self.m.type != JOB:  # a job runs one task per trigger; Copilot sends an unused TaskCount
            self.param("TaskCount", self.task_count())
        if ri.addons:  # Copilot always sends it (""); unused it is a cfn-lint W2001 warning
            self.param("AddonsTemplateURL", ri.addons["url"])
        if ri.env_file_arn:  # decided at render time: moto mishandles Fn::If/AWS::NoValue in lists
            self.param("EnvFileARN", ri.env_file_arn)
        self.param("LogRetention", (d.get("logging") or {}).get("retention", LOG_RETENTION_DEFAULT), "Number")

    def task_count(self) -> int:
        count = self.d.get("count", 1)
        if isinstance(count, dict) and count.get("range") is None and count.get("spot") is not None:
            return int(count["spot"])
        if isinstance(count, dict):
            rng = count["range"]
            return int(rng.split("-")[0]) if isinstance(rng, str) else int(rng["min"])
        return int(count if count is not None else 1)

    @property
    def addon_outputs(self) -> dict:
        return (self.ri.addons or {}).get("outputs") or {}

    def template(self, description: str) -> tuple[dict, dict]:
        t = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": description,
            "Metadata": {"Generator": "copilot-doit", "Recipe": RECIPE_VERSION},
            "Parameters": self.params,
            "Conditions": self.conditions,
            "Resources": self.resources,
        }
        if self.outputs:
            t["Outputs"] = self.outputs
        return t, dict(sorted(self.values.items()))
