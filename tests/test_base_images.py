"""Base images keyed by repository digest: FROM parsing, resolution order, the memo, the registry HEAD.

Unit tests use fakes for the engine and small in-process HTTP servers for registries; the e2e tests push a
FROM-scratch image to a docker-registry started here and resolve it with and without the engine's copy.
"""
from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import missing
from copilot_doit import base_images as bi
from copilot_doit.errors import ServiceUnavailable, UserError

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
ID1 = "sha256:" + "a" * 64


# --- FROM parsing ------------------------------------------------------------------------------------------

def test_from_lines_skip_scratch_and_earlier_stages_case_insensitively():
    text = "FROM golang:1.22 AS Build\nRUN go build\nFROM scratch\nCOPY --from=build /app /app\nFROM BUILD AS again\n"
    assert bi.base_images(text, {}) == ["golang:1.22"]


def test_arg_expansion_defaults_overrides_and_forms():
    text = ('ARG REG=127.0.0.1:5000\nARG NAME="base"\nARG TAG\nARG ALT\n'
            "FROM ${REG}/$NAME:${TAG:-1.0}\nFROM ${REG}/other${ALT:+-alt}:${TAG-x}\n")
    assert bi.base_images(text, {}) == ["127.0.0.1:5000/base:1.0", "127.0.0.1:5000/other:x"]
    assert bi.base_images(text, {"TAG": "2.0", "ALT": "y"}) == ["127.0.0.1:5000/base:2.0",
                                                                 "127.0.0.1:5000/other-alt:2.0"]


def test_args_after_the_first_from_do_not_reach_later_from_lines():
    text = "ARG V=1\nFROM a:$V\nARG V=2\nFROM b:$V\n"
    assert bi.base_images(text, {}) == ["a:1", "b:1"]


def test_platform_flag_is_not_the_image_and_target_args_are_automatic():
    text = "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\nFROM --platform=linux/arm64 base:${TARGETARCH}\n"
    assert bi.base_images(text, {}, platform="linux/arm64") == ["golang:1.22", "base:arm64"]
    here = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    assert bi.base_images("FROM base:${TARGETARCH}-${BUILDOS}\n", {}) == [f"base:{here}-linux"]


def test_digests_come_back_as_written():
    ref = "public.ecr.aws/docker/library/busybox:1.36@" + D1
    assert bi.base_images(f"FROM {ref}\nFROM busybox@{D2} AS x\n", {}) == [ref, f"busybox@{D2}"]


def test_copy_from_and_mount_from_images_are_inputs_too_but_stages_and_indexes_are_not():
    text = ("FROM alpine:3 AS deps\nFROM scratch\nCOPY --from=deps /a /a\nCOPY --from=0 /b /b\n"
            "COPY --from=nginx:1.25 /etc/nginx /etc/nginx\n"
            "RUN --mount=type=bind,from=tools:1,source=/x,target=/x --mount=type=cache,target=/c true\n")
    assert bi.base_images(text, {}) == ["alpine:3", "nginx:1.25", "tools:1"]


def test_continuations_comments_and_heredoc_bodies():
    text = ("# syntax=docker/dockerfile:1.4\nFROM \\\n  # a comment inside\n  base:1 \\\n  AS one\n"
            "RUN <<EOF\nFROM not-an-image:1\nEOF\nRUN <<-END cat\n\tFROM neither:1\n\tEND\nFROM one\n")
    assert bi.base_images(text, {}) == ["base:1"]
    ins = bi.instructions(text)
    assert [(i.line, i.keyword) for i in ins] == [(2, "FROM"), (6, "RUN"), (9, "RUN"), (12, "FROM")]
    assert ins[1].heredocs == ("EOF",)
    assert bi.parser_directives(text) == {"syntax": (1, "docker/dockerfile:1.4")}


def test_escape_directive_changes_the_continuation_character():
    assert bi.base_images("# escape=`\nFROM `\n  base:2\n", {}) == ["base:2"]


def test_parse_reference_normalises_like_docker():
    assert bi.parse_reference("busybox") == bi.ImageRef("docker.io", "library/busybox", "latest", None)
    assert bi.parse_reference("team/app:1").name == "docker.io/team/app"
    assert bi.parse_reference("127.0.0.1:5000/base") == bi.ImageRef("127.0.0.1:5000", "base", "latest", None)
    assert bi.parse_reference("localhost/x:2").registry == "localhost"
    r = bi.parse_reference(f"ghcr.io/o/r:t@{D1}")
    assert (r.registry, r.repository, r.tag, r.digest) == ("ghcr.io", "o/r", "t", D1)
    with pytest.raises(UserError, match="not a valid image reference"):
        bi.parse_reference("Upper/Case:1")


