"""Load Balanced Web Service: a service behind the environment's public ALB and/or its own NLB."""
from __future__ import annotations

from ..manifest import LBWS
from .addons_stack import addons_stack
from .alb import http
from .builder import Builder, RenderInput
from .iam import logs_and_roles
from .nlb import nlb
from .pubsub import publish
from .service import discovery, service
from .taskdef import task_definition


def render(ri: RenderInput):
    b = Builder(ri)
    b.common_params()
    publish(b)
    logs_and_roles(b)
    lbs = []
    if b.d.get("http") is not False:
        lbs = http(b, "HTTPListenerArn")
    else:
        b.param("ContainerPort", (b.d.get("image") or {}).get("port") or 80)
    lbs += nlb(b)
    task_definition(b)
    discovery(b, (b.d.get("image") or {}).get("port"))
    service(b, lbs or None, b.rule_ids or None)
    addons_stack(b)
    return b.template(f"copilot-doit {LBWS} {ri.manifest.name} in {ri.app}-{ri.env}")
