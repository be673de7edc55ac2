"""Stage 5a, lint: cfn-lint on the packaged template (and the merged addons template).

key:    the template digests (+ the addons template's), cfn-lint's version, the region (linting.key).
status: up to date when that key has a record without errors; a record with errors runs again (and
        fails again, naming rule, line and message).
run:    lint each template through the lint cache (copilot_doit/linting.py); warnings are shown.
"""
from __future__ import annotations

import json

from .. import linting
from ..session import Session
from . import package
from .base import Status, must_run, stage_id


def warnings_text(s: Session, result: dict) -> str:
    """` with 1 warning (W2001 line 23: Parameter LogRetention not used)`: the cached report keeps them,
    so a rerun says what the first run said."""
    if not result.get("warnings"):
        return ""
    report = json.loads(s.cache.get_object(result["report"]) or b"[]") if result.get("report") else []
    found = [r for r in report if r.get("level") == "warning"]
    n = result["warnings"]
    shown = "; ".join(f"{r['rule']} line {r['line']}: {r['message']}" for r in found[:3])
    more = f"; +{len(found) - 3} more" if len(found) > 3 else ""
    return f" with {n} warning{'s' if n != 1 else ''}" + (f" ({shown}{more})" if shown else "")


def status(s: Session, name: str, env: str) -> Status:
    def compute():
        p = package.status(s, name, env)
        if p.run:
            return Status(True, f"after package:{name}@{env}")
        region = s.target(env).settings.region
        k = linting.key(p.result["template"] + p.result.get("addons", ""), region)
        rec = s.cache.get_action("lint", k)
        if rec and not rec["result"]["errors"]:
            return Status(False, f"template {p.result['template'][:12]} passed cfn-lint"
                          + warnings_text(s, rec["result"]), k, rec["result"])
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
    s.changed(name=name, stage="lint", facts=())   # a lint record: nothing shared, nothing upstream
    return result
