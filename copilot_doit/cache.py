"""The content-addressed cache: immutable `objects/` and small `actions/` records pointing at them.

    objects/<2 hex>/<xxh3_128 of the bytes>       rendered templates, parameters, lint reports, input lists
    actions/<stage>/<key>.json                     {stage, salt, key, result, created, tool_version, check[, mac]}
    last/<stage>/<task>.json                       the key a task last recorded (to explain what changed)

Every write is a temp file + rename in the same folder, so a crash never leaves a torn entry. Every read
is verified: an object against its name, a record against its `check` digest. A bad entry is deleted
with a warning and treated as missing, so it is re-derived instead of deployed.

With a remote (`S3Store`, same layout under a bucket prefix) reads go through to it on a local miss and
writes go back to it: a CI fleet and laptops share results. An object that comes down is verified against
its name, so it cannot be forged. A record can be: its `check` is an unkeyed digest anyone can recompute.
So with a team key (`trust.TeamKey`) every record carries `mac`, an HMAC-SHA256, and a record is used only
if its `mac` verifies; without a key, records from the remote are not used at all unless the caller says it
re-verifies the result itself (`get_action(..., trust_remote=True)`). See the README's trust model.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import __version__
from .hashing import Key, canonical_json, digest_bytes, digest_file, digest_value
from .trust import TeamKey, mac_ok, record_mac
from .values import field, value


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


GITIGNORE = "# Written by copilot-doit: everything in its cache stays out of git.\n*\n"


def ensure_root(root: str | os.PathLike) -> Path:
    """The cache folder, created with its own `.gitignore` (`*`) when the product creates it, so a
    repository stays clean and git describe tags images on the first deploy (Copilot's rule: no git
    tag on a dirty worktree). A folder that already exists is the user's: nothing is written into it."""
    root = Path(root)
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        atomic_write(root / ".gitignore", GITIGNORE.encode())
    return root


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


class S3Store:
    """The remote half of the cache: `s3://bucket/prefix/<same relative paths>`.

    Every call carries ExpectedBucketOwner, so a bucket name taken over by another account is refused.
    `client_factory` builds the boto3 S3 client lazily: a run that hits the local cache never imports boto3.
    """

    def __init__(self, bucket: str, prefix: str, expected_owner: str | None, client_factory):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.expected_owner = expected_owner
        self._factory = client_factory
        self._client = None
        self.gets = self.puts = 0

    def _c(self):
        if self._client is None:
            self._client = self._factory()
        return self._client

    def _owner(self) -> dict:
        return {"ExpectedBucketOwner": self.expected_owner} if self.expected_owner else {}

    def get(self, rel: str) -> bytes | None:
        from botocore.exceptions import ClientError
        self.gets += 1
        try:
            obj = self._c().get_object(Bucket=self.bucket, Key=self.prefix + rel, **self._owner())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            _warn(f"shared cache s3://{self.bucket}/{self.prefix}{rel}: {code}; working without it")
            return None
        return obj["Body"].read()

    def put(self, rel: str, data: bytes) -> None:
        from botocore.exceptions import ClientError
        self.puts += 1
        try:
            self._c().put_object(Bucket=self.bucket, Key=self.prefix + rel, Body=data, **self._owner())
        except ClientError as exc:
            _warn(f"shared cache: could not write s3://{self.bucket}/{self.prefix}{rel}: "
                  f"{exc.response.get('Error', {}).get('Code')}")


