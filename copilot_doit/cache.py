"""The content-addressed cache: immutable `objects/` and small `actions/` records pointing at them.

    objects/<2 hex>/<xxh3_128 of the bytes>       rendered templates, parameters, lint reports, input lists
    actions/<stage>/<key>.json                     {stage, salt, key, result, created, tool_version, check}
    last/<stage>/<task>.json                       the key a task last recorded (to explain what changed)

Every write is a temp file + rename in the same folder, so a crash never leaves a torn entry. Every read
is verified: an object against its name, a record against its `check` digest. A bad entry is deleted
with a warning and treated as missing, so it is re-derived instead of deployed.

With a remote (`S3Store`, same layout under a bucket prefix) reads go through to it on a local miss and
writes go back to it: a CI fleet and laptops share results. What comes down is verified exactly like a
local entry before it is kept, so a corrupt or poisoned remote entry is rejected, never deployed.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import __version__
from .hashing import Key, canonical_json, digest_bytes, digest_value


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
    def __init__(self, root: str | os.PathLike, remote: S3Store | None = None):
        self.root = ensure_root(root)
        self.remote = remote

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
    def _action_path(self, stage: str, key: Key) -> Path:
        return self.root / "actions" / stage / f"{key.hex}.json"

    def put_action(self, stage: str, key: Key, result: dict, task: str | None = None) -> dict:
        record = {"stage": stage, "salt": key.salt, "key": key.hex, "result": result,
                  "created": time.time(), "tool_version": __version__}
        record["check"] = digest_value(record)
        path = self._action_path(stage, key)
        data = canonical_json(record).encode()
        atomic_write(path, data)
        if self.remote:
            self.remote.put(self._rel(path), data)
        if task:
            self.set_last(stage, task, key)
        return record

    def get_action(self, stage: str, key: Key) -> dict | None:
        path = self._action_path(stage, key)
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            return self._remote_action(stage, key, path)
        except (ValueError, OSError):
            record = None
        if not self._record_ok(record, stage, key):
            _warn(f"cache record {path} is corrupt; discarded, the stage will run again")
            path.unlink(missing_ok=True)
            return self._remote_action(stage, key, path)
        return record

    def _remote_action(self, stage: str, key: Key, path: Path) -> dict | None:
        if not self.remote:
            return None
        data = self.remote.get(self._rel(path))
        if data is None:
            return None
        try:
            record = json.loads(data)
        except ValueError:
            record = None
        if not self._record_ok(record, stage, key):
            _warn(f"shared cache record {self._rel(path)} is corrupt; rejected, the stage will run")
            return None
        atomic_write(path, data)
        return record

    @staticmethod
    def _record_ok(record, stage: str, key: Key) -> bool:
        if not isinstance(record, dict) or "check" not in record:
            return False
        body = {k: v for k, v in record.items() if k != "check"}
        return (record["check"] == digest_value(body) and record.get("key") == key.hex
                and record.get("stage") == stage and record.get("salt") == key.salt)

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


def _digests_in(value) -> set[str]:
    if isinstance(value, dict):
        return set().union(*[_digests_in(v) for v in value.values()]) if value else set()
    if isinstance(value, list):
        return set().union(*[_digests_in(v) for v in value]) if value else set()
    if isinstance(value, str) and len(value) == 32:
        return {value}
    return set()
