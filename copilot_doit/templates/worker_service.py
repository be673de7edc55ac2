"""Worker Service: consumes an SQS queue subscribed to other workloads' SNS topics."""
from __future__ import annotations

from ..manifest import WORKER
from .addons_stack import addons_stack
from .builder import Builder, RenderInput
from .iam import logs_and_roles
from .pubsub import publish, queue_task_policy, subscribe
from .service import service
from .taskdef import task_definition


def render(ri: RenderInput):
    b = Builder(ri)
    b.common_params()
    publish(b)
    subscribe(b)
    logs_and_roles(b)
    queue_task_policy(b)
    task_definition(b)
    service(b)
    addons_stack(b)
    return b.template(f"copilot-doit {WORKER} {ri.manifest.name} in {ri.app}-{ri.env}")
