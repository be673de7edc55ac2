"""Scheduled Job: a task definition run by a state machine on an EventBridge schedule."""
from __future__ import annotations

from ..manifest import JOB, schedule_expression
from .addons_stack import addons_stack
from .builder import Builder, RenderInput
from .iam import logs_and_roles
from .pubsub import publish
from .state_machine import schedule_rule, state_machine
from .taskdef import task_definition


def render(ri: RenderInput):
    b = Builder(ri)
    b.common_params()
    expression = schedule_expression(b.d["on"]["schedule"])
    b.param("Schedule", expression)
    publish(b)
    logs_and_roles(b)
    task_definition(b)
    state_machine(b)
    schedule_rule(b, expression)
    addons_stack(b)
    return b.template(f"copilot-doit {JOB} {ri.manifest.name} in {ri.app}-{ri.env}")