class Cache:
    """`team_key`: the key records are signed and checked with; by default $COPILOT_DOIT_CACHE_KEY (none
    when unset). The session passes `TeamKey(key_source_from_config(...), client_factory)` instead."""

    def __init__(self, root: str | os.PathLike, remote: S3Store | None = None, team_key: TeamKey | None = None):
        self.root = ensure_root(root)
        self._actions = str(self.root / "actions")
        self.remote = remote
        self.team_key = team_key if team_key is not None else TeamKey()
        self._mode_announced = False

    # --- objects -------------------------------------------------------------------------------------
    def _object_path(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def put_object(self, data: bytes) -> str:
        digest = digest_bytes(data)
        path = self._object_path(digest)
        if not path.exists():
            atomic_write(path, data)
            if self.remote:
                self.remote.put(self._rel(path), data)
        return digest

    def get_object(self, digest: str) -> bytes | None:
        if not digest or len(digest) != 32:
            return None
        path = self._object_path(digest)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            data = None
        if data is not None and digest_bytes(data) != digest:
            _warn(f"cache object {path} does not match its digest; discarded, will be re-derived")
            path.unlink(missing_ok=True)
            data = None
        if data is None and self.remote:
            data = self.remote.get(self._rel(path))
            if data is not None and digest_bytes(data) != digest:
                _warn(f"shared cache object {self._rel(path)} does not match its digest; rejected")
                return None
            if data is not None:
                atomic_write(path, data)
        return data

    def put_json(self, value) -> str:
        return self.put_object(canonical_json(value).encode())

    def get_json(self, digest: str):
        data = self.get_object(digest)
        return None if data is None else json.loads(data)

    # --- action records ------------------------------------------------------------------------------
    def _action_file(self, stage: str, key: Key) -> str:
        # A string: get_action opens ~2,500 of them in a 500-workload no-op, and pathlib's joins cost more
        # than the read.
        return f"{self._actions}/{stage}/{key.hex}.json"

    def _action_path(self, stage: str, key: Key) -> Path:
        return Path(self._action_file(stage, key))

    def put_action(self, stage: str, key: Key, result: dict, task: str | None = None) -> dict:
        record = {"stage": stage, "salt": key.salt, "key": key.hex, "result": result,
                  "created": time.time(), "tool_version": __version__}
        record["check"] = digest_value(record)
        team_key = self.team_key.get()
        if team_key is not None:
            record["mac"] = record_mac(team_key, record)
        path = self._action_path(stage, key)
        data = canonical_json(record).encode()
        atomic_write(path, data)
        if self.remote:
            self.remote.put(self._rel(path), data)
        if task:
            self.set_last(stage, task, key)
        return record

    def drop_action(self, stage: str, key: Key) -> None:
        """Remove a record found false (its claim no longer holds, or it was forged); objects stay."""
        self._action_path(stage, key).unlink(missing_ok=True)

    def get_action(self, stage: str, key: Key, trust_remote: bool = False) -> dict | None:
        """The record of `key`, or None (the stage runs). Local first, then the remote.

        `trust_remote=True` is for a caller that re-verifies the result against the world before using
        it (an image digest HEADed in the registry): without a team key it may then get an unauthenticated
        record from the remote. That record is never kept locally, where it would pass for a trusted one."""
        raw = None
        try:
            with open(self._action_file(stage, key), "rb") as f:
                raw = f.read()
            record = json.loads(raw)
        except FileNotFoundError:
            return self._remote_action(stage, key, self._action_path(stage, key), trust_remote)
        except (ValueError, OSError, RecursionError):
            record = None
        problem = self._record_problem(record, stage, key, raw)
        if problem:
            path = self._action_path(stage, key)
            _warn(f"cache record {path} {problem}; discarded, the stage will run again")
            path.unlink(missing_ok=True)
            return self._remote_action(stage, key, path, trust_remote)
        return record

    def _remote_action(self, stage: str, key: Key, path: Path, trust_remote: bool) -> dict | None:
        if not self.remote:
            return None
        self.announce_trust_mode()
        team_key = self.team_key.get()
        if team_key is None and not trust_remote:
            return None  # an unauthenticated record would not be used: not worth a GET
        rel = self._rel(path)
        data = self.remote.get(rel)
        if data is None:
            return None
        try:
            record = json.loads(data)
        except (ValueError, RecursionError):
            record = None
        if not self._record_ok(record, stage, key):
            _warn(f"shared cache record {rel} is corrupt; rejected, the stage will run")
            return None
        if team_key is None:
            return record  # the caller re-verifies it (trust_remote); not kept
        if not mac_ok(team_key, record):
            _warn(f"shared cache record {rel} is not signed with the team key (forged, or written without "
                  f"the key); rejected, the stage will run")
            return None
        atomic_write(path, data)
        return record

    def _record_problem(self, record, stage: str, key: Key, raw: bytes | None = None) -> str | None:
        """Why a local record must not be used, or None. `raw`: the record's bytes as read."""
        if not self._record_ok(record, stage, key, raw):
            return "is corrupt"
        team_key = self.team_key.get()
        if team_key is not None and not mac_ok(team_key, record):
            return "is not signed with the team key (forged, or written before the key was set)"
        return None

    @staticmethod
    def _record_ok(record, stage: str, key: Key, raw: bytes | None = None) -> bool:
        """Well formed, for this stage and key, and its `check` matches (accidents, not forgery: see `mac`).

        `raw`, the bytes read: put_action writes the canonical JSON of the record, in which `check` comes
        first; without a `mac` the rest of those bytes is the canonical JSON of the body, so the check is
        their digest, without encoding the body again. Any other bytes take the long way."""
        if not isinstance(record, dict) or "check" not in record or not isinstance(record.get("result"), dict):
            return False
        check = record["check"]
        if (raw is not None and "mac" not in record and isinstance(check, str) and len(check) == 32
                and check.isascii() and raw.startswith(b'{"check":"%s",' % check.encode())):
            matches = digest_bytes(b"{" + raw[44:]) == check
        else:
            matches = check == digest_value({k: v for k, v in record.items() if k not in ("check", "mac")})
        return (matches and record.get("key") == key.hex
                and record.get("stage") == stage and record.get("salt") == key.salt)

    def trust_mode(self) -> str | None:
        """How this run treats records of the shared cache (None without one)."""
        return self.team_key.mode_line() if self.remote else None

    def announce_trust_mode(self) -> None:
        """Print the trust mode once per run (on stderr: stdout carries the task marks)."""
        if self._mode_announced or not self.remote:
            return
        self._mode_announced = True
        print(self.trust_mode(), file=sys.stderr)

    # --- last key per task (explanations only; never trusted for skipping) ---------------------------
    def _last_path(self, stage: str, task: str) -> Path:
        return self.root / "last" / stage / (task.replace("/", "_").replace(":", "_") + ".json")

    def set_last(self, stage: str, task: str, key: Key) -> None:
        atomic_write(self._last_path(stage, task), canonical_json({"key": key.hex, "salt": key.salt}).encode())

    def get_last(self, stage: str, task: str) -> dict | None:
        try:
            data = json.loads(self._last_path(stage, task).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        rec = self.get_action(stage, Key(data.get("salt", ""), data.get("key", "")))
        return rec

    # --- maintenance ---------------------------------------------------------------------------------
    def usage(self) -> dict:
        out = {}
        for part in ("objects", "actions", "last"):
            files = [p for p in (self.root / part).rglob("*") if p.is_file()]
            out[part] = {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
        return out

    def prune(self, older_than_days: float) -> int:
        """Delete entries not written for `older_than_days`. Objects still referenced by a kept record
        survive. Returns the number of files removed."""
        cutoff = time.time() - older_than_days * 86400
        removed = 0
        keep: set[str] = set()
        for path in (self.root / "actions").rglob("*.json"):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
                continue
            try:
                keep.update(_digests_in(json.loads(path.read_bytes()).get("result")))
            except ValueError:
                pass
        for path in (self.root / "objects").rglob("*"):
            if path.is_file() and path.name not in keep and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        return removed

    def verify(self, remove_temp_older_than: float = 3600) -> "VerifyReport":
        """Check the whole local cache and remove what is bad: every object re-hashed against its name,
        every record parsed and checked (its `check`, its `mac` when a team key is set, the objects it
        names), every `last/` entry parsed, and `.tmp-*` files older than `remove_temp_older_than` seconds
        removed (left by a killed write; younger ones may belong to a write in progress). Local only."""
        report = VerifyReport(signatures_checked=self.team_key.get() is not None)
        self._verify_temp_files(report, time.time() - remove_temp_older_than)
        self._verify_objects(report)
        self._verify_records(report)
        self._verify_last(report)
        return report

    def _remove(self, report: "VerifyReport", path: Path, why: str) -> None:
        path.unlink(missing_ok=True)
        report.removed.append((self._rel(path), why))

    def _verify_temp_files(self, report: "VerifyReport", cutoff: float) -> None:
        for path in self.root.rglob(".tmp-*"):
            try:
                if not path.is_file():
                    continue
                young = path.stat().st_mtime >= cutoff
            except FileNotFoundError:
                continue  # renamed into place by a write in progress
            if young:
                report.temp_kept += 1
            else:
                path.unlink(missing_ok=True)
                report.temp_removed += 1

    def _verify_objects(self, report: "VerifyReport") -> None:
        for path in _files(self.root / "objects"):
            report.objects += 1
            name = path.name
            if not _is_digest(name) or path.parent.name != name[:2]:
                self._remove(report, path, "not named by a digest in its folder")
            elif digest_file(path) != name:
                self._remove(report, path, "content does not match its digest")

    def _verify_records(self, report: "VerifyReport") -> None:
        for path in _files(self.root / "actions"):
            report.records += 1
            why = self._record_file_problem(path)
            if why:
                self._remove(report, path, why)

    def _record_file_problem(self, path: Path) -> str | None:
        if path.suffix != ".json":
            return "not a cache record"
        try:
            record = json.loads(path.read_bytes())
        except (ValueError, OSError, RecursionError):
            return "does not parse"
        if not isinstance(record, dict) or not isinstance(record.get("salt"), str):
            return "is not a record"
        problem = self._record_problem(record, path.parent.name, Key(record["salt"], path.stem))
        if problem:
            return problem
        missing = [d for d in _objects_named(record["result"]) if not self._object_path(d).is_file()]
        if missing:
            return f"names missing object(s) {', '.join(d[:12] for d in missing)}"
        return None

    def _verify_last(self, report: "VerifyReport") -> None:
        for path in _files(self.root / "last"):
            try:
                data = json.loads(path.read_bytes())
                ok = isinstance(data, dict) and isinstance(data.get("key"), str) and isinstance(data.get("salt"), str)
            except (ValueError, OSError, RecursionError):
                ok = False
            if not ok:
                self._remove(report, path, "does not parse")


@value
class VerifyReport:
    """What `Cache.verify` checked and removed. `summary()` is what `copilot-doit cache verify` prints."""

    objects: int = 0
    records: int = 0
    removed: list[tuple[str, str]] = field(default_factory=list)   # (path relative to the cache, why)
    temp_removed: int = 0
    temp_kept: int = 0            # younger than the threshold: maybe a write in progress
    signatures_checked: bool = False

    @property
    def ok(self) -> bool:
        """Nothing bad was found (stray temp files are litter, not damage)."""
        return not self.removed

    def count_removed(self, part: str) -> int:
        return sum(1 for rel, _ in self.removed if rel.startswith(part + "/"))

    def summary(self) -> str:
        lines = [f"checked {_n(self.objects, 'object')} and {_n(self.records, 'record')}"
                 + ("" if self.signatures_checked else " (signatures not checked: no team key)")]
        for rel, why in self.removed:
            lines.append(f"removed {rel}: {why}")
        removed = (f"{_n(self.count_removed('objects'), 'corrupt object')}, "
                   f"{_n(self.count_removed('actions'), 'bad record')}, "
                   f"{_n(self.count_removed('last'), 'bad last-key file')}")
        lines.append(f"removed {removed}, {_n(self.temp_removed, 'stray temp file')}"
                     + (f" (kept {self.temp_kept} recent, maybe in use)" if self.temp_kept else "")
                     + ("; the cache is sound" if self.ok else "; what was removed will be re-derived"))
        return "\n".join(lines)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _files(folder: Path):
    """Files under `folder`, temp files of writes excluded (those are `_verify_temp_files`' business)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".tmp-"))


def _is_digest(text) -> bool:
    return isinstance(text, str) and len(text) == 32 and all(c in "0123456789abcdef" for c in text)


# The result fields that name objects (templates, parameters, addons, lint reports, input lists).
OBJECT_FIELDS = ("template", "parameters", "addons", "report", "inputs")


def _objects_named(result: dict) -> list[str]:
    return [result[f] for f in OBJECT_FIELDS if _is_digest(result.get(f))]


def _digests_in(value) -> set[str]:
    if isinstance(value, dict):
        return set().union(*[_digests_in(v) for v in value.values()]) if value else set()
    if isinstance(value, list):
        return set().union(*[_digests_in(v) for v in value]) if value else set()
    if isinstance(value, str) and len(value) == 32:
        return {value}
    return set()
