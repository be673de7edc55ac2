"""A small validator for manifest data: every field is known or an error naming it and its line.

Specs are tiny objects with `check(value, path, ctx)`; `ctx.fail(path, message, allowed)` raises the
`UserError` with file and line from the YAML line map.
"""
from __future__ import annotations

import re

from . import yamlsrc
from .errors import UserError
from .values import value

DURATION_RE = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s)?$")


@value
class Ctx:
    file: str
    lines: dict
    what: str = ""

    def fail(self, path, message, allowed=None):
        raise UserError(message, file=self.file, field=yamlsrc.field_name(path),
                        line=yamlsrc.line_of(self.lines, path), allowed=allowed)


def _show(v) -> str:
    s = repr(v)
    return s if len(s) < 60 else s[:57] + "..."


class Spec:
    desc = "a value"

    def check(self, value, path, ctx: Ctx):
        raise NotImplementedError


class Str(Spec):
    desc = "a string"

    def __init__(self, pattern: str | None = None, desc: str | None = None):
        self._source = pattern or None
        self._pattern = None  # compiled on first use: most specs never see a value in a run
        if desc:
            self.desc = desc

    @property
    def pattern(self):
        if self._pattern is None and self._source:
            self._pattern = re.compile(self._source)
        return self._pattern

    def check(self, value, path, ctx):
        if not isinstance(value, str):
            ctx.fail(path, f"expected {self.desc}, got {_show(value)}")
        if self._source and not self.pattern.match(value):
            ctx.fail(path, f"{_show(value)} is not {self.desc}")


class Scalar(Spec):
    desc = "a string, number or boolean"

    def check(self, value, path, ctx):
        if isinstance(value, (dict, list)) or value is None:
            ctx.fail(path, f"expected {self.desc}, got {_show(value)}")


class Int(Spec):
    def __init__(self, lo=None, hi=None):
        self.lo, self.hi = lo, hi
        self.desc = "an integer" + (f" from {lo}" if lo is not None else "") + (f" to {hi}" if hi is not None else "")

    def check(self, value, path, ctx):
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.fail(path, f"expected {self.desc}, got {_show(value)}")
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            ctx.fail(path, f"{value} is out of range", allowed=self.desc)


class Bool(Spec):
    desc = "true or false"

    def check(self, value, path, ctx):
        if not isinstance(value, bool):
            ctx.fail(path, f"expected {self.desc}, got {_show(value)}")


class Enum(Spec):
    def __init__(self, *values):
        self.values = values
        self.desc = "one of " + ", ".join(map(str, values))

    def check(self, value, path, ctx):
        if value not in self.values:
            ctx.fail(path, f"{_show(value)} is not allowed", allowed=", ".join(map(str, self.values)))


class Duration(Spec):
    desc = "a duration such as 30s, 1m30s or 2h"

    def check(self, value, path, ctx):
        if not isinstance(value, str) or not value or not DURATION_RE.match(value):
            ctx.fail(path, f"{_show(value)} is not a duration", allowed="e.g. 30s, 1m30s, 2h")


class ListOf(Spec):
    def __init__(self, item: Spec):
        self.item = item
        self.desc = f"a list of {item.desc.removeprefix('a ').removeprefix('an ')}s"

    def check(self, value, path, ctx):
        if not isinstance(value, list):
            ctx.fail(path, f"expected {self.desc}, got {_show(value)}")
        for i, v in enumerate(value):
            self.item.check(v, path + (i,), ctx)


class MapOf(Spec):
    def __init__(self, value: Spec, key_pattern: str | None = None):
        self.value = value
        self._key_source = key_pattern or None
        self._key_pattern = None  # compiled on first use
        self.desc = f"a mapping of names to {value.desc}"

    @property
    def key_pattern(self):
        if self._key_pattern is None and self._key_source:
            self._key_pattern = re.compile(self._key_source)
        return self._key_pattern

    def check(self, value, path, ctx):
        if not isinstance(value, dict):
            ctx.fail(path, f"expected {self.desc}, got {_show(value)}")
        for k, v in value.items():
            if self._key_source and not self.key_pattern.match(str(k)):
                ctx.fail(path + (k,), f"invalid name '{k}'")
            self.value.check(v, path + (k,), ctx)


class Fields(Spec):
    """A mapping with known fields; anything else is 'not supported' and names what is."""

    def __init__(self, fields: dict, required=(), desc="a mapping", unsupported: dict | None = None):
        self.fields = fields
        self.required = required
        self.desc = desc
        self.unsupported = unsupported or {}

    def check(self, value, path, ctx):
        if not isinstance(value, dict):
            ctx.fail(path, f"expected {self.desc} with fields {', '.join(self.fields)}, got {_show(value)}")
        for k, v in value.items():
            if k in self.unsupported:
                ctx.fail(path + (k,), f"is not supported by copilot-doit{ctx.what}: {self.unsupported[k]}")
            spec = self.fields.get(k)
            if spec is None:
                ctx.fail(path + (k,), f"is not a supported field{ctx.what}", allowed=", ".join(self.fields))
            if v is None:
                continue  # an empty field means "not set", as in Copilot
            spec.check(v, path + (k,), ctx)
        for r in self.required:
            if value.get(r) is None:
                ctx.fail(path + (r,), "is required")


class OneOf(Spec):
    """Alternatives chosen by the shape of the value (str / int / bool / list / mapping)."""

    def __init__(self, *alts: Spec, desc: str | None = None):
        self.alts = alts
        self.desc = desc or " or ".join(a.desc for a in alts)

    def check(self, value, path, ctx):
        shaped = [a for a in self.alts if _shape_ok(a, value)]
        if not shaped:
            ctx.fail(path, f"expected {self.desc}, got {_show(value)}")
        shaped[0].check(value, path, ctx)


def _shape_ok(spec: Spec, value) -> bool:
    if isinstance(spec, (Fields, MapOf)):
        return isinstance(value, dict)
    if isinstance(spec, ListOf):
        return isinstance(value, list)
    if isinstance(spec, Bool):
        return isinstance(value, bool)
    if isinstance(spec, Int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(spec, (Str, Duration)):
        return isinstance(value, str)
    if isinstance(spec, Num):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(spec, Enum):
        return any(type(value) is type(v) for v in spec.values)
    return True


class Any(Spec):
    """Free-form data passed through as it is (an SNS filter policy, a taskdef override value)."""
    desc = "any value"

    def check(self, value, path, ctx):
        return


class Num(Spec):
    def __init__(self, lo=None, hi=None):
        self.lo, self.hi = lo, hi
        self.desc = "a number" + (f" from {lo}" if lo is not None else "") + (f" to {hi}" if hi is not None else "")

    def check(self, value, path, ctx):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.fail(path, f"expected {self.desc}, got {_show(value)}")
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            ctx.fail(path, f"{value} is out of range", allowed=self.desc)
