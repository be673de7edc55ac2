"""The API audit log: one JSON line per AWS call or engine operation, for audits and tests.

Set $COPILOT_DOIT_API_LOG to a file path to record; unset, nothing is written and nothing costs.
"""
from __future__ import annotations

import json
import os

READ_PREFIXES = ("Describe", "Get", "List", "BatchGet", "Head", "Lookup", "Inspect")


def log_api(service: str, operation: str, target: str, params: dict | None = None) -> None:
    """Append one line per API call / engine operation to $COPILOT_DOIT_API_LOG (audits and tests)."""
    path = os.environ.get("COPILOT_DOIT_API_LOG")
    if not path:
        return
    rec = {"service": service, "operation": operation, "target": target,
           "mutating": not operation.startswith(READ_PREFIXES)}
    if params:
        rec["params"] = params
    with open(path, "a") as f:
        f.write(json.dumps(rec, default=str) + "\n")
