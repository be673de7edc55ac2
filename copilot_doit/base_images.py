"""Base images of a Dockerfile, keyed by repository digest so every machine computes the same build key.

    base_images(text, build_args)     the images a Dockerfile builds on, as written (ARG-expanded)
    resolve(ref, memo)                {"ref", "digest"}, or {"ref", "image_id", "note"} for a local-only base

Where a digest comes from, in order (the first that answers wins):
  1. `name@sha256:…` as written: no call at all;
  2. the engine has the image: the RepoDigests entry of that repository (one ~1 ms Unix-socket call). That is
     the image BuildKit builds on (it prefers a local copy), so a laptop that pulled the base and a CI runner
     that did not agree as long as the tag has not moved. An image the engine has but no registry knows
     (built or `docker load`ed locally) keys on its image id, and the plan prints why;
  3. the memo: a reference resolved before (persistent JSON under the cache root), so a no-op makes no
     registry call;
  4. a registry HEAD of the manifest (Docker Hub token auth, basic auth from ~/.docker/config.json or its
     credential helper, ECR tokens through boto3), remembered in the memo.
A registry that cannot be reached with no local copy is an error naming the reference: falling back to
another key would make two machines disagree silently.

Imports stay light (no boto3, no docker SDK at import time): the no-op path is judged in milliseconds.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shlex
import threading
import time
from pathlib import Path

from .audit import log_api
from .errors import ServiceUnavailable, UserError
from .values import value

LOCAL_ID_NOTE = "no repository digest: keyed on the local image id"

# The OCI/v2 Accept list: a registry answers with the digest of what the tag points at (an index for a
# multi-platform image), the same digest `docker pull` records in RepoDigests.
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
])
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


# --- reading a Dockerfile --------------------------------------------------------------------------------

_DIRECTIVE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_HEREDOC_INSTRUCTIONS = ("RUN", "COPY", "ADD")


@value(frozen=True)
class Instruction:
    line: int                   # 1-based line where the instruction starts
    keyword: str                # upper case: FROM, RUN, ...
    rest: str                   # the arguments, continuation lines joined by a space
    heredocs: tuple = ()        # words of `<<EOF` heredocs opened by this instruction


def parser_directives(text: str) -> dict[str, tuple[int, str]]:
    """Leading `# name=value` lines (syntax, escape, check): lower-case name -> (line, value)."""
    found: dict[str, tuple[int, str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        m = _DIRECTIVE.match(raw.strip())
        if not m or m.group(1).lower() in found:
            break  # the first comment, blank line or instruction ends the directives
        found[m.group(1).lower()] = (number, m.group(2))
    return found


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions with their first line, as BuildKit's parser splits them.

    Continuation lines (ending in the escape character, `\\` unless `# escape=`) are joined; comments and
    blank lines inside a continuation are skipped; heredoc bodies (`RUN <<EOF ... EOF`) are not instructions.
    """
    escape = (parser_directives(text).get("escape", (0, "\\"))[1] or "\\")[0]
    lines = text.splitlines()
    out: list[Instruction] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start, parts = i + 1, []
        while True:
            part = lines[i].strip()
            i += 1
            if part.endswith(escape):
                parts.append(part[:-1].strip())
                while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
                    i += 1  # BuildKit skips comments and empty lines inside a continuation
                if i < len(lines):
                    continue
            else:
                parts.append(part)
            break
        joined = " ".join(p for p in parts if p)
        word, _, rest = joined.partition(" ")
        keyword = word.upper()
        words: list[str] = []
        if keyword in _HEREDOC_INSTRUCTIONS:
            for m in _HEREDOC.finditer(rest):
                words.append(m.group(3))
                strip_tabs = m.group(1) == "-"
                while i < len(lines):  # the body runs up to a line holding only the word
                    body = lines[i].lstrip("\t") if strip_tabs else lines[i]
                    i += 1
                    if body.rstrip("\r") == m.group(3):
                        break
        out.append(Instruction(start, keyword, rest.strip(), tuple(words)))
    return out


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def expand(word: str, variables: dict) -> str:
    """Dockerfile variable substitution: $V, ${V}, ${V:-default}, ${V-default}, ${V:+alt}, ${V+alt}."""
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3) or ""
        value = variables.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if value is not None else arg
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return arg if value is not None else ""
        return value or ""
    return _VAR.sub(one, word)


