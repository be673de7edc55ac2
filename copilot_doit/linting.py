"""cfn-lint on a rendered template, in-process, cached by template digest (the env and lint stages).

key:   template digest, cfn-lint version, regions. cfnlint (~1 s to import) is imported only here.
run:   lint the YAML text (so matches carry line numbers). Result: {"report", "errors", "warnings"};
       errors fail the stage with rule id, line and message; warnings are shown.
"""
from __future__ import annotations

import functools
import json
import re
import threading

from pathlib import Path

from .cache import Cache
from .errors import StageFailed
from .hashing import Key

SALT = "lint/1"


@functools.lru_cache(maxsize=1)
def cfn_lint_version() -> str:
    """cfn-lint's version, read from its `version.py` without importing cfnlint (~1 s) or
    importlib.metadata (~25 ms of a no-op here: it scans every distribution's metadata)."""
    import importlib.util
    spec = importlib.util.find_spec("cfnlint")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", (Path(folder) / "version.py").read_text(),
                              re.MULTILINE)
        except OSError:
            continue
        if found:
            return found.group(1)
    import importlib.metadata
    return importlib.metadata.version("cfn-lint")


def key(template_digest: str, region: str) -> Key:
    return Key.of(SALT, {"template": template_digest, "cfn_lint": cfn_lint_version(), "regions": [region]})


# cfn-lint keeps module-level state (rule registry, caches) and is CPU-bound under the GIL anyway: parallel
# tasks (-j N) lint one template at a time.
_LINT_LOCK = threading.Lock()


def run(template_text: str, region: str) -> list[dict]:
    with _LINT_LOCK:
        from cfnlint.api import lint  # lazy: 1 s of imports
        matches = lint(template_text, regions=[region])
    out = [{"rule": m.rule.id, "level": m.rule.severity, "line": m.linenumber, "column": m.columnnumber,
            "message": m.message, "path": [str(p) for p in (m.path or [])]} for m in matches]
    return sorted(out, key=lambda r: (r["line"] or 0, r["rule"], r["message"]))


def summary(report: list[dict]) -> dict:
    return {"errors": sum(r["level"] == "error" for r in report),
            "warnings": sum(r["level"] == "warning" for r in report)}


def format_report(report: list[dict], name: str) -> str:
    return "\n".join(f"  {name}:{r['line']}: {r['rule']} {r['level']}: {r['message']}" for r in report)


def to_bytes(report: list[dict]) -> bytes:
    return json.dumps(report, sort_keys=True).encode()


def lint_template(cache: Cache, body: str, region: str, name: str) -> dict:
    """Lint with the cache: a template linted once is never linted again (cfn-lint costs ~1 s).
    Prints the report; raises StageFailed on errors. Returns the summary record."""
    digest = cache.put_object(body.encode())
    k = key(digest, region)
    rec = cache.get_action("lint", k)
    if rec is None:
        report = run(body, region)
        result = {**summary(report), "report": cache.put_object(to_bytes(report))}
        cache.put_action("lint", k, result)
    else:
        result = rec["result"]
        report = json.loads(cache.get_object(result["report"]) or b"[]")
    if report:
        print(format_report(report, name))
    if result["errors"]:
        raise StageFailed(f"cfn-lint found {result['errors']} error(s) in {name}; nothing was deployed")
    return result
