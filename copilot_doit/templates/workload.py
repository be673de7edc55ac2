"""Workload stacks `<app>-<env>-<name>` for the four ECS types, built as data.

One module per type (`lb_web_service`, `backend_service`, `worker_service`, `scheduled_job`), each
composed from the parts in this package (one module per concern: taskdef, iam, service, alb,
autoscaling, pubsub, state_machine, ...). Names of parameters, log groups, task families and exports
follow Copilot (research/copilot.md §4).
"""
from __future__ import annotations

from ..manifest import BACKEND, JOB, LBWS, WORKER
from . import backend_service, lb_web_service, scheduled_job, worker_service
from .alb import rule_priority  # noqa: F401  (public: tests and the README refer to it)
from .builder import RenderInput

__all__ = ["RenderInput", "render", "RENDERERS", "rule_priority"]

RENDERERS = {LBWS: lb_web_service.render, BACKEND: backend_service.render, WORKER: worker_service.render,
             JOB: scheduled_job.render}


def render(ri: RenderInput) -> tuple[dict, dict]:
    return RENDERERS[ri.manifest.type](ri)
