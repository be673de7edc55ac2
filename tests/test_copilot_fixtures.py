"""Every real Copilot manifest in shared/copilot-fixtures either renders for each of its environments
and passes cfn-lint with zero errors, or is rejected naming the unsupported field/type and its line."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from copilot_doit import domain, manifest, templates
from copilot_doit.errors import UserError
from copilot_doit.templates import env as env_t
from copilot_doit.templates import workload

REPO = Path(__file__).resolve().parents[1]
FIXTURES = next((p for p in (REPO.parent / "shared" / "copilot-fixtures", REPO / "../shared/copilot-fixtures")
                 if p.is_dir()), None)
TABLE = Path(__file__).resolve().parent / "fixture_table.md"
# What the e2e fixtures take from the shell (Copilot interpolates them): values of the right shape.
VARS = {"DOMAINNAME": "example.com", "TIMENOW": "1700000000", "BUCKETNAME": "fixture-bucket",
        "IMPORTED_CERT_ARN": "arn:aws:acm:us-east-1:111122223333:certificate/11111111-2222-3333-4444-555555555555",
        "SSM_NAME": "fixture-ssm-name", "SECRETS_MANAGER_NAME": "fixture-secret", "TAG": "fixture-tag"}
# What a deploy resolves from AWS (the pipeline passes it in): an imported ALB's listener, its DNS name.
IMPORTED_ALB = {"listener_arn": "arn:aws:elasticloadbalancing:us-west-2:123456789012:listener/app/demo/0123456789abcdef/0123456789abcdef",
                "dns_name": "demo-123.us-west-2.elb.amazonaws.com", "hosted_zone_id": "Z1H1FL5HABSF5",
                "full_name": "app/demo/0123456789abcdef"}

# Copilot's e2e apps created with an application domain (`copilot app init --domain $DOMAINNAME`): their
# aliases are checked against it (domain.check_workload) and rendered as with `application: {domain: ...}`.
APP_DOMAINS = {"e2e/app-with-domain": VARS["DOMAINNAME"]}
# What a deploy looks up for the domain (Target.hosted_zone_id): the app's zone and the domain's.
ZONE_IDS = {"app": "Z0FIXTUREAPPZONE000", "root": "Z0FIXTUREROOTZONE00"}

# What each fixture gives: "ok" (renders for every environment, cfn-lint clean), "ok, placeholder ids"
# (renders; cfn-lint's only errors are on the fixture's own `mock-*` ids, which are not AWS ids), or the
# start of the rejection (after "file:line: ").
EXPECTED = {
    "e2e/app-with-domain/copilot/frontend/manifest.yml": "ok",
    "e2e/app-with-domain/copilot/hello/manifest.yml": "ok",
    "e2e/apprunner/copilot/front-end/manifest.yml": "field 'type': workload type 'Request-Driven Web Service' is not supported",
    "e2e/cloudfront/copilot/environments/test/manifest.yml": "ok",
    "e2e/exec/copilot/hello/manifest.yml": "ok",
    "e2e/import-certs/copilot/environments/test/manifest.yml": "ok",
    "e2e/import-certs/copilot/frontend/manifest.yml": "ok",
    "e2e/isolated/copilot/backend/manifest.yml": "ok",
    "e2e/multi-svc-app/copilot/front-end/manifest.yml": "ok",
    "e2e/static-site/copilot/svc/manifest.yml": "field 'type': workload type 'Static Site' is not supported",
    "manifest-testdata/backend-svc-customhealthcheck.yml": "ok",
    "manifest-testdata/environment-import-vpc.yml": "ok, placeholder ids",
    "manifest-testdata/lb-svc.yml": "ok",
    "manifest-testdata/scheduled-job-fully-specified-placement.yml": "ok",
    "manifest-testdata/worker-svc-subscribe.yml": "ok",
    "stack-testdata/workloads/backend/http-full-config-manifest.yml": "ok",
    "stack-testdata/workloads/job-manifest.yml": "ok",
    "stack-testdata/workloads/svc-manifest.yml": "ok",
    "stack-testdata/workloads/worker-manifest.yml": "ok",
}
# What the fixtures exercise (the README table's second column).
FEATURES = {
    "e2e/app-with-domain/copilot/frontend/manifest.yml": "alias list, `additional_rules` with their own aliases",
    "e2e/app-with-domain/copilot/hello/manifest.yml": "`environments.prod` override of `http.alias`",
    "e2e/apprunner/copilot/front-end/manifest.yml": "App Runner",
    "e2e/cloudfront/copilot/environments/test/manifest.yml": "env `cdn` (static assets, TLS termination), ALB ingress restricted to CloudFront",
    "e2e/exec/copilot/hello/manifest.yml": "minimal LBWS, `exec`",
    "e2e/import-certs/copilot/environments/test/manifest.yml": "env `http.public.certificates` (HTTPS listener)",
    "e2e/import-certs/copilot/frontend/manifest.yml": "`alias` + `hosted_zone` (Route 53 records)",
    "e2e/isolated/copilot/backend/manifest.yml": "Backend Service on the internal ALB, private placement",
    "e2e/multi-svc-app/copilot/front-end/manifest.yml": "`nlb` (UDP), `network.connect`, autoscaling, managed EFS volume",
    "e2e/static-site/copilot/svc/manifest.yml": "S3 + CloudFront",
    "manifest-testdata/backend-svc-customhealthcheck.yml": "container healthcheck with `retries: 0`, `network.connect`",
    "manifest-testdata/environment-import-vpc.yml": "imported VPC, certificates, container insights",
    "manifest-testdata/lb-svc.yml": "empty `http.path`, `network.connect`",
    "manifest-testdata/scheduled-job-fully-specified-placement.yml": "cron schedule, retries, timeout, placement override",
    "manifest-testdata/worker-svc-subscribe.yml": "`subscribe.topics`",
    "stack-testdata/workloads/backend/http-full-config-manifest.yml": "`allowed_source_ips`, `additional_rules`, full ALB healthcheck, sidecar",
    "stack-testdata/workloads/job-manifest.yml": "`image.depends_on`, managed EFS, FIFO topic, `from_cfn` secrets/groups/variables, sidecar mounts",
    "stack-testdata/workloads/svc-manifest.yml": "imported `alb`, aliases with `hosted_zone`, `spot`, `spot_from`, `response_time`, FireLens, rollback alarms, Service Connect alias, bind mount",
    "stack-testdata/workloads/worker-manifest.yml": "`queue_delay`, `spot_from`, FIFO topics/queues, `filter_policy`, per-topic queues, EFS `from_cfn`, rollback alarms",
}


@pytest.fixture(autouse=True)
def _fixtures_present():
    if FIXTURES is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("shared/copilot-fixtures is not beside the repo (CI=true: a failure, not a skip)")
        pytest.skip("shared/copilot-fixtures is not beside the repo")


def manifests():
    if FIXTURES is None:
        return []
    return sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.yml")
                  if "addon" not in str(p.relative_to(FIXTURES)) and not str(p).startswith(str(FIXTURES / "stack-golden")))


@pytest.fixture(scope="module")
def lint():
    from cfnlint.api import lint as run
    return lambda body: [(m.rule.id, m.linenumber, m.message) for m in run(body, regions=["us-east-1"])
                         if m.rule.severity == "error"]


def test_every_fixture_is_listed():
    assert manifests() == sorted(EXPECTED)


def render_fixture(rel: str) -> list[tuple[str, str]]:
    """[(env, template body)] for every environment of the fixture (UserError when it is rejected)."""
    path = FIXTURES / rel
    raw = yaml.safe_load(path.read_text()) or {}
    if raw.get("type") == "Environment":
        env = raw.get("name", "test")
        em = manifest.load_environment(path, "my-app", env)
        t, _ = env_t.render("my-app", env, em.data, cloudfront_prefix_list="pl-3b927c52")
        return [(env, templates.dump(t))]
    out = []
    in_workspace = rel.startswith("e2e/")  # a Copilot workspace: `copilot deploy` checks it against its env
    app_domain = next((d for prefix, d in APP_DOMAINS.items() if rel.startswith(prefix + "/")), None)
    for env in ["test"] + [e for e in (raw.get("environments") or {}) if e != "test"]:
        m = manifest.load_workload(path, "my-app", env)
        env_data, https, extra = {}, False, {}
        if in_workspace:
            env_file = path.parent.parent / "environments" / env / "manifest.yml"
            env_data = manifest.load_environment(env_file, "my-app", env).data if env_file.exists() else {}
            domain.check_workload(m, env_data, "my-app", app_domain)
            https = env_t.https(env_data, m.type, app_domain)
            extra = {"app_domain": app_domain, "zone_ids": ZONE_IDS} if app_domain else {}
        t, params = workload.render(workload.RenderInput(m, "my-app", env, "img@sha256:" + "0" * 64,
                                                         imported_alb=IMPORTED_ALB, https=https, extra=extra))
        assert set(t["Parameters"]) == set(params)
        out.append((env, templates.dump(t)))
    return out


def outcome(rel: str, lint=None) -> tuple[str, list]:
    try:
        rendered = render_fixture(rel)
    except UserError as exc:
        msg = str(exc)
        assert re.search(r"\.ya?ml:\d+: field '", msg), msg          # names file, line and field
        return msg.split(": ", 1)[1], []
    errors = []
    for env, body in rendered:
        errors += [(env,) + e for e in (lint(body) if lint else [])]
    if errors and all(e[3].startswith("'mock-") for e in errors):
        return "ok, placeholder ids", [env for env, _ in rendered]
    assert errors == [], errors
    return "ok", [env for env, _ in rendered]


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_fixture_renders_lint_clean_or_is_rejected_with_field_and_line(rel, lint, monkeypatch):
    for k, v in VARS.items():
        monkeypatch.setenv(k, v)
    got, _ = outcome(rel, lint)
    assert got.startswith(EXPECTED[rel]), got


def test_fixture_table_is_written(monkeypatch):
    """tests/fixture_table.md: the README's table of Copilot's own manifests, regenerated from EXPECTED and
    what really renders (the lint result is asserted by the test above)."""
    for k, v in VARS.items():
        monkeypatch.setenv(k, v)
    rows = ["| fixture | exercises | result |", "|---|---|---|"]
    for rel in sorted(EXPECTED):
        got, envs = outcome(rel)
        if got.startswith("field 'type'"):
            result = "rejected by type: " + got.split("'")[3]
        elif EXPECTED[rel] == "ok, placeholder ids":
            result = "renders; cfn-lint's only errors are on the fixture's `mock-*` ids"
        else:
            assert EXPECTED[rel] == "ok", (rel, got)
            result = f"renders for {', '.join(envs)}, cfn-lint clean"
        rows.append(f"| `{rel}` | {FEATURES[rel]} | {result} |")
    text = "\n".join(rows) + "\n"
    TABLE.write_text(text)
    assert TABLE.read_text() == text


# Parameters Copilot sends that this renderer does not (see README "Differences from Copilot"):
# ArtifactKeyARN (no KMS key: templates stay in the app bucket / CAS), EnvFileARN* / LoggingEnvFileARN and
# AddonsTemplateURL when unused, DNSDelegated/HTTPSEnabled (the listener is chosen at render time), TaskCount
# on jobs.
DOCUMENTED = {"ArtifactKeyARN", "EnvFileARN", "EnvFileARNFornginx", "EnvFileARNForoperation", "EnvFileARNForfluentbit",
              "LoggingEnvFileARN", "AddonsTemplateURL", "DNSDelegated", "HTTPSEnabled"}
# Parameters this renderer adds: an imported ALB's listener and DNS name (Copilot resolves them in Go and
# writes them into the template); the listener rules' priorities (Copilot's custom resource picks them,
# copilot-doit's deploy settles them: rule_priorities.py).
ADDED = {"ImportedALBListenerArn", "ImportedALBDNSName", "ImportedALBHostedZoneID", "RulePriority", "RulePriority1",
         "RulePriority2", "RulePriority3"}


@pytest.mark.parametrize("golden,source,env,extra", [
    ("worker-test.params.json", "worker-manifest.yml", "test", set()),
    ("svc-test.params.json", "svc-manifest.yml", "test", set()),
    ("svc-prod.params.json", "svc-manifest.yml", "prod", set()),
    ("job-test.params.json", "job-manifest.yml", "test", {"TaskCount"}),
    ("backend/http-full-config-params.json", "backend/http-full-config-manifest.yml", "my-env", {"RulePath"}),
])
def test_golden_parameters_match_copilot(monkeypatch, golden, source, env, extra):
    """The golden params of Copilot's own tests, for the fixture manifests as they are. RulePath: Copilot
    passes the path as written ("/http-full-config-path"), this renderer without slashes (its listener
    rule adds them)."""
    import json
    monkeypatch.setenv("TAG", "fixture-tag")
    want = json.loads((FIXTURES / "stack-testdata/workloads" / golden).read_text())
    m = manifest.load_workload(FIXTURES / "stack-testdata/workloads" / source, "my-app", env)
    image = want["Parameters"]["ContainerImage"] or "img"
    _, params = workload.render(workload.RenderInput(m, "my-app", env, image, imported_alb=IMPORTED_ALB))
    if not want["Parameters"]["ContainerImage"]:
        params["ContainerImage"] = ""                         # Copilot's golden files have no pushed image
    assert {k: v for k, v in want["Parameters"].items() if k not in DOCUMENTED | extra} == \
        {k: v for k, v in params.items() if k not in ADDED | extra}
