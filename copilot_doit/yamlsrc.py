"""YAML read with line numbers and Copilot's `${VAR}` interpolation, as plain data plus a line map.

`load(path, text, variables)` returns `(data, lines)`, where `lines[(key, key, index, ...)]` is the
1-based line of that field, so every later error can name file, field and line.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path

from .errors import UserError

Path_ = tuple

_VAR = re.compile(r"(\\?)\$\{([_a-zA-Z][_a-zA-Z0-9]*)\}")

_YAML = None  # (yaml, loader class, constructor class, resolver), built on first parse


def _yaml():
    """PyYAML and this module's loader, built once, on the first parse: a no-op run reads every
    manifest from the memo below and never imports yaml (~20 ms of a no-op)."""
    global _YAML
    if _YAML is None:
        import yaml

        # libyaml's parser when present (~10x faster than PyYAML's pure-Python one; marks still give lines).
        class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            """YAML 1.2 booleans, as Copilot's yaml.v3: only true/false, so `on:` and `yes` stay strings."""

        _Loader.yaml_implicit_resolvers = {
            first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }
        _Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                      re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))

        class _Constructor(yaml.constructor.SafeConstructor):
            pass

        _YAML = (yaml, _Loader, _Constructor, _Loader(""))  # a resolver with the rules above (never read)
    return _YAML


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
    interpolation at all, used for files Copilot does not interpolate). Answered from the memo when
    the same text was parsed before with the same values of the variables it names."""
    memo = _MEMO
    if memo is None:
        return _parse(path, text, variables, interpolate_values, set())
    key = memo.key(text, variables is None, interpolate_values)
    found = memo.get(key, variables)
    if found is not None:
        return found
    used: set = set()
    data, lines = _parse(path, text, variables, interpolate_values, used)
    memo.put(key, used, variables, data, lines)
    return data, lines


# The `${NAME}`s whose values copilot-doit itself supplies (manifest.interpolation_vars): the application's
# and the environment's names, never secrets. A document that interpolated only these is kept in the memo
# (Copilot's own manifests use them, e.g. in SSM parameter paths); with any other name it is parsed every run.
PUBLIC_VARIABLES = frozenset({"COPILOT_APPLICATION_NAME", "COPILOT_ENVIRONMENT_NAME"})


class Memo:
    """Parsed documents by content: digest of (the text, the interpolation switches, this module's and
    PyYAML's files, the Python version) -> the names `${NAME}` interpolation looked up while parsing,
    their values then, and (data, lines). An answer is used only when every one of those names has the
    same value now (a changed variable is a new parse). A document whose parse interpolated any
    `${NAME}` but the application's and environment's names (PUBLIC_VARIABLES) is not kept at all: its
    values may be secrets, and the cache never holds one. Kept in one small file of the cache (`<cache>/yaml-memo.bin`, a checksum ahead of a marshal payload;
    a damaged file is ignored and rewritten). Only successful parses are kept, so every error is
    still found by parsing; values marshal cannot hold (dates, `!!binary` inside sets…) are not kept.
    Every answer is a fresh copy: callers may change what they get."""

    VERSION = b"yaml-memo/1"
    LIMIT = 512  # entries kept (the oldest go first): a workspace has a few dozen YAML files

    def __init__(self, path: Path):
        self.path = Path(path)
        self._entries: dict | None = None
        self._dirty = False
        self._salt: bytes | None = None
        self._lock = threading.RLock()  # statuses are computed in threads (stages.prefetch)

    def _code_salt(self) -> bytes:
        if self._salt is None:
            import importlib.util
            parts = [self.VERSION, sys.version.encode()]
            spec = importlib.util.find_spec("yaml")  # finds, does not import
            files = [__file__]
            if spec and spec.origin:
                pkg = os.path.dirname(spec.origin)
                files += [spec.origin] + sorted(os.path.join(pkg, n) for n in os.listdir(pkg) if n.startswith("_yaml"))
            for f in files:
                try:
                    st = os.stat(f)
                    parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
                except (OSError, TypeError):
                    parts.append(b"-")
            self._salt = b"\0".join(parts)
        return self._salt

    def key(self, text: str, no_variables: bool, interpolate_values: bool) -> str:
        import xxhash
        h = xxhash.xxh3_128(self._code_salt())
        h.update(b"\0%d\0%d\0" % (bool(no_variables), bool(interpolate_values)))
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    @staticmethod
    def _values(names, variables: dict | None) -> tuple:
        return tuple(None if variables is None else variables.get(n) for n in names)

    def _load(self) -> dict:
        if self._entries is None:
            with self._lock:
                if self._entries is None:
                    self._entries = self._read()
        return self._entries

    def _read(self) -> dict:
        import marshal
        import xxhash
        try:
            raw = self.path.read_bytes()
            if raw[:16] == xxhash.xxh3_128_digest(raw[16:]):
                entries = marshal.loads(raw[16:])
                if isinstance(entries, dict):
                    return entries
        except (OSError, ValueError, EOFError, TypeError):
            pass
        return {}

    def get(self, key: str, variables: dict | None):
        entry = self._load().get(key)
        if entry is None:
            return None
        import marshal
        try:
            names, values, blob = entry
            if self._values(names, variables) != values:
                return None
            data, lines = marshal.loads(blob)
        except (ValueError, EOFError, TypeError):
            return None
        return data, lines

    def put(self, key: str, used: set, variables: dict | None, data, lines: dict) -> None:
        import marshal
        if used - PUBLIC_VARIABLES:  # `${VAR}` values may be secrets: a document that interpolated one is not kept
            return
        names = tuple(sorted(used))
        values = self._values(names, variables)
        try:
            entry = (names, values, marshal.dumps((data, lines)))
            marshal.dumps(entry)
        except ValueError:  # a value marshal cannot hold (a YAML timestamp): parse it every time
            return
        with self._lock:
            entries = self._load()
            entries.pop(key, None)
            entries[key] = entry
            while len(entries) > self.LIMIT:
                entries.pop(next(iter(entries)))
            self._dirty = True

    def flush(self) -> None:
        """Write new entries (temp file + rename, no fsync: a torn file fails its checksum and is
        re-derived). Nothing is written into a cache folder that does not exist."""
        if not self._dirty or not self.path.parent.is_dir():
            return
        import marshal
        import tempfile
        import xxhash
        with self._lock:
            payload = marshal.dumps(self._entries)
            self._dirty = False
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".bin")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(xxhash.xxh3_128_digest(payload) + payload)
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass


_MEMO: Memo | None = None


def use_memo(path) -> Memo:
    """Answer `load` from the memo file at `path` (the cache root's `yaml-memo.bin`) for this process;
    written back by `flush_memo` (the session calls it at exit)."""
    global _MEMO
    if _MEMO is None or _MEMO.path != Path(path):
        flush_memo()
        _MEMO = Memo(path)
    return _MEMO


def flush_memo() -> None:
    if _MEMO is not None:
        _MEMO.flush()


def _parse(path, text: str, variables: dict | None, interpolate_values: bool, used: set):
    """`load` without the memo; `used` collects the variable names interpolation looked up."""
    yaml, _Loader, _Constructor, _resolver = _yaml()
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
            used.update(m.group(2) for m in _VAR.finditer(value))
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
