"""Plain words for plans and reasons: short lists, changed fields, unified diffs. Pure text helpers."""
from __future__ import annotations

import json

MAX_PATHS = 3


def few(items: list[str]) -> str:
    """`a, b, c (+2 more, 5 in all)`."""
    head = ", ".join(items[:MAX_PATHS])
    more = len(items) - MAX_PATHS
    return head + (f" (+{more} more, {len(items)} in all)" if more > 0 else "")


def plural(n: int, word: str) -> str:
    return f"{word}{'s' if n != 1 else ''}"


def flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(value, list):
        return {prefix: json.dumps(value, sort_keys=True)}
    return {prefix: value}


def changed_fields(old: dict, new: dict) -> list[str]:
    a, b = flatten(old or {}), flatten(new or {})
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def explain_inputs(old: dict | None, new: dict) -> str:
    """The generic reason: which recorded input fields differ."""
    if not old:
        return "never ran with these inputs"
    fields = changed_fields(old, new)
    return f"inputs changed: {few(fields)}" if fields else "inputs changed"


def unified(old: str, new: str, name: str) -> str:
    import difflib  # plans only: a deploy never needs it
    diff = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                fromfile=f"deployed/{name}", tofile=f"planned/{name}")
    return "".join(diff)


def params_text(params: dict) -> str:
    return "".join(f"{k}: {v}\n" for k, v in sorted(params.items()))
