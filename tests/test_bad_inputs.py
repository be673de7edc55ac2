"""The bad-input catalogue (issue #10 scope 6-7): every mistake is one line naming the file, field (line
where known) and what is allowed, a non-zero exit, no traceback, nothing applied and the cache unchanged.

Each case edits a copy of the sample workspace and runs `doit deploy` in a subprocess with no service
to reach (an empty local-target folder, an engine socket that does not exist): validation happens
before any stage, so a case that got further would show as a start of the emulator or an engine error.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO


def _append(rel: str, text: str):
    return lambda root: (root / rel).write_text((root / rel).read_text() + text)


def _replace(rel: str, old: str, new: str):
    def edit(root):
        body = (root / rel).read_text()
        assert old in body, (rel, old)
        (root / rel).write_text(body.replace(old, new, 1))
    return edit


def _write(rel: str, data: bytes | str):
    def edit(root):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data if isinstance(data, bytes) else data.encode())
    return edit


FE = "manifests/frontend/manifest.yml"
API = "manifests/api/manifest.yml"
WORKER = "manifests/worker/manifest.yml"
MAILER = "manifests/mailer/manifest.yml"
ENV = "manifests/environments/test/manifest.yml"
CFG = "manifests/copilot-doit.yml"

# (id, edit of the workspace or None, extra doit words, text the one error line must contain)
CASES = [
    # command-line values
    ("tag-colon", None, ["tag=a:b"], "field 'tag'"),
    ("tag-slash", None, ["tag=rel/1"], "field 'tag'"),
    ("tag-dash", None, ["tag=-v1"], "field 'tag'"),
    ("tag-dot", None, ["tag=.v1"], "field 'tag'"),
    ("tag-200-chars", None, ["tag=" + "a" * 200], "field 'tag'"),
    ("tag-space", None, ["tag=v 1"], "field 'tag'"),
    ("resource-tag-reserved-app", None, ["resource-tags=copilot-application=x"], "is reserved"),
    ("resource-tag-reserved-env", None, ["resource-tags=copilot-environment=x"], "is reserved"),
    ("resource-tag-reserved-svc", None, ["resource-tags=copilot-service=x"], "is reserved"),
    ("resource-tag-aws-prefix", None, ["resource-tags=aws:thing=x"], "tag limits"),
    ("resource-tag-long-key", None, ["resource-tags=" + "k" * 129 + "=v"], "tag limits"),
    ("resource-tag-long-value", None, ["resource-tags=k=" + "v" * 257], "tag limits"),
    ("resource-tag-no-equals", None, ["resource-tags=novalue"], "is not key=value"),
    ("unknown-workload", None, ["name=nope"], "no workload named 'nope'"),
    ("unknown-env", None, ["env=staging"], "no environment named 'staging'"),
    ("bad-workload-folder-name", _write("manifests/front_end/manifest.yml",
                                        "name: front_end\ntype: Backend Service\nimage:\n  location: x\n"),
     ["name=front_end"], "workload name 'front_end'"),
    ("bad-app-name", _write("manifests/.workspace", "application: Demo_App\n"), [], "invalid application name"),
    ("workspace-without-application", _write("manifests/.workspace", "app: demo\n"), [], "application"),
    # workspace settings
    ("config-unknown-setting", _append(CFG, "colour: blue\n"), [], "is not a known setting"),
    ("config-unknown-target", _replace(CFG, "    target: local\n    region", "    target: mars\n    region"), [],
     "unknown target 'mars'"),
    ("config-env-setting-type", _replace(CFG, "region: us-east-1", "region: [us-east-1]"), [], "must be a string"),
    ("config-unknown-env-setting", _replace(CFG, "region: us-east-1", "zone: a"), [], "is not a known environment setting"),
    ("config-cache-unknown", _append(CFG, "cache:\n  redis: {}\n"), [], "is not a known cache setting"),
    ("config-cache-no-bucket", _append(CFG, "cache:\n  s3: {prefix: x}\n"), [], "bucket"),
    ("config-cache-bad-key-source", _append(CFG, "cache:\n  s3: {bucket: b, hmac_key: {vault: x}}\n"), [],
     "is not a key source"),
    ("config-not-yaml", _write(CFG, "environments: [\n"), [], "copilot-doit.yml"),
    # manifests: YAML itself
    ("manifest-not-yaml", _write(FE, "name: frontend\ntype: [Load Balanced Web Service\n"), [], "frontend/manifest.yml"),
    ("manifest-tab-indent", _write(FE, "name: frontend\n\ttype: x\n"), [], "frontend/manifest.yml"),
    ("manifest-invalid-utf8", _write(FE, b"name: frontend\ntype: Load Balanced Web Service\n# \xff\xfe\n"), [],
     "frontend/manifest.yml"),
    ("manifest-deep-nesting", _write(FE, "name: frontend\ntype: Load Balanced Web Service\nvariables: "
                                     + "[" * 3000 + "]" * 3000 + "\n"), [], "frontend/manifest.yml"),
    ("manifest-empty", _write(FE, ""), [], "frontend/manifest.yml"),
    ("manifest-a-list", _write(FE, "- a\n- b\n"), [], "frontend/manifest.yml"),
    ("manifest-duplicate-key", _append(FE, "cpu: 512\n"), [], "cpu"),
    # manifests: fields
    ("unknown-type", _replace(FE, "type: Load Balanced Web Service", "type: Lambda Function"), [], "type"),
    ("rdws-type", _replace(FE, "type: Load Balanced Web Service", "type: Request-Driven Web Service"), [],
     "Request-Driven Web Service"),
    ("static-site-type", _replace(FE, "type: Load Balanced Web Service", "type: Static Site"), [], "Static Site"),
    ("unknown-field", _append(FE, "colour: blue\n"), [], "colour"),
    ("unknown-nested-field", _replace(FE, "  port: 8080", "  port: 8080\n  colour: blue"), [], "colour"),
    ("cpu-string", _replace(FE, "cpu: 256", "cpu: lots"), [], "cpu"),
    ("fargate-pair", _replace(FE, "memory: 512", "memory: 8192"), [], "memory"),
    ("port-zero", _replace(FE, "port: 8080", "port: 0"), [], "port"),
    ("port-too-big", _replace(FE, "port: 8080", "port: 70000"), [], "port"),
    ("count-negative", _replace(FE, "count: 1", "count: -1"), [], "count"),
    ("count-range-garbage", _replace(FE, "count: 1", "count:\n  range: two-four"), [], "range"),
    ("variables-a-list", _replace(FE, "  LOG_LEVEL: info", "  - LOG_LEVEL"), [], "variables"),
    ("variable-bad-name", _replace(FE, "  LOG_LEVEL: info", "  LOG-LEVEL: info"), [], "LOG-LEVEL"),
    ("undefined-interpolation", _replace(FE, "LOG_LEVEL: info", "LOG_LEVEL: ${NOT_SET_ANYWHERE_XYZ}"), [],
     "NOT_SET_ANYWHERE_XYZ"),
    ("env-override-typo", _replace(FE, "    count:\n      range: 2-4", "    cuont:\n      range: 2-4"), [], "cuont"),
    ("healthcheck-retries-text", _replace(API, "retries: 3", "retries: many"), [], "retries"),
    ("duration-garbage", _replace(API, "interval: 10s\n    retries", "interval: soon\n    retries"), [], "interval"),
    ("placement-unknown", _replace(API, "placement: private", "placement: sideways"), [], "placement"),
    ("rolling-unknown", _replace(API, "rolling: recreate", "rolling: sometimes"), [], "rolling"),
    ("http-path-a-number", _replace(API, "path: api", "path: [api]"), [], "path"),
    ("schedule-garbage", _replace(MAILER, 'schedule: "@daily"', 'schedule: "whenever"'), [], "schedule"),
    ("timeout-garbage", _replace(MAILER, "timeout: 15m", "timeout: later"), [], "timeout"),
    ("retries-negative", _replace(MAILER, "retries: 2", "retries: -2"), [], "retries"),
    ("secret-a-number", _replace(MAILER, "SMTP_PASSWORD: /copilot", "SMTP_PASSWORD: 5\n  OTHER: /copilot"), [],
     "SMTP_PASSWORD"),
    ("secretsmanager-arn-without-secret", _replace(
        MAILER, "SMTP_PASSWORD: /copilot/${COPILOT_APPLICATION_NAME}/${COPILOT_ENVIRONMENT_NAME}/secrets/smtp_password",
        "SMTP_PASSWORD:\n    secretsmanager: arn:aws:secretsmanager:us-east-1:123456789012:db-password"), [],
     "SMTP_PASSWORD"),
    ("build-args-a-list", _replace(MAILER, "      GREETING: hello", "      - GREETING"), [], "args"),
    ("subscribe-unknown-service", _replace(WORKER, "service: frontend", "service: front_end"), [],
     "no workload named 'front_end'"),
    ("subscribe-unknown-topic", _replace(WORKER, "- name: orders", "- name: invoices"), [],
     "publishes no topic named 'invoices'"),
    # paths
    ("missing-dockerfile", _replace(FE, "build: manifests/frontend/src/Dockerfile", "build: manifests/frontend/src/Nope"),
     [], "Nope"),
    ("context-is-root", _replace(MAILER, "context: manifests/mailer/src", "context: /"), [], "filesystem root"),
    ("missing-env-file", _replace(API, "env_file: manifests/api/api.env", "env_file: manifests/api/none.env"), [],
     "none.env"),
    # environment manifests
    ("env-unknown-field", _append(ENV, "colour: blue\n"), [], "colour"),
    ("env-bad-cidr", _replace("manifests/environments/prod/manifest.yml", "cidr: 10.1.0.0/16", "cidr: 10.1.0.0/99"),
     ["env=prod"], "cidr"),
    ("env-not-yaml", _write(ENV, "name: test\ntype: [Environment\n"), [], "environments/test/manifest.yml"),
    # the application domain (copilot-doit.yml `application: {domain: ...}`) and Copilot's alias checks
    ("config-application-not-a-mapping", _append(CFG, "application: example.com\n"), [],
     "field 'application': must be a mapping"),
    ("config-application-unknown-setting", _append(CFG, "application:\n  name: demo\n"), [],
     "field 'application.name': is not a known application setting"),
    ("config-application-domain-not-dns", _append(CFG, "application:\n  domain: my_domain\n"), [],
     "field 'application.domain': 'my_domain' is not a DNS name"),
    ("alias-without-domain", _replace(FE, "  healthcheck: /healthz", "  healthcheck: /healthz\n  alias: shop.example.com"),
     [], "field 'http.alias': cannot specify \"alias\" when application is not associated with a domain"),
    ("redirect-without-domain", _replace(FE, "  healthcheck: /healthz", "  healthcheck: /healthz\n  redirect_to_https: true"),
     [], "field 'http.redirect_to_https': cannot configure http to https redirect"),
    ("nlb-alias-without-domain", _append(FE, "nlb:\n  port: 443/tcp\n  alias: shop.example.com\n"), [],
     "field 'nlb.alias': cannot specify nlb.alias when application is not associated with a domain"),
    ("alias-outside-the-domain", lambda root: (
        _append(CFG, "application:\n  domain: example.com\n")(root),
        _replace(FE, "  healthcheck: /healthz", "  healthcheck: /healthz\n  alias: [shop.example.com, shop.example.org]")(root)),
     [], "field 'http.alias[1]': alias \"shop.example.org\" is not supported in hosted zones managed by Copilot"),
    ("alias-hosted-zone-without-certificates", lambda root: (
        _append(CFG, "application:\n  domain: example.com\n")(root),
        _replace(FE, "  healthcheck: /healthz", "  healthcheck: /healthz\n  alias: shop.example.com\n  hosted_zone: Z0123")(root)),
     [], "field 'http.hosted_zone': cannot specify alias hosted zones ['Z0123']"),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs") / "repo"
    shutil.copytree(REPO / "manifests", root / "manifests", ignore=shutil.ignore_patterns("busybox"))
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    return root


@pytest.mark.parametrize("edit, words, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_clear_line_nothing_applied(pristine, tmp_path, edit, words, needle):
    root = tmp_path / "repo"
    shutil.copytree(pristine, root)
    if edit:
        edit(root)
    cache = root / "cache"
    cache.mkdir()
    (cache / "keep").write_text("the user's")
    before = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*"))
    local = tmp_path / "local"
    env = dict(os.environ, PYTHONPATH=str(REPO), COPILOT_DOIT_LOCAL_DIR=str(local),
               DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock", COPILOT_DOIT_API_LOG=str(tmp_path / "api.jsonl"))
    env.pop("COPILOT_DOIT_CACHE", None)
    args = ["deploy", *words]
    if not any(w.startswith("env=") for w in words):
        args.append("env=test")
    p = subprocess.run([sys.executable, "-m", "doit", *args], cwd=root, env=env, capture_output=True,
                       text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, out
    assert needle in errors[0], out
    assert not local.exists(), "a service was started"
    assert not (tmp_path / "api.jsonl").exists(), (tmp_path / "api.jsonl").read_text()
    after = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*"))
    assert [a for a in after if not a.startswith(".doit.db")] == before, after


def test_the_catalogue_has_at_least_sixty_cases():
    assert len(CASES) >= 60