def test_repo_digest_is_picked_for_the_same_repository_only():
    digests = [f"other/repo@{D2}", f"busybox@{D1}"]
    assert bi.repo_digest_for("docker.io/library/busybox:1.36", digests) == D1
    assert bi.repo_digest_for("busybox:1.36", [f"busybox@{D1}", f"busybox@{D2}"], prefer=D2) == D2
    assert bi.repo_digest_for("mine:1", digests) is None


# --- resolution order and the memo -------------------------------------------------------------------------

class Calls:
    def __init__(self, image=None, digest=D1, error=None):
        self.image, self.digest, self.error = image, digest, error
        self.engine = self.registry = 0

    def inspect(self, ref):
        self.engine += 1
        return self.image

    def head(self, ref):
        self.registry += 1
        if self.error:
            raise self.error
        return self.digest

    def resolve(self, ref, memo):
        return bi.resolve(ref, memo, engine_inspect=self.inspect, registry_head=self.head)


def test_a_digest_reference_needs_no_call(tmp_path):
    calls = Calls()
    assert calls.resolve(f"base@{D2}", bi.BaseImageMemo(tmp_path / "m.json")) == {"ref": f"base@{D2}", "digest": D2}
    assert calls.engine == calls.registry == 0


def test_engine_repo_digest_wins_and_refreshes_the_memo(tmp_path):
    memo = bi.BaseImageMemo(tmp_path / "m.json")
    memo.put("base:1", {"ref": "base:1", "digest": D2})
    calls = Calls(image={"Id": ID1, "RepoDigests": [f"base@{D1}"]})
    assert calls.resolve("base:1", memo) == {"ref": "base:1", "digest": D1}
    assert calls.registry == 0
    memo.flush()
    assert bi.BaseImageMemo(tmp_path / "m.json").get("base:1") == {"ref": "base:1", "digest": D1}


def test_without_local_copy_the_registry_answers_once_then_the_memo(tmp_path):
    path = tmp_path / "cache" / "base-images.json"
    calls = Calls()
    memo = bi.BaseImageMemo(path)
    assert calls.resolve("base:1", memo) == {"ref": "base:1", "digest": D1}
    memo.flush()
    again = bi.BaseImageMemo(path)  # the next run
    calls.error = ServiceUnavailable("registry down")
    assert calls.resolve("base:1", again) == {"ref": "base:1", "digest": D1}
    assert calls.registry == 1


def test_local_only_image_keys_on_its_id_with_a_note_and_is_not_remembered(tmp_path):
    memo = bi.BaseImageMemo(tmp_path / "m.json")
    calls = Calls(image={"Id": ID1, "RepoDigests": []})
    assert calls.resolve("mine:1", memo) == {"ref": "mine:1", "image_id": ID1, "note": bi.LOCAL_ID_NOTE}
    memo.flush()
    assert not (tmp_path / "m.json").exists()
    assert calls.registry == 0


def test_unreachable_registry_without_local_copy_is_an_error_not_another_key(tmp_path):
    calls = Calls(error=ServiceUnavailable("cannot resolve base image base:1: registry down"))
    with pytest.raises(UserError, match="base:1"):
        calls.resolve("base:1", bi.BaseImageMemo(tmp_path / "m.json"))


