"""Copilot's `overrides/` folders (YAML patches or a CDK application) and environment addons.

Where (Copilot's `internal/pkg/workspace/workspace.go`): `copilot/<workload>/overrides/` patches the
workload stack, `copilot/environments/overrides/` the environment stack; `copilot/environments/addons/`
holds the environment addons. Only the main stack template is overridden, never the addons template.

kind    (`internal/pkg/override/override.go`, `Lookup`): no folder is no override; an empty folder is an
        error; `cfn.patches.yml` makes it YAML patches (it wins over a `cdk.json` beside it, as in
        Copilot); else `cdk.json` makes it a CDK application; anything else is an error naming the folder.
patch   (`internal/pkg/override/patch.go`): a list of `{op, path, value}`, ops `add`, `remove`, `replace`,
        paths as JSON pointers (`~1` is `/`, `~0` is `~`) through maps and list indexes; `add` sets a map
        key (replacing it when present) or inserts before index n (0..len, `-` appends); `remove` and
        `replace` need the target to exist. Patches apply in order; afterwards the template Description
        gets " using AWS Copilot with YAML patches." as Copilot writes it. Values may use CloudFormation's
        short forms (`!Ref X`); they are stored long-form like every template here. A path may also step
        through an intrinsic function as Copilot's short-form YAML shows it (`.../Subnets/1` inside
        `Fn::Split`). Errors name the file, the patch index (0-based, as Copilot), its line and the path.
cdk     (`internal/pkg/override/cdk.go`): the template is written to `<folder>/.build/in.yml` (the CDK app
        Copilot scaffolds reads it from there), `node_modules/.bin/cdk synth --no-version-reporting` runs in
        the folder with COPILOT_APPLICATION_NAME (and COPILOT_ENVIRONMENT_NAME) set, its stdout is the new
        template; Rules and the BootstrapVersion parameter are dropped and the Description gets
        " using AWS Copilot and CDK.". Unlike Copilot, nothing is installed: no `npm install`, and npx is
        told never to download (`npm_config_yes=false`). Without npx or a cdk the run stops with one error.
digest  the folder's tree digest for the package key, without `node_modules/`, `cdk.out/` and `.build/`.
env addons (`internal/pkg/addon/addons.go` `ParseFromEnv`, `template/templates/environment/cf.yml`): merged as
        workload addons, reserved parameters App and Env (not Name), uploaded to
        `manual/addons/environments/<sha256>.yml`, deployed as the env stack's nested stack `AddonsStack`
        with `App: !Ref AppName`, `Env: !Ref EnvironmentName` and the addons.parameters.yml values.
"""
from __future__ import annotations

import copy
import datetime
import os
import re
import shutil
from pathlib import Path

from .errors import UserError
from .hashing import entry_for, tree_digest

PATCH_FILE = "cfn.patches.yml"
CDK_FILE = "cdk.json"
OPS = ("add", "remove", "replace")
PATCH_KEYS = ("op", "path", "value")
EXCLUDED = ("node_modules", "cdk.out", ".build")   # installed packages and generated output: not inputs
CDK_TIMEOUT = 600
YAML_PATCH_SUFFIX = " using AWS Copilot with YAML patches."
CDK_SUFFIX = " using AWS Copilot and CDK."
# Copilot's cleanUp keeps only these sections of the CDK output (Rules is the CDK's own).
CDK_SECTIONS = ("AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Mappings", "Conditions",
                "Transform", "Resources", "Outputs")
ENV_RESERVED = ("App", "Env")
ENV_ADDONS_STACK = "AddonsStack"


# --- where the folders are --------------------------------------------------------------------------------

def workload_folder(ws_dir: Path, workload: str) -> Path:
    return Path(ws_dir) / workload / "overrides"


def env_folder(ws_dir: Path) -> Path:
    return Path(ws_dir) / "environments" / "overrides"


def env_addons_folder(ws_dir: Path) -> Path:
    return Path(ws_dir) / "environments" / "addons"


# --- which overrider -------------------------------------------------------------------------------------

