"""taskdef_overrides: Copilot's path rules applied to the task definition's properties.

A path is dot-separated keys with list indexes: `ContainerDefinitions[0].Ulimits[-].HardLimit`
(`[-]` appends a new element, `[n]` addresses element n). The value replaces what is there.
"""
from __future__ import annotations

import re

from ..errors import UserError

_SEG = re.compile(r"^([A-Za-z0-9_-]+)((?:\[(?:\d+|-)\])*)$")
_IDX = re.compile(r"\[(\d+|-)\]")


def _steps(path: str):
    steps = []
    for seg in path.split("."):
        m = _SEG.match(seg)
        if not m:
            raise ValueError(seg)
        steps.append(m.group(1))
        steps += [("idx", i) for i in _IDX.findall(m.group(2))]
    return steps


def apply_overrides(b, props: dict, rules: list):
    for i, rule in enumerate(rules):
        path = rule["path"]
        try:
            steps = _steps(path)
        except ValueError:
            b.m.fail(("taskdef_overrides", i, "path"), f"'{path}' is not a valid override path",
                     allowed="Key.Key[0].Key[-] (keys, [n] indexes, [-] to append)")
        if steps[0] in ("Family", "ContainerDefinitions") and len(steps) == 1:
            b.m.fail(("taskdef_overrides", i, "path"), f"'{path}' cannot be overridden")
        node = props
        try:
            for step, nxt in zip(steps, steps[1:] + [None]):
                last = nxt is None
                new = ([] if isinstance(nxt, tuple) else {}) if not last else rule.get("value")
                if isinstance(step, tuple):
                    if not isinstance(node, list):
                        raise TypeError
                    if step[1] == "-":
                        node.append(new)
                        node = node[-1]
                    else:
                        idx = int(step[1])
                        if last:
                            node[idx] = new
                        node = node[idx]
                else:
                    if not isinstance(node, dict):
                        raise TypeError
                    if last or step not in node:
                        node[step] = new
                    node = node[step]
        except (TypeError, IndexError):
            raise UserError(f"'{path}' does not match the task definition's shape", file=str(b.m.file),
                            field=f"taskdef_overrides[{i}].path", line=b.m.line("taskdef_overrides", i, "path")) from None
