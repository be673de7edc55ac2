"""CloudFormation built as data: dicts in, deterministic YAML out.

`RECIPE_VERSION` is part of every package key: bump it when the workload templates change their output,
so every workload is re-packaged (and, where the template really differs, redeployed). The environment
template has its own, `env.RECIPE`.
"""
from __future__ import annotations

RECIPE_VERSION = "templates/7"

_DUMPER = None


def _dumper():
    """PyYAML's dumper as the templates need it, built on the first dump (a no-op run renders nothing)."""
    global _DUMPER
    if _DUMPER is None:
        import yaml

        class _Dumper(yaml.SafeDumper):
            pass

        def _str(dumper, value):
            style = "|" if "\n" in value else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        _Dumper.add_representer(str, _str)
        _Dumper.ignore_aliases = lambda self, data: True
        _DUMPER = _Dumper
    return _DUMPER


def dump(template: dict) -> str:
    """Same dict, same bytes: insertion order is fixed by the builders, no anchors, no line wrapping."""
    import yaml
    return yaml.dump(template, Dumper=_dumper(), sort_keys=False, default_flow_style=False, width=10_000,
                     allow_unicode=True)


def ref(name: str) -> dict:
    return {"Ref": name}


def sub(text: str, variables: dict | None = None) -> dict:
    return {"Fn::Sub": [text, variables] if variables else text}


def getatt(resource: str, attribute: str) -> dict:
    return {"Fn::GetAtt": [resource, attribute]}


def import_env(output: str) -> dict:
    """An env stack export, named as Copilot names them: <app>-<env>-<Output>."""
    return {"Fn::ImportValue": sub("${AppName}-${EnvName}-" + output)}


def if_(cond: str, yes, no) -> dict:
    return {"Fn::If": [cond, yes, no]}


NO_VALUE = {"Ref": "AWS::NoValue"}