def kind(folder: Path) -> str | None:
    """"yamlpatch", "cdk", or None when there is no overrides folder (Copilot's Lookup)."""
    folder = Path(folder)
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise UserError("must be a folder holding cfn.patches.yml or a CDK application (cdk.json)",
                        file=str(folder))
    names = sorted(p.name for p in folder.iterdir())
    if not names:
        raise UserError("the overrides folder is empty", file=str(folder),
                        allowed="cfn.patches.yml (YAML patches) or cdk.json with its CDK app; or remove the folder")
    if (folder / PATCH_FILE).is_file():
        return "yamlpatch"
    if (folder / CDK_FILE).is_file():
        return "cdk"
    hint = " (Copilot reads only cfn.patches.yml, not .yaml)" if "cfn.patches.yaml" in names else ""
    raise UserError(f"the overrides folder holds neither {PATCH_FILE} nor {CDK_FILE}{hint}; found: "
                    + ", ".join(names[:8]) + (", …" if len(names) > 8 else ""), file=str(folder),
                    allowed=f"{PATCH_FILE} (YAML patches) or {CDK_FILE} with its CDK app")


def apply(folder: Path, template: dict, *, app: str = "", env: str = "", timeout: float = CDK_TIMEOUT) -> dict:
    """The template with the folder's overrides applied: a new dict, `template` is left untouched.
    No folder: a deep copy of the template. `app`/`env` reach a CDK app as Copilot passes them."""
    which = kind(folder)
    if which is None:
        return copy.deepcopy(template)
    if which == "yamlpatch":
        return apply_yaml_patch(Path(folder) / PATCH_FILE, template)
    return apply_cdk(Path(folder), template, app=app, env=env, timeout=timeout)


# --- YAML patches ----------------------------------------------------------------------------------------

_INDEX = re.compile(r"^[0-9]+$")
_ALLOWED = "op: add | remove | replace; path: a JSON pointer like /Resources/Service/Properties/DesiredCount " \
           "(list items by index, - appends on add, ~1 for /, ~0 for ~); value: required for add and replace"


