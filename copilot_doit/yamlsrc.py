"""YAML read with line numbers and Copilot's `${VAR}` interpolation, as plain data plus a line map.

`load(path, text, variables)` returns `(data, lines)`, where `lines[(key, key, index, ...)]` is the
1-based line of that field, so every later error can name file, field and line.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml

from .errors import UserError

Path_ = tuple

_VAR = re.compile(r"(\\?)\$\{([_a-zA-Z][_a-zA-Z0-9]*)\}")


# libyaml's parser when present (~10x faster than PyYAML's pure-Python one; marks still give lines).
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """YAML 1.2 booleans, as Copilot's yaml.v3: only true/false, so `on:` and `yes` stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))
_resolver = _Loader("")  # a resolver with the rules above (its stream is never read)


class _Constructor(yaml.constructor.SafeConstructor):
    pass


def field_name(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


def interpolate(text: str, variables: dict | None, *, file, line, path) -> tuple[str, bool]:
    """Replace `${NAME}`; `\\${NAME}` stays literal. Undefined names are an error, as in Copilot."""
    changed = False

    def sub(m):
        nonlocal changed
        if m.group(1):
            return "${" + m.group(2) + "}"
        name = m.group(2)
        env = variables if variables is not None else os.environ
        if name not in env:
            raise UserError(f'environment variable "{name}" is not defined', file=file, line=line,
                            field=field_name(path),
                            allowed="export it before deploying, or escape it as \\${" + name + "}")
        changed = True
        return env[name]

    return _VAR.sub(sub, text), changed


MAX_DEPTH = 64  # deeper nesting is no manifest: refuse it rather than recurse until Python gives up


def read_text(path) -> str:
    """A YAML file's text: unreadable or not UTF-8 is one error naming the file (and the line)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", file=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UserError(f"is not valid UTF-8 (byte 0x{data[exc.start]:02x})", file=str(path), line=line,
                        allowed="UTF-8 text") from None


def load(path, text: str, variables: dict | None = None, interpolate_values: bool = True):
    """Parse one YAML document into (data, lines). `variables`: name -> value for `${}` (None: no
    interpolation at all, used for files Copilot does not interpolate)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except RecursionError:
        raise UserError(f"is nested deeper than {MAX_DEPTH} levels", file=str(path)) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise UserError(f"invalid YAML: {exc.problem}", file=str(path), line=line) from None
    except yaml.YAMLError as exc:
        raise UserError(f"invalid YAML: {exc}", file=str(path)) from None
    lines: dict = {}
    if node is None:
        return None, lines
    constructor = _Constructor()

    def build(n, p):
        lines.setdefault(p, n.start_mark.line + 1)
        if len(p) > MAX_DEPTH:
            raise UserError(f"is nested deeper than {MAX_DEPTH} levels", file=str(path),
                            line=n.start_mark.line + 1, field=field_name(p[:3]) + "…")
        if isinstance(n, yaml.MappingNode):
            out = {}
            for kn, vn in n.value:
                if kn.tag == "tag:yaml.org,2002:merge":
                    raise UserError("YAML merge keys (<<) are not supported", file=str(path),
                                    line=kn.start_mark.line + 1, field=field_name(p))
                key = constructor.construct_object(kn, deep=True)
                if not isinstance(key, (str, int, bool)) or isinstance(key, bool):
                    key = str(key)
                if key in out:
                    raise UserError(f"duplicate key '{key}'", file=str(path), line=kn.start_mark.line + 1,
                                    field=field_name(p + (key,)))
                lines[p + (key,)] = kn.start_mark.line + 1
                out[key] = build(vn, p + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(v, p + (i,)) for i, v in enumerate(n.value)]
        value = n.value
        if interpolate_values and variables is not None and isinstance(value, str) and "$" in value:
            new, changed = interpolate(value, variables, file=str(path), line=n.start_mark.line + 1, path=p)
            if changed or new != value:
                if changed and n.style not in ("|", ">"):
                    # Copilot: a scalar that becomes a JSON array of strings turns into a list.
                    try:
                        arr = json.loads(new)
                    except ValueError:
                        arr = None
                    if isinstance(arr, list) and all(isinstance(x, str) for x in arr):
                        return arr
                if not n.style:  # plain scalar (PyYAML says None, libyaml says ""): re-type after interpolation
                    tag = _resolver.resolve(yaml.ScalarNode, new, (True, False))
                    n = yaml.ScalarNode(tag, new, n.start_mark, n.end_mark, n.style)
                else:
                    return new
        try:
            return constructor.construct_object(n, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise UserError(f"invalid value: {exc.problem}", file=str(path), line=n.start_mark.line + 1,
                            field=field_name(p)) from None

    return build(node, ()), lines


def line_of(lines: dict, path: Path_) -> int | None:
    """Line of the field, or of its nearest parent known."""
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return lines.get(())
