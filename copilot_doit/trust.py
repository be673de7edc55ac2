"""Authenticated cache records: an HMAC-SHA256 over each record with a key the team holds.

A record (`actions/<stage>/<key>.json`) is a claim, "these inputs gave this result", and its `check` is an
unkeyed digest that anyone can recompute, so it only catches accidents. Whoever can write the shared
bucket could otherwise make a reader deploy a template of their choosing. A record written while a team
key is available carries `mac`, an HMAC-SHA256 over the canonical record; a reader holding the same key
uses a shared record only if its `mac` verifies (see `Cache.get_action` and the README's trust model).

The key comes from, in this order:
    $COPILOT_DOIT_CACHE_KEY                       hex (64 hex digits = 32 bytes) or any text of 16+ bytes
    cache.s3.hmac_key in copilot-doit.yml         {env: NAME} | {ssm: /param/name} | {secretsmanager: name}
It is fetched once, and only when a record is read or written: a run that never looks at a record never
calls SSM or Secrets Manager (and never imports boto3).
"""
from __future__ import annotations

import os
import sys

from .errors import UserError
from .hashing import canonical_json
from .values import value

ENV_VAR = "COPILOT_DOIT_CACHE_KEY"
SOURCE_KINDS = ("env", "ssm", "secretsmanager")
MIN_KEY_BYTES = 16
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Domain separation: a MAC made for a cache record can never be replayed as a MAC of anything else.
MAC_CONTEXT = b"copilot-doit/record-mac/1\n"


@value(frozen=True)
class KeySource:
    """Where the team key lives: an environment variable, an SSM parameter or a Secrets Manager secret."""

    kind: str
    name: str

    def describe(self) -> str:
        return {"env": f"environment variable {self.name}", "ssm": f"SSM parameter {self.name}",
                "secretsmanager": f"Secrets Manager secret {self.name}"}[self.kind]


DEFAULT_SOURCE = KeySource("env", ENV_VAR)


def parse_key_source(value, *, file: str | None = None, line: int | None = None) -> KeySource:
    """`cache.s3.hmac_key` as written in copilot-doit.yml: a mapping with exactly one of env/ssm/secretsmanager."""
    allowed = "{env: NAME} | {ssm: /parameter/name} | {secretsmanager: secret-name}"
    if not isinstance(value, dict) or len(value) != 1:
        raise UserError("must name one key source", file=file, line=line, field="cache.s3.hmac_key", allowed=allowed)
    (kind, name), = value.items()
    if kind not in SOURCE_KINDS:
        raise UserError(f"'{kind}' is not a key source", file=file, line=line, field="cache.s3.hmac_key",
                        allowed=allowed)
    if not isinstance(name, str) or not name.strip():
        raise UserError("must be a non-empty string", file=file, line=line, field=f"cache.s3.hmac_key.{kind}")
    return KeySource(kind, name.strip())


def key_source_from_config(cache_config: dict | None) -> KeySource:
    """The source named in `cache: {s3: {hmac_key: ...}}`, else $COPILOT_DOIT_CACHE_KEY."""
    s3 = (cache_config or {}).get("s3") or {}
    return parse_key_source(s3["hmac_key"]) if s3.get("hmac_key") is not None else DEFAULT_SOURCE


def key_bytes(text: str | bytes, where: str) -> bytes:
    """The key as bytes: hex when the text is hex (what `openssl rand -hex 32` prints), else the text itself."""
    if isinstance(text, bytes):
        raw = text
    else:
        text = text.strip()
        is_hex = bool(text) and len(text) % 2 == 0 and all(c in HEX_DIGITS for c in text)
        raw = bytes.fromhex(text) if is_hex else text.encode()
    if len(raw) < MIN_KEY_BYTES:
        raise UserError(f"the cache key in {where} is {len(raw)} bytes; it needs at least {MIN_KEY_BYTES} "
                        f"(make one with `openssl rand -hex 32`)")
    return raw


def record_mac(key: bytes, record: dict) -> str:
    """HMAC-SHA256 of the canonical record without its `mac`. The record names its stage, salt and key,
    and the reader checks those against what it asked for, so a valid record cannot be moved to another key."""
    import hashlib
    import hmac   # here: only a shared cache's records are signed (hashlib's OpenSSL load is ~6 ms of a no-op)
    body = {k: v for k, v in record.items() if k != "mac"}
    return hmac.new(key, MAC_CONTEXT + canonical_json(body).encode(), hashlib.sha256).hexdigest()


def mac_ok(key: bytes, record: dict) -> bool:
    import hmac
    mac = record.get("mac")
    return isinstance(mac, str) and hmac.compare_digest(mac, record_mac(key, record))


class TeamKey:
    """The team's record key, looked up once, on first use.

    `client_factory(service)` returns a boto3 client ("ssm" or "secretsmanager"); it is called only for
    those sources. A key that cannot be fetched (variable unset, no permission, network) leaves the cache
    unauthenticated, which is safe: shared records are then not trusted. A key that is there but too short
    is a mistake and a `UserError`."""

    def __init__(self, source: KeySource | None = None, client_factory=None, environ=None):
        self.source = source or DEFAULT_SOURCE
        self._factory = client_factory
        self._environ = os.environ if environ is None else environ
        self._key: bytes | None = None
        self._looked_up = False
        self.problem: str | None = None   # why there is no key, for the mode line

    def get(self) -> bytes | None:
        if not self._looked_up:
            self._looked_up = True
            self._key = self._lookup()
        return self._key

    @property
    def origin(self) -> str:
        """Where the key in use came from (the override variable wins over the configured source)."""
        return DEFAULT_SOURCE.describe() if self._environ.get(ENV_VAR) else self.source.describe()

    def _lookup(self) -> bytes | None:
        # The plain variable wins over the configured source: CI injects it and saves an SSM call per run.
        if self._environ.get(ENV_VAR):
            return key_bytes(self._environ[ENV_VAR], DEFAULT_SOURCE.describe())
        src = self.source
        if src.kind == "env":
            value = self._environ.get(src.name)
            if not value:
                self.problem = f"{src.describe()} is not set"
                return None
            return key_bytes(value, src.describe())
        value = self._fetch_remote(src)
        return None if value is None else key_bytes(value, src.describe())

    def _fetch_remote(self, src: KeySource) -> str | bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError
        if self._factory is None:
            self.problem = f"{src.describe()} cannot be read: no AWS client for it"
            return None
        try:
            if src.kind == "ssm":
                return self._factory("ssm").get_parameter(Name=src.name, WithDecryption=True)["Parameter"]["Value"]
            out = self._factory("secretsmanager").get_secret_value(SecretId=src.name)
            return out.get("SecretString") or out.get("SecretBinary")
        except ClientError as exc:
            self.problem = f"{src.describe()} could not be read ({exc.response.get('Error', {}).get('Code')})"
        except BotoCoreError as exc:
            self.problem = f"{src.describe()} could not be read ({exc})"
        print(f"warning: {self.problem}; shared cache records will not be trusted", file=sys.stderr)
        return None

    def mode_line(self) -> str:
        """One line saying how records from the shared cache are treated in this run."""
        if self.get() is not None:
            return f"shared cache: records are authenticated with the team key from {self.origin}"
        why = f" ({self.problem})" if self.problem else ""
        return (f"shared cache: no team key{why}, so its records are not trusted: stages re-derive their "
                f"results; content-addressed objects and images verified in the registry are still reused "
                f"(set {ENV_VAR} or cache.s3.hmac_key to share records)")