def _words(rest: str) -> list[str]:
    try:
        return shlex.split(rest)
    except ValueError:  # an unbalanced quote: the engine will say so, the key just takes the words
        return rest.split()


def _flags(words: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Leading `--name=value` flags of an instruction, and the words after them."""
    flags: dict[str, list[str]] = {}
    i = 0
    while i < len(words) and words[i].startswith("--"):
        name, _, value = words[i][2:].partition("=")
        flags.setdefault(name.lower(), []).append(value)
        i += 1
    return flags, words[i:]


_MACHINE_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm/v7"}


def _platform_args(platform: str | None) -> dict:
    """BuildKit's automatic TARGET*/BUILD* args, usable in FROM lines without a declaration. Without a
    platform the build targets the engine's own, taken to be this machine's (a local engine)."""
    here = "linux/" + _MACHINE_ARCH.get(os.uname().machine, os.uname().machine)
    out = {}
    for prefix, value in (("BUILD", here), ("TARGET", platform or here)):
        os_, _, arch = value.partition("/")
        arch, _, variant = arch.partition("/")
        out.update({f"{prefix}PLATFORM": value, f"{prefix}OS": os_, f"{prefix}ARCH": arch, f"{prefix}VARIANT": variant})
    return out


def base_images(dockerfile_text: str, build_args: dict, platform: str | None = None) -> list[str]:
    """Images the build reads, as written after ARG expansion, in order, without duplicates.

    `FROM` images, minus `scratch` and earlier stage names (case-insensitive, as BuildKit); plus images
    named by `COPY --from=<image>` and `RUN --mount=...,from=<image>` (they are build inputs too).
    `name@sha256:…` references come back as written. `--platform=` flags are not images.
    """
    args: dict[str, str] = dict(_platform_args(platform))
    stages: set[str] = set()
    out: list[str] = []
    seen_from = False

    def add(image: str) -> None:
        low = image.lower()
        if image and low != "scratch" and low not in stages and not image.isdigit() and image not in out:
            out.append(image)

    for ins in instructions(dockerfile_text):
        if ins.keyword == "ARG" and not seen_from:  # only ARGs before the first FROM reach FROM lines
            for word in _words(ins.rest):
                name, eq, default = word.partition("=")
                if name in build_args:
                    args[name] = str(build_args[name])
                elif eq:
                    args[name] = expand(default, args)
        elif ins.keyword == "FROM":
            seen_from = True
            _, words = _flags(_words(ins.rest))
            if not words:
                continue
            add(expand(words[0], args))
            if len(words) >= 3 and words[1].lower() == "as":
                stages.add(words[2].lower())
        elif ins.keyword == "COPY":
            flags, _ = _flags(_words(ins.rest))
            for source in flags.get("from", []):
                add(expand(source, args))
        elif ins.keyword == "RUN":
            flags, _ = _flags(_words(ins.rest))
            for mount in flags.get("mount", []):
                for option in mount.split(","):
                    key, _, value = option.partition("=")
                    if key.strip().lower() == "from":
                        add(expand(value.strip(), args))
    return out


# --- image references ------------------------------------------------------------------------------------

@value(frozen=True)
class ImageRef:
    registry: str           # docker.io, 127.0.0.1:5000, 123456789012.dkr.ecr.eu-west-1.amazonaws.com
    repository: str         # library/busybox, team/base
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"


def parse_reference(ref: str) -> ImageRef:
    """Docker's normalisation: `busybox` is docker.io/library/busybox:latest; a first component with a dot,
    a colon or `localhost` is a registry host."""
    name, _, digest = ref.partition("@")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = DOCKER_HUB, name
    if registry == "index.docker.io":
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not repository or repository != repository.lower() or (digest and not _DIGEST.match(digest)):
        raise UserError(f"'{ref}' is not a valid image reference",
                        allowed="name[:tag] or name@sha256:<64 hex>, lower-case repository")
    return ImageRef(registry, repository, tag if tag else (None if digest else "latest"), digest or None)


def repo_digest_for(ref: str, repo_digests: list[str], prefer: str | None = None) -> str | None:
    """The digest of the RepoDigests entry (`name@sha256:…`) whose repository is ref's, or None.

    An image pulled through several manifests of one repository has several entries; the one remembered
    before (`prefer`) is kept so the key does not flip between them, else the engine's first.
    """
    wanted = parse_reference(ref).name
    found = []
    for entry in repo_digests or []:
        name, _, digest = entry.partition("@")
        try:
            if parse_reference(name).name == wanted and _DIGEST.match(digest):
                found.append(digest)
        except UserError:
            continue
    if prefer in found:
        return prefer
    return found[0] if found else None


# --- the memo --------------------------------------------------------------------------------------------

class BaseImageMemo:
    """Persistent map reference -> resolution (digests only), a JSON file under the cache root.

    A digest is remembered until the engine shows another one for the same reference (a `docker pull`
    of a moved tag) or the file is removed; a local image id is never remembered (it is only meaningful
    while the engine has the image, and then the engine answers first). Writes are atomic and merge with
    what other processes wrote meanwhile (doit -j).
    """

    VERSION = 1

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._entries: dict | None = None
        self._dirty: dict[str, dict] = {}
        self._lock = threading.Lock()  # doit may run tasks in threads

    def _read_file(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # missing or corrupt: a memo only saves registry calls
        if not isinstance(data, dict) or data.get("version") != self.VERSION or not isinstance(data.get("refs"), dict):
            return {}
        return {ref: e for ref, e in data["refs"].items()
                if isinstance(e, dict) and isinstance(e.get("digest"), str) and _DIGEST.match(e["digest"])}

    def _load(self) -> dict:
        if self._entries is None:
            self._entries = self._read_file()
        return self._entries

    def get(self, ref: str) -> dict | None:
        with self._lock:
            entry = self._load().get(ref)
        return {"ref": ref, "digest": entry["digest"]} if entry else None

    def put(self, ref: str, resolution: dict) -> None:
        digest = resolution.get("digest")
        if not digest or resolution.get("image_id"):
            return
        with self._lock:
            entries = self._load()
            if (entries.get(ref) or {}).get("digest") == digest:
                return
            entry = {"digest": digest, "resolved": int(time.time())}
            entries[ref] = entry
            self._dirty[ref] = entry

    def flush(self) -> None:
        """Write what this process learnt, merged over what others wrote meanwhile (temp file + rename)."""
        with self._lock:
            if not self._dirty:
                return
            from .cache import atomic_write
            merged = self._read_file()
            merged.update(self._dirty)
            atomic_write(self.path, json.dumps({"version": self.VERSION, "refs": dict(sorted(merged.items()))},
                                               indent=1).encode())
            self._entries = merged
            self._dirty = {}


# --- resolving -------------------------------------------------------------------------------------------

def _engine_inspect(ref: str) -> dict | None:
    from . import engine
    return engine.inspect_image(ref)


def resolve(ref: str, memo: BaseImageMemo | None = None, *, engine_inspect=None, registry_head=None) -> dict:
    """A base image reference -> what the build key records for it.

    {"ref": ref, "digest": "sha256:…"}                                  a repository digest (any source)
    {"ref": ref, "image_id": "sha256:…", "note": LOCAL_ID_NOTE}          local-only image
    The result depends only on facts about the image, never on where they were read, so a machine with
    the image and one without compute the same key. Raises UserError (ServiceUnavailable when the
    registry does not answer) if the reference cannot be resolved.
    """
    engine_inspect = engine_inspect or _engine_inspect
    registry_head = registry_head or registry_digest
    parsed = parse_reference(ref)
    if parsed.digest:
        return {"ref": ref, "digest": parsed.digest}
    remembered = memo.get(ref) if memo else None
    local = engine_inspect(ref)
    if local:
        digest = repo_digest_for(ref, local.get("RepoDigests") or [],
                                 prefer=remembered["digest"] if remembered else None)
        if not digest:
            return {"ref": ref, "image_id": local["Id"], "note": LOCAL_ID_NOTE}
        resolution = {"ref": ref, "digest": digest}
    elif remembered:
        return remembered
    else:
        resolution = {"ref": ref, "digest": registry_head(ref)}
    if memo:
        memo.put(ref, resolution)
    return resolution


def resolve_all(dockerfile_text: str, build_args: dict, memo: BaseImageMemo | None = None, *,
                platform: str | None = None, engine_inspect=None, registry_head=None) -> dict[str, dict]:
    """Every base image of a Dockerfile -> its resolution (insertion order = Dockerfile order)."""
    return {ref: resolve(ref, memo, engine_inspect=engine_inspect, registry_head=registry_head)
            for ref in base_images(dockerfile_text, build_args, platform)}


# --- the registry ----------------------------------------------------------------------------------------

def _is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry[1:].split("]")[0]
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _api_host(registry: str) -> str:
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


class _Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status, self.headers, self.body = status, headers, body


def _http(method: str, url: str, headers: dict) -> _Response:
    """One HTTP(S) request: 5 s to connect, 30 s per read. Raises OSError-like errors on failure."""
    import http.client
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = cls(u.hostname, u.port, timeout=CONNECT_TIMEOUT)
    try:
        conn.connect()
        conn.sock.settimeout(READ_TIMEOUT)
        path = u.path + (f"?{u.query}" if u.query else "")
        conn.request(method, path or "/", headers=headers)
        r = conn.getresponse()
        body = r.read() if method != "HEAD" else b""
        return _Response(r.status, {k.lower(): v for k, v in r.getheaders()}, body)
    finally:
        conn.close()


def _docker_config() -> dict:
    d = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        with open(os.path.join(d, "config.json")) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _credential_helper(helper: str, server: str) -> tuple[str, str] | None:
    import shutil
    import subprocess
    binary = shutil.which(f"docker-credential-{helper}")
    if not binary:
        return None
    try:
        p = subprocess.run([binary, "get"], input=server, capture_output=True, text=True, timeout=30)
        data = json.loads(p.stdout) if p.returncode == 0 else {}
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if data.get("Username") and data.get("Secret"):
        return data["Username"], data["Secret"]
    return None


def docker_credentials(registry: str) -> tuple[str, str] | None:
    """(user, password) for a registry as the engine's CLI would use: credential helper, then `auths`."""
    cfg = _docker_config()
    server = DOCKER_HUB_AUTH_KEY if registry == DOCKER_HUB else registry
    helper = (cfg.get("credHelpers") or {}).get(server) or cfg.get("credsStore")
    if helper:
        found = _credential_helper(helper, server)
        if found:
            return found
    auths = cfg.get("auths") or {}
    for key in (server, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/", f"https://{registry}/v2/"):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, password
            except ValueError:
                continue
        if entry.get("username") and entry.get("password"):
            return entry["username"], entry["password"]
    return None


def _ecr_credentials(ref: str, registry: str, boto3_session=None) -> tuple[str, str]:
    account, region = _ECR_HOST.match(registry).groups()
    log_api("ecr", "GetAuthorizationToken", "aws")
    try:
        if boto3_session is None:
            import boto3
            boto3_session = boto3
        ecr = boto3_session.client("ecr", region_name=region)  # a token is only good in its own region
        data = ecr.get_authorization_token(registryIds=[account])
        token = data["authorizationData"][0]["authorizationToken"]
    except Exception as exc:  # botocore's NoCredentialsError, ClientError, EndpointConnectionError
        raise ServiceUnavailable(f"cannot resolve base image {ref}: no ECR token for {registry} ({exc})",
                                 allowed="AWS credentials that may call ecr:GetAuthorizationToken, "
                                         "or `docker pull` the image first") from None
    user, _, password = base64.b64decode(token).decode().partition(":")
    return user, password


def _basic(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def _challenge(header: str) -> tuple[str, dict]:
    """`Bearer realm="…",service="…",scope="…"` -> ("bearer", {realm, service, scope})."""
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', params))


def _bearer_token(ref: str, params: dict, creds: tuple[str, str] | None, scope: str) -> str:
    import urllib.parse
    realm = params.get("realm")
    if not realm:
        raise UserError(f"cannot resolve base image {ref}: the registry asked for a token without a realm")
    query = {"scope": params.get("scope") or scope}
    if params.get("service"):
        query["service"] = params["service"]
    url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
    log_api("registry", "GetToken", "base-image")
    r = _http("GET", url, {"Authorization": _basic(creds)} if creds else {})
    if r.status != 200:
        raise UserError(f"cannot resolve base image {ref}: the registry's token service answered HTTP {r.status}",
                        allowed="`docker login` to the registry, or `docker pull` the image first")
    try:
        data = json.loads(r.body)
        return data.get("token") or data["access_token"]
    except (ValueError, KeyError):
        raise UserError(f"cannot resolve base image {ref}: the registry's token service sent no token") from None


def registry_digest(ref: str, *, boto3_session=None) -> str:
    """The repository digest a registry serves for `name:tag` (HEAD of the manifest, OCI/v2 Accept list).

    Plain HTTP for loopback registries (the engine treats 127.0.0.0/8 as insecure too), HTTPS otherwise.
    ECR hosts authenticate with a token from `boto3_session` (the environment's profile; default chain if None).
    """
    parsed = parse_reference(ref)
    if parsed.digest:
        return parsed.digest
    registry = parsed.registry
    scheme = "http" if _is_loopback(registry) else "https"
    url = f"{scheme}://{_api_host(registry)}/v2/{parsed.repository}/manifests/{parsed.tag}"
    scope = f"repository:{parsed.repository}:pull"
    headers = {"Accept": MANIFEST_ACCEPT}
    try:
        creds = _ecr_credentials(ref, registry, boto3_session) if _ECR_HOST.match(registry) else docker_credentials(registry)
        if creds and _ECR_HOST.match(registry):
            headers["Authorization"] = _basic(creds)  # ECR takes its token as basic auth: no challenge needed
        log_api("registry", "HeadManifest", "base-image", {"ref": ref})
        r = _http("HEAD", url, headers)
        if r.status == 401:
            scheme_, params = _challenge(r.headers.get("www-authenticate", ""))
            if scheme_ == "bearer":
                headers["Authorization"] = "Bearer " + _bearer_token(ref, params, creds, scope)
            elif creds:
                headers["Authorization"] = _basic(creds)
            else:
                raise UserError(f"cannot resolve base image {ref}: {registry} needs credentials",
                                allowed=f"`docker login {registry}`, or `docker pull {ref}` first")
            log_api("registry", "HeadManifest", "base-image", {"ref": ref})
            r = _http("HEAD", url, headers)
        if r.status == 200 and not _DIGEST.match(r.headers.get("docker-content-digest", "")):
            # A registry may omit the header on HEAD: the digest is that of the manifest bytes.
            import hashlib
            log_api("registry", "GetManifest", "base-image", {"ref": ref})
            r = _http("GET", url, headers)
            if r.status == 200:
                r.headers["docker-content-digest"] = "sha256:" + hashlib.sha256(r.body).hexdigest()
    except UserError:
        raise
    except Exception as exc:  # OSError, ssl.SSLError, socket.timeout, http.client.HTTPException
        raise ServiceUnavailable(
            f"cannot resolve base image {ref}: registry {registry} is unreachable ({exc or type(exc).__name__}) "
            "and the engine has no local copy",
            allowed=f"`docker pull {ref}` when the registry is reachable, or pin it as name@sha256:…") from None
    if r.status == 404:
        raise UserError(f"base image {ref} does not exist: {registry} has no manifest {parsed.repository}:{parsed.tag}")
    if r.status in (401, 403):
        raise UserError(f"cannot resolve base image {ref}: {registry} refused access (HTTP {r.status})",
                        allowed=f"`docker login {registry}`, or `docker pull {ref}` first")
    if r.status != 200:
        raise ServiceUnavailable(f"cannot resolve base image {ref}: {registry} answered HTTP {r.status}")
    return r.headers["docker-content-digest"]