def test_memo_survives_corruption_and_merges_concurrent_writers(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    assert bi.BaseImageMemo(path).get("a:1") is None
    one, two = bi.BaseImageMemo(path), bi.BaseImageMemo(path)
    one.get("a:1"), two.get("b:1")
    one.put("a:1", {"ref": "a:1", "digest": D1})
    two.put("b:1", {"ref": "b:1", "digest": D2})
    one.flush()
    two.flush()
    fresh = bi.BaseImageMemo(path)
    assert fresh.get("a:1")["digest"] == D1 and fresh.get("b:1")["digest"] == D2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_module_import_is_light():
    code = "import sys, copilot_doit.base_images; print(sorted(m for m in ('boto3', 'docker') if m in sys.modules))"
    out = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the registry HEAD, against in-process fake registries -------------------------------------------------

class FakeRegistry(http.server.BaseHTTPRequestHandler):
    """HEAD /v2/<repo>/manifests/<tag> behind Bearer (token service on the same server) or Basic auth."""
    mode = "bearer"
    anonymous_tokens = False
    user, password = "u", "p"
    requests: list = []

    def log_message(self, *args):
        pass

    def _reply(self, status, headers=None, body=b""):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        self.requests.append(("GET", self.path, self.headers.get("Authorization")))
        if self.path.startswith("/token"):
            basic = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            ok = (self.anonymous_tokens or self.headers.get("Authorization") == basic) and "scope=repository%3Ateam%2Fbase%3Apull" in self.path
            return self._reply(200 if ok else 401, body=json.dumps({"token": "tok"}).encode())
        self._reply(404)

    def do_HEAD(self):
        self.requests.append(("HEAD", self.path, self.headers.get("Authorization")))
        auth = self.headers.get("Authorization")
        host = f"127.0.0.1:{self.server.server_address[1]}"
        if self.mode == "bearer" and auth != "Bearer tok":
            return self._reply(401, {"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="fake"'})
        if self.mode == "basic" and auth != "Basic " + base64.b64encode(b"u:p").decode():
            return self._reply(401, {"WWW-Authenticate": 'Basic realm="fake"'})
        if self.path != "/v2/team/base/manifests/1":
            return self._reply(404)
        assert "application/vnd.oci.image.index.v1+json" in self.headers.get("Accept", "")
        self._reply(200, {"Docker-Content-Digest": D1})


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    FakeRegistry.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    cfg = tmp_path / "docker"
    cfg.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    host = f"127.0.0.1:{server.server_address[1]}"
    auth = base64.b64encode(b"u:p").decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    yield host
    server.shutdown()
    server.server_close()


def test_bearer_token_flow_with_basic_credentials_from_docker_config(fake_registry):
    FakeRegistry.mode = "bearer"
    assert bi.registry_digest(f"{fake_registry}/team/base:1") == D1
    assert [r[0] for r in FakeRegistry.requests] == ["HEAD", "GET", "HEAD"]


def test_anonymous_bearer_token_like_docker_hub(fake_registry, tmp_path, monkeypatch):
    FakeRegistry.mode, FakeRegistry.anonymous_tokens = "bearer", True
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
    try:
        assert bi.registry_digest(f"{fake_registry}/team/base:1") == D1
    finally:
        FakeRegistry.anonymous_tokens = False
    assert FakeRegistry.requests[1][2] is None  # the token was asked for without credentials


def test_ecr_token_comes_from_the_given_boto3_session():
    class Session:
        def client(self, service, region_name):
            assert (service, region_name) == ("ecr", "eu-west-1")
            return self

        def get_authorization_token(self, registryIds):
            assert registryIds == ["123456789012"]
            return {"authorizationData": [{"authorizationToken": base64.b64encode(b"AWS:pw").decode()}]}
    host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert bi._ecr_credentials(f"{host}/x:1", host, Session()) == ("AWS", "pw")


def test_basic_auth_from_docker_config(fake_registry):
    FakeRegistry.mode = "basic"
    assert bi.registry_digest(f"{fake_registry}/team/base:1") == D1


def test_missing_tag_is_a_user_error_naming_it(fake_registry):
    FakeRegistry.mode = "basic"
    with pytest.raises(UserError, match="team/base:2"):
        bi.registry_digest(f"{fake_registry}/team/base:2")


def test_unreachable_registry_names_the_reference_quickly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=rf"127\.0\.0\.1:{port}/base:1.*unreachable"):
        bi.registry_digest(f"127.0.0.1:{port}/base:1")
    assert time.monotonic() - started < bi.CONNECT_TIMEOUT + 1


def test_ecr_hosts_use_https_and_a_boto3_token(monkeypatch):
    seen = []
    monkeypatch.setattr(bi, "_ecr_credentials", lambda ref, registry, session: ("AWS", "secret"))
    monkeypatch.setattr(bi, "_http", lambda method, url, headers: seen.append((method, url, headers)) or
                        bi._Response(200, {"docker-content-digest": D2}, b""))
    host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert bi.registry_digest(f"{host}/team/base:1") == D2
    method, url, headers = seen[0]
    assert url == f"https://{host}/v2/team/base/manifests/1"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"AWS:secret").decode()


def test_docker_hub_goes_to_registry_1_over_https(monkeypatch):
    seen = []
    monkeypatch.setattr(bi, "docker_credentials", lambda registry: None)
    monkeypatch.setattr(bi, "_http", lambda method, url, headers: seen.append(url) or
                        bi._Response(200, {"docker-content-digest": D2}, b""))
    assert bi.registry_digest("busybox:1.36") == D2
    assert seen == ["https://registry-1.docker.io/v2/library/busybox/manifests/1.36"]


# --- e2e: the engine and a docker-registry started here ----------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """A docker-registry on a free 127.0.0.1 port, blobs in a tmp dir, stopped by its pid."""

    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.proc = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        binary = shutil.which("docker-registry") or shutil.which("registry")
        cfg = self.root / "registry.yml"
        cfg.write_text(json.dumps({"version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
                                   "storage": {"filesystem": {"rootdirectory": str(self.root / "data")}},
                                   "http": {"addr": self.host}}))
        self.proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("docker-registry did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def engine_up():
    from copilot_doit import engine
    try:
        engine.image_id("copilot-doit-probe:none")
    except ServiceUnavailable as exc:
        missing(f"Docker engine: {exc}")
    if not shutil.which("docker"):
        missing("the docker CLI is not installed")


@pytest.fixture
def registry(tmp_path, engine_up):
    if not (shutil.which("docker-registry") or shutil.which("registry")):
        missing("docker-registry is not installed")
    reg = Registry(tmp_path)
    reg.start()
    yield reg
    reg.stop()


def _docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=check)


def _build_scratch(tmp_path: Path, tag: str) -> str:
    """A FROM-scratch image with a unique file (so its digest is new), built through docker_build."""
    from copilot_doit import docker_build
    from copilot_doit.manifest import BuildConfig
    ctx = tmp_path / ("ctx-" + uuid.uuid4().hex[:6])
    ctx.mkdir()
    (ctx / "stamp").write_text(uuid.uuid4().hex)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY stamp /stamp\n")
    cfg = BuildConfig(dockerfile=ctx / "Dockerfile", context=ctx, args={}, target=None, cache_from=[], platform=None)
    return docker_build.build(cfg, tag, {}, quiet=True)


@pytest.mark.e2e
def test_same_resolution_with_and_without_the_engine_copy_and_memo_needs_no_registry(tmp_path, registry):
    ref = f"{registry.host}/copilot-doit-test/base:{uuid.uuid4().hex[:8]}"
    _build_scratch(tmp_path, ref)
    try:
        _docker("push", ref)
        calls = Calls()
        head = calls.head

        def counted(r):  # the real HEAD, counted
            head(r)
            return bi.registry_digest(r)

        present = bi.resolve(ref, bi.BaseImageMemo(tmp_path / "memo1.json"), registry_head=counted)
        assert present["digest"].startswith("sha256:") and calls.registry == 0
        _docker("rmi", ref)
        memo = bi.BaseImageMemo(tmp_path / "memo2.json")
        absent = bi.resolve(ref, memo, registry_head=counted)
        assert absent == present and calls.registry == 1
        memo.flush()
        registry.stop()  # a no-op run: the memo answers, the registry is not even up
        again = bi.resolve(ref, bi.BaseImageMemo(tmp_path / "memo2.json"), registry_head=counted)
        assert again == present and calls.registry == 1
        fresh = bi.BaseImageMemo(tmp_path / "memo3.json")
        with pytest.raises(ServiceUnavailable, match=f"cannot resolve base image {ref}.*unreachable"):
            bi.resolve(ref, fresh)
    finally:
        _docker("rmi", ref, check=False)


@pytest.mark.e2e
def test_locally_built_base_keys_on_its_image_id_with_the_note(tmp_path, engine_up):
    tag = f"copilot-doit-test/localbase:{uuid.uuid4().hex[:8]}"
    image_id = _build_scratch(tmp_path, tag)
    try:
        got = bi.resolve(tag, bi.BaseImageMemo(tmp_path / "memo.json"),
                         registry_head=lambda r: pytest.fail("no registry call for a local image"))
        assert got == {"ref": tag, "image_id": image_id, "note": bi.LOCAL_ID_NOTE}
    finally:
        _docker("rmi", tag, check=False)
