"""Workload addons: `<workload>/addons/*.yml` merged into one nested-stack template, as Copilot does.

key:   the addons folder's tree digest (part of the package key), so an addon edit re-packages.
merge: section by section (Metadata, Parameters, Mappings two levels deep, Conditions, Transform as a
       set union, Resources, Outputs); the same logical id with a different body is an error naming both
       files and lines; an identical duplicate is fine (research/copilot.md §5.6).
params `addons.parameters.yml` (or .yaml, not both): keys must exist in the template, may not redefine
       App/Env/Name, and every template parameter without a Default must be given.
outputs each output's kind decides its wiring in the workload stack: a ManagedPolicy is attached to the
       task role, a Secrets Manager secret becomes a container secret, a security group joins the service,
       anything else becomes an environment variable (SCREAMING_SNAKE_CASE).
"""
from __future__ import annotations

from pathlib import Path

from . import cfnyaml
from .errors import UserError

SECTIONS = ("Metadata", "Parameters", "Mappings", "Conditions", "Resources", "Outputs")
RESERVED = ("App", "Env", "Name")
PARAM_FILES = ("addons.parameters.yml", "addons.parameters.yaml")
WIRED_KINDS = ("AWS::IAM::ManagedPolicy", "AWS::SecretsManager::Secret", "AWS::EC2::SecurityGroup")


def template_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix in (".yml", ".yaml") and p.name not in PARAM_FILES)


def merge(files: list[Path]) -> dict:
    merged: dict = {}
    origin: dict = {}   # (section, id[, id2]) -> (file, line)
    for path in files:
        data, lines = cfnyaml.load(path, path.read_text())
        for section, value in data.items():
            if section == "Transform":
                items = value if isinstance(value, list) else [value]
                have = merged.setdefault("Transform", [])
                have.extend(i for i in items if i not in have)
                continue
            if section == "AWSTemplateFormatVersion":
                merged[section] = value
                continue
            if section == "Description":
                continue  # the nested stack gets one description
            if section not in SECTIONS:
                raise UserError(f"unknown template section '{section}'", file=str(path), line=lines.get((section,)),
                                allowed=", ".join(SECTIONS + ("Transform", "AWSTemplateFormatVersion", "Description")))
            if not isinstance(value, dict):
                raise UserError(f"section '{section}' must be a mapping", file=str(path), line=lines.get((section,)))
            target = merged.setdefault(section, {})
            for lid, body in value.items():
                where = (path, lines.get((section, lid)))
                if section == "Mappings" and lid in target and isinstance(body, dict):
                    for k2, v2 in body.items():  # two levels: mapping name, then its first-level keys
                        if k2 in target[lid] and target[lid][k2] != v2:
                            _conflict(section, f"{lid}.{k2}", origin[(section, lid)], where)
                        target[lid].setdefault(k2, v2)
                    continue
                if section == "Metadata" and lid in target and isinstance(body, dict) and isinstance(target[lid], dict):
                    for k2, v2 in body.items():
                        if k2 in target[lid] and target[lid][k2] != v2:
                            _conflict(section, f"{lid}.{k2}", origin[(section, lid)], where)
                        target[lid].setdefault(k2, v2)
                    continue
                if lid in target and target[lid] != body:
                    _conflict(section, lid, origin[(section, lid)], where)
                target.setdefault(lid, body)
                origin.setdefault((section, lid), where)
    return merged


def _conflict(section: str, lid: str, first, second):
    (f1, l1), (f2, l2) = first, second
    raise UserError(f"{section} '{lid}' is defined differently in {f1}:{l1} and {f2}:{l2}", file=str(f2), line=l2,
                    field=f"{section}.{lid}", allowed="rename one of them, or make both definitions identical")


def read_parameters(folder: Path, template: dict) -> dict:
    found = [folder / n for n in PARAM_FILES if (folder / n).is_file()]
    if len(found) > 1:
        raise UserError("only one of addons.parameters.yml and addons.parameters.yaml may exist", file=str(found[1]))
    declared = template.get("Parameters") or {}
    missing_reserved = [p for p in RESERVED if p not in declared]
    if missing_reserved:
        raise UserError(f"the addons template must declare the parameters {', '.join(missing_reserved)}",
                        file=str(folder), field="Parameters", allowed="App, Env and Name, each of Type String")
    params: dict = {}
    if found:
        data, lines = cfnyaml.load(found[0], found[0].read_text())
        params = data.get("Parameters") or {}
        if not isinstance(params, dict):
            raise UserError("must hold 'Parameters: {Name: value}'", file=str(found[0]), line=lines.get(("Parameters",)))
        for k in params:
            line = lines.get(("Parameters", k))
            if k in RESERVED:
                raise UserError(f"'{k}' is reserved: copilot-doit passes it", file=str(found[0]), line=line,
                                field=f"Parameters.{k}")
            if k not in declared:
                raise UserError(f"'{k}' is not a parameter of the addons template", file=str(found[0]), line=line,
                                field=f"Parameters.{k}", allowed=", ".join(p for p in declared if p not in RESERVED))
    for name, spec in declared.items():
        if name not in RESERVED and name not in params and "Default" not in (spec or {}):
            raise UserError(f"addons parameter '{name}' has no Default and no value in addons.parameters.yml",
                            file=str(folder), field=f"Parameters.{name}")
    return params


def output_kinds(template: dict) -> dict[str, str]:
    """Output name -> resource type it refers to (for the wiring), or "value"."""
    resources = template.get("Resources") or {}
    out = {}
    for name, o in (template.get("Outputs") or {}).items():
        v = (o or {}).get("Value")
        ref = v.get("Ref") if isinstance(v, dict) else None
        kind = (resources.get(ref) or {}).get("Type") if isinstance(ref, str) else None
        out[name] = kind if kind in WIRED_KINDS else "value"
    return out


def package(folder: Path) -> dict | None:
    """Everything the workload template needs from its addons, or None when there are none."""
    files = template_files(folder)
    if not files:
        return None
    merged = merge(files)
    params = read_parameters(folder, merged)
    merged.setdefault("AWSTemplateFormatVersion", "2010-09-09")
    return {"template": merged, "parameters": params, "outputs": output_kinds(merged)}


def s3_key(workload: str, body: bytes) -> str:
    """Copilot's content-addressed artifact path."""
    import hashlib  # here: Copilot's S3 key of an uploaded template (hashlib loads OpenSSL: ~6 ms)
    return f"manual/addons/{workload}/{hashlib.sha256(body).hexdigest()}.yml"
