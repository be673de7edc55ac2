"""Backend Service: reachable by service discovery, optionally behind the environment's internal ALB."""
from __future__ import annotations

from ..manifest import BACKEND
from .addons_stack import addons_stack
from .alb import http
from .builder import Builder, RenderInput
from .iam import logs_and_roles
from .pubsub import publish
from .service import discovery, service
from .taskdef import task_definition


def render(ri: RenderInput):
    b = Builder(ri)
    b.common_params()
    publish(b)
    logs_and_roles(b)
    port = (b.d.get("image") or {}).get("port")
    lbs = None
    if isinstance(b.d.get("http"), dict):
        lbs = http(b, "InternalHTTPListenerArn")
    elif port:
        b.param("ContainerPort", port)
        b.param("TargetContainer", ri.manifest.name)
        b.param("TargetPort", port)
    task_definition(b)
    discovery(b, port)
    service(b, lbs, b.rule_ids or None)
    addons_stack(b)
    return b.template(f"copilot-doit {BACKEND} {ri.manifest.name} in {ri.app}-{ri.env}")
