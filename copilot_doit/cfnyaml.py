"""CloudFormation YAML (short-form tags like `!Ref`, `!Sub`) read as plain long-form data, with lines.

Addon templates are written by hand in this form; everything after reading works on long-form dicts,
so two templates that differ only in style or comments compare equal.
"""
from __future__ import annotations

import yaml

from .errors import UserError


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    pass


def _scalar_or_seq(loader, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _make(fn_name):
    def construct(loader, node):
        value = _scalar_or_seq(loader, node)
        if fn_name == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {fn_name: value}
    return construct


for _tag in ("Base64", "Cidr", "FindInMap", "GetAtt", "GetAZs", "ImportValue", "Join", "Select", "Split", "Sub",
             "Transform", "And", "Equals", "If", "Not", "Or", "ToJsonString", "Length"):
    _Loader.add_constructor(f"!{_tag}", _make(f"Fn::{_tag}"))
_Loader.add_constructor("!Ref", _make("Ref"))
_Loader.add_constructor("!Condition", _make("Condition"))

# YAML 1.2 booleans (CloudFormation treats `on`/`yes` as strings too).
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                              __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load(path, text: str) -> tuple[dict, dict]:
    """(template, lines) where lines[(section, logical id)] is the 1-based line of that entry."""
    try:
        data = yaml.load(text, Loader=_Loader) or {}
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise UserError(f"invalid YAML: {exc.problem}", file=str(path), line=line) from None
    if not isinstance(data, dict):
        raise UserError("a CloudFormation template must be a mapping", file=str(path), line=1)
    lines: dict = {}
    if isinstance(node, yaml.MappingNode):
        for kn, vn in node.value:
            lines[(kn.value,)] = kn.start_mark.line + 1
            if isinstance(vn, yaml.MappingNode):
                for k2, _ in vn.value:
                    lines[(kn.value, k2.value)] = k2.start_mark.line + 1
    return data, lines
