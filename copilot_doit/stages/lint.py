"""Stage 5a, lint: cfn-lint on the packaged template (and the merged addons template).

key:    the template digests (+ the addons template's), cfn-lint's version, the region (linting.key).
status: up to date when that key has a record without errors; a record with errors runs again (and
        fails again, naming rule, line and message).
run:    lint each template through the lint cache (copilot_doit/linting.py); warnings are shown.
"""
from __future__ import annotations

from .. import linting
from ..session import Session
from . import package
from .base import Status, must_run, stage_id


def status(s: Session, name: str, env: str) -> Status:
    def compute():
        p = package.status(s, name, env)
        if p.run:
            return Status(True, f"after package:{name}@{env}")
        region = s.target(env).settings.region
        k = linting.key(p.result["template"] + p.result.get("addons", ""), region)
        rec = s.cache.get_action("lint", k)
        if rec and not rec["result"]["errors"]:
            w = rec["result"]["warnings"]
            return Status(False, f"template {p.result['template'][:12]} already passed cfn-lint"
                          + (f" ({w} warning{'s' if w != 1 else ''})" if w else ""), k, rec["result"])
        if rec:
            return Status(True, f"template {p.result['template'][:12]} has {rec['result']['errors']} cfn-lint error(s)", k)
        return Status(True, f"template {p.result['template'][:12]} not linted yet", k)
    return s.memo(("lint", name, env), compute)


def run(s: Session, name: str, env: str) -> dict:
    st = must_run(status(s, name, env), stage_id("lint", name, env))
    if st is None:
        return status(s, name, env).result
    p = package.status(s, name, env)
    region = s.target(env).settings.region
    if p.result.get("addons"):
        linting.lint_template(s.cache, s.cache.get_object(p.result["addons"]).decode(), region,
                              f"{name}/addons (merged)")
    result = linting.lint_template(s.cache, s.cache.get_object(p.result["template"]).decode(), region,
                                   f"{s.stack_name(name, env)}.yml")
    if p.result.get("addons"):
        # The stage's key covers both templates; without addons it is the key lint_template just recorded.
        s.cache.put_action("lint", st.key, result)
    s.changed()
    return result