def read_patches(file: Path) -> list[dict]:
    """[{op, path, value?, index, line}] from cfn.patches.yml; errors name the file, index and line."""
    file = Path(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror}", file=str(file)) from None
    except UnicodeDecodeError:
        raise UserError("is not valid UTF-8", file=str(file)) from None
    import yaml  # here: a no-op run checks overrides/ by digest and never parses them

    from . import cfnyaml
    try:
        data = yaml.load(text, Loader=cfnyaml._Loader)
        node = yaml.compose(text, Loader=cfnyaml._Loader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise UserError(f"invalid YAML: {exc.problem}", file=str(file), line=line) from None
    except yaml.YAMLError as exc:
        raise UserError(f"invalid YAML: {exc}", file=str(file)) from None
    if data is None:
        return []   # Copilot's scaffold is all comments: no patches
    if not isinstance(data, list) or not isinstance(node, yaml.SequenceNode):
        raise UserError("must be a list of patches (- op: ..., path: ..., value: ...)", file=str(file),
                        line=node.start_mark.line + 1 if node is not None else None, allowed=_ALLOWED)
    out = []
    for i, (item, item_node) in enumerate(zip(data, node.value)):
        line = item_node.start_mark.line + 1
        lines = {}
        if isinstance(item_node, yaml.MappingNode):
            lines = {k.value: k.start_mark.line + 1 for k, _ in item_node.value}
        if not isinstance(item, dict):
            raise UserError(f"patch {i} must be a mapping with op, path and value", file=str(file), line=line,
                            field=f"[{i}]", allowed=_ALLOWED)
        for k in item:
            if k not in PATCH_KEYS:
                raise UserError(f"patch {i}: unknown key '{k}'", file=str(file), line=lines.get(k, line),
                                field=f"[{i}].{k}", allowed="op, path, value")
        op = item.get("op")
        if op not in OPS:
            shown = "no op" if op is None else f"op '{op}'"
            raise UserError(f"patch {i}: {shown} is not supported", file=str(file), line=lines.get("op", line),
                            field=f"[{i}].op", allowed="add, remove, replace (Copilot's subset of RFC 6902)")
        path = item.get("path")
        if not isinstance(path, str):
            raise UserError(f"patch {i} ({op}): path must be a string", file=str(file),
                            line=lines.get("path", line), field=f"[{i}].path", allowed=_ALLOWED)
        if path and not path.startswith("/"):
            raise UserError(f"patch {i} ({op}): path '{path}' must start with '/'", file=str(file),
                            line=lines.get("path", line), field=f"[{i}].path", allowed=_ALLOWED)
        if op in ("add", "replace") and "value" not in item:
            raise UserError(f"patch {i} ({op} {path}): value required", file=str(file), line=line,
                            field=f"[{i}].value", allowed=_ALLOWED)
        out.append({"op": op, "path": path, "value": _plain(item.get("value")), "index": i,
                    "line": lines.get("path", line)})
    return out


def _plain(value):
    """YAML timestamps (`Version: 2012-10-17` unquoted) as the strings CloudFormation reads them as."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def pointer(path: str) -> list[str]:
    """JSON pointer tokens, unescaped as RFC 6901 (and Copilot): `~1` then `~0`."""
    if path == "":
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]


def _shown(tokens: list[str]) -> str:
    return "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens) if tokens else "/"


class _PatchError(Exception):
    pass


def _is_intrinsic(node) -> bool:
    if not isinstance(node, dict) or len(node) != 1:
        return False
    (k,) = node
    return k in ("Ref", "Condition") or (isinstance(k, str) and k.startswith("Fn::"))


def _index(token: str, size: int, traversed: list[str], *, allow_end: bool) -> int:
    if not _INDEX.match(token):
        raise _PatchError(f"{_shown(traversed)} is a list: expected an index, got '{token}'")
    idx = int(token)
    top = size if allow_end else size - 1
    if idx > top:
        raise _PatchError(f"index {idx} is out of bounds for the list at {_shown(traversed)} of length {size}"
                          + (" (use - to append)" if allow_end else ""))
    return idx


def _missing(node: dict, key: str, traversed: list[str]) -> _PatchError:
    keys = list(node)
    have = ", ".join(str(k) for k in keys[:12]) + (", …" if len(keys) > 12 else "")
    return _PatchError(f"'{key}' not found in {_shown(traversed)} (it has: {have or 'nothing'})")


def _step(node, token: str, traversed: list[str]):
    """The child of node named by token (through a short-form intrinsic as Copilot's YAML shows it)."""
    if isinstance(node, dict):
        if token in node:
            return node[token]
        if _is_intrinsic(node):
            return _step(next(iter(node.values())), token, traversed)
        raise _missing(node, token, traversed)
    if isinstance(node, list):
        return node[_index(token, len(node), traversed, allow_end=False)]
    raise _PatchError(f"{_shown(traversed)} is a {_kind_name(node)}, not a map or a list")


def _container(node, token: str, traversed: list[str]):
    """The map or list that holds `token` (unwrapping an intrinsic whose function is not `token`)."""
    outer = node
    while isinstance(node, dict) and token not in node and _is_intrinsic(node):
        (fn, inner), = node.items()
        if not isinstance(inner, (dict, list)):
            (top,) = outer
            raise _PatchError(f"{_shown(traversed)} is a {top} value, not a map or a list: '{token}' "
                              "cannot be there")
        node = inner
    if not isinstance(node, (dict, list)):
        raise _PatchError(f"{_shown(traversed)} is a {_kind_name(node)}, not a map or a list")
    return node


def _kind_name(node) -> str:
    if node is None:
        return "null"
    if isinstance(node, bool):
        return "boolean"
    if isinstance(node, (int, float)):
        return "number"
    if isinstance(node, str):
        return "string"
    return type(node).__name__


def _apply_one(root: dict, op: str, tokens: list[str], value):
    """Apply one patch to root (mutated in place); returns the new root (a path of "" replaces it)."""
    if not tokens:
        if op == "remove":
            raise _PatchError("the whole template cannot be removed")
        if not isinstance(value, dict):
            raise _PatchError("the whole template can only be replaced by a map")
        return copy.deepcopy(value)
    parent = root
    for n, token in enumerate(tokens[:-1]):
        parent = _step(parent, token, tokens[:n])
    last, where = tokens[-1], tokens[:-1]
    if op == "replace":
        parent = _container(parent, last, where)
        if isinstance(parent, dict):
            if last not in parent:
                raise _missing(parent, last, where)
            parent[last] = copy.deepcopy(value)
        else:
            parent[_index(last, len(parent), where, allow_end=False)] = copy.deepcopy(value)
        return root
    parent = _container(parent, last, where)
    if op == "add":
        if isinstance(parent, dict):
            parent[last] = copy.deepcopy(value)      # present: replaced in place, as Copilot does
        elif last == "-":
            parent.append(copy.deepcopy(value))
        else:
            parent.insert(_index(last, len(parent), where, allow_end=True), copy.deepcopy(value))
        return root
    # remove
    if isinstance(parent, dict):
        if last not in parent:
            raise _missing(parent, last, where)
        del parent[last]
    else:
        del parent[_index(last, len(parent), where, allow_end=False)]
    return root


def patch(template: dict, patches: list[dict], file: Path | str | None = None) -> dict:
    """Apply read_patches() output to a copy of template, then mark the Description as Copilot does."""
    out = copy.deepcopy(template)
    for p in patches:
        try:
            out = _apply_one(out, p["op"], pointer(p["path"]), p.get("value"))
        except _PatchError as exc:
            raise UserError(f"patch {p['index']} ({p['op']} {p['path']}): {exc}", file=str(file) if file else None,
                            line=p.get("line"), field=f"[{p['index']}].path") from None
    desc = out.get("Description")
    if isinstance(desc, str):
        out["Description"] = (desc[:-1] if desc.endswith(".") else desc) + YAML_PATCH_SUFFIX
    return out


def apply_yaml_patch(file: Path, template: dict) -> dict:
    return patch(template, read_patches(file), file)


# --- CDK ---------------------------------------------------------------------------------------------------

def cdk_command(folder: Path) -> list[str] | None:
    """The cdk to run (the folder's own, else one on PATH), or None when the CDK cannot run here."""
    if not shutil.which("npx"):
        return None
    local = Path(folder) / "node_modules" / ".bin" / "cdk"
    if local.is_file() and os.access(local, os.X_OK):
        return [str(local.resolve())]
    on_path = shutil.which("cdk")
    return [on_path] if on_path else None


def apply_cdk(folder: Path, template: dict, *, app: str = "", env: str = "", timeout: float = CDK_TIMEOUT) -> dict:
    from .templates import dump

    folder = Path(folder)
    cmd = cdk_command(folder)
    if cmd is None:
        raise UserError(f"{folder}: CDK overrides need the AWS CDK installed (npm install in {folder}); "
                        "copilot-doit never downloads it",
                        allowed="npx on PATH and node_modules/.bin/cdk in the folder (or cdk on PATH)")
    cmd += ["synth", "--no-version-reporting"]
    build = folder / ".build"
    build.mkdir(exist_ok=True)
    run_env = dict(os.environ, COPILOT_APPLICATION_NAME=app, npm_config_yes="false",
                   CDK_DISABLE_VERSION_CHECK="true")
    if env:
        run_env["COPILOT_ENVIRONMENT_NAME"] = env
    import fcntl
    import subprocess  # here: only a CDK override synthesizes (the no-op reads the folder's digest only)
    with open(build / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # one synth at a time per folder: they share .build/in.yml
        (build / "in.yml").write_text(dump(template), encoding="utf-8")
        try:
            proc = subprocess.run(cmd, cwd=folder, env=run_env, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"`cdk synth` did not finish within {timeout:g} s", file=str(folder)) from None
        except OSError as exc:
            raise UserError(f"cannot run {cmd[0]}: {exc.strerror}", file=str(folder)) from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-15:])
        raise UserError(f"`cdk synth` failed (exit {proc.returncode}):\n{tail}", file=str(folder))
    import yaml

    from . import cfnyaml
    try:
        data = yaml.load(proc.stdout, Loader=cfnyaml._Loader)
    except yaml.YAMLError as exc:
        raise UserError(f"`cdk synth` printed no CloudFormation template: {exc}", file=str(folder)) from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise UserError("`cdk synth` printed no CloudFormation template (one stack, printed to stdout, "
                        "is what Copilot's CDK scaffold synthesizes)", file=str(folder))
    return cdk_clean(_plain(data))


def cdk_clean(data: dict) -> dict:
    """Copilot's cleanUp of the CDK output: known sections only, no BootstrapVersion, marked Description."""
    out = {k: data[k] for k in CDK_SECTIONS if k in data and data[k] not in (None, "", {}, [])}
    desc = str(out.get("Description") or "")
    out["Description"] = (desc[:-1] if desc.endswith(".") else desc) + CDK_SUFFIX
    if isinstance(out.get("Parameters"), dict):
        out["Parameters"] = {k: v for k, v in out["Parameters"].items() if k != "BootstrapVersion"}
        if not out["Parameters"]:
            del out["Parameters"]
    return {k: out[k] for k in CDK_SECTIONS if k in out}


# --- the package key ---------------------------------------------------------------------------------------

def digest(folder: Path, stat_cache) -> str | None:
    """Tree digest of an overrides (or addons) folder, None when it does not exist. Installed packages and
    generated output (node_modules/, cdk.out/, .build/) are not inputs: package-lock.json pins the former."""
    root = str(folder)
    if not os.path.isdir(root):
        return None
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED)
        for name in sorted(filenames) + dirnames:
            abs_path = os.path.join(dirpath, name)
            e = entry_for(abs_path, os.path.relpath(abs_path, root).replace(os.sep, "/"), stat_cache)
            if e:
                entries.append(e)
    return tree_digest(entries)


# --- environment addons ------------------------------------------------------------------------------------

def env_addons(folder: Path) -> dict | None:
    """{"template", "parameters"} of `environments/addons/`, or None when it holds no template."""
    from . import addons

    folder = Path(folder)
    files = addons.template_files(folder)
    if not files:
        return None
    merged = addons.merge(files)
    params = env_addons_parameters(folder, merged)
    merged.setdefault("AWSTemplateFormatVersion", "2010-09-09")
    merged = {"AWSTemplateFormatVersion": merged.pop("AWSTemplateFormatVersion"), **merged}
    return {"template": merged, "parameters": params}


def env_addons_parameters(folder: Path, template: dict) -> dict:
    """addons.parameters.yml checked as Copilot checks it for environments (reserved: App and Env)."""
    from . import addons

    found = [folder / n for n in addons.PARAM_FILES if (folder / n).is_file()]
    if len(found) > 1:
        raise UserError("only one of addons.parameters.yml and addons.parameters.yaml may exist", file=str(found[1]))
    declared = template.get("Parameters") or {}
    missing = [p for p in ENV_RESERVED if p not in declared]
    if missing:
        raise UserError(f"the environment addons template must declare the parameters {', '.join(missing)}",
                        file=str(folder), field="Parameters", allowed="App and Env, each of Type String")
    params: dict = {}
    if found:
        from . import cfnyaml
        data, lines = cfnyaml.load(found[0], found[0].read_text())
        if "Parameters" not in data:
            raise UserError("must define 'Parameters'", file=str(found[0]), line=1)
        params = data.get("Parameters") or {}
        if not isinstance(params, dict):
            raise UserError("must hold 'Parameters: {Name: value}'", file=str(found[0]), line=lines.get(("Parameters",)))
        for k in params:
            line = lines.get(("Parameters", k))
            if k in ENV_RESERVED:
                raise UserError(f"'{k}' is reserved: copilot-doit passes App and Env", file=str(found[0]), line=line,
                                field=f"Parameters.{k}")
            if k not in declared:
                raise UserError(f"'{k}' is not a parameter of the environment addons template", file=str(found[0]),
                                line=line, field=f"Parameters.{k}",
                                allowed=", ".join(p for p in declared if p not in ENV_RESERVED) or "none")
    for name, spec in declared.items():
        if name not in ENV_RESERVED and name not in params and "Default" not in (spec or {}):
            raise UserError(f"environment addons parameter '{name}' has no Default and no value in "
                            "addons.parameters.yml", file=str(folder), field=f"Parameters.{name}")
    return params


def env_addons_s3_key(body: bytes) -> str:
    """Copilot's artifactpath.EnvironmentAddons."""
    import hashlib  # here: Copilot's S3 key of an uploaded template (hashlib loads OpenSSL: ~6 ms)
    return f"manual/addons/environments/{hashlib.sha256(body).hexdigest()}.yml"


def env_addons_stack(template: dict, url, parameters: dict | None = None) -> dict:
    """The env template (a new dict) with the nested stack `AddonsStack` as Copilot's environment/cf.yml
    writes it: App and Env from the env stack's parameters, then the addons.parameters.yml values."""
    out = copy.deepcopy(template)
    resources = out.setdefault("Resources", {})
    if ENV_ADDONS_STACK in resources:
        raise UserError(f"the environment template already has a resource '{ENV_ADDONS_STACK}'")
    params = {"App": {"Ref": "AppName"}, "Env": {"Ref": "EnvironmentName"}}
    params.update(copy.deepcopy(parameters or {}))
    resources[ENV_ADDONS_STACK] = {
        "Metadata": {"aws:copilot:description": "A CloudFormation nested stack for your additional AWS resources"},
        "Type": "AWS::CloudFormation::Stack",
        "Properties": {"Parameters": params, "TemplateURL": url}}
    return out
