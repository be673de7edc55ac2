"""Manifests: interpolation, overrides, validation with file/field/line (pure, no services)."""
from __future__ import annotations

from pathlib import Path

import pytest

from copilot_doit import manifest, yamlsrc
from copilot_doit.errors import UserError
from copilot_doit.manifest import load_workload, merge, schedule_expression

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="svc"):
    p = tmp_path / name / "manifest.yml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


LBWS = """\
name: svc
type: Load Balanced Web Service
image:
  build: Dockerfile
  port: 80
http:
  path: /
"""


def test_sample_manifests_resolve_per_environment():
    for env in ("test", "prod"):
        m = load_workload(REPO / "manifests/frontend/manifest.yml", "demo", env, "frontend")
        assert m.type == manifest.LBWS and m.data["cpu"] == 256
    prod = load_workload(REPO / "manifests/frontend/manifest.yml", "demo", "prod", "frontend")
    assert prod.data["variables"]["LOG_LEVEL"] == "warn" and prod.data["count"]["range"] == "2-4"
    job = load_workload(REPO / "manifests/mailer/manifest.yml", "demo", "test", "mailer")
    assert job.data["secrets"]["SMTP_PASSWORD"] == "/copilot/demo/test/secrets/smtp_password"


def test_on_is_a_string_key_as_in_yaml_1_2():
    data, _ = yamlsrc.load("x.yml", "on:\n  schedule: '@daily'\nflag: yes\nreal: true\n", variables={})
    assert data == {"on": {"schedule": "@daily"}, "flag": "yes", "real": True}


def test_interpolation_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("SGS", '["sg-1a", "sg-2b"]')
    text = LBWS.replace("port: 80", "port: ${PORT}") + "variables:\n  LITERAL: \\${NOPE}\n  APP: ${COPILOT_APPLICATION_NAME}\n"
    m = load_workload(write(tmp_path, text), "demo", "test")
    assert m.data["image"]["port"] == 8080                      # re-typed after interpolation
    assert m.data["variables"] == {"LITERAL": "${NOPE}", "APP": "demo"}
    data, _ = yamlsrc.load("x.yml", "groups: ${SGS}\n", variables={"SGS": '["sg-1a", "sg-2b"]'})
    assert data == {"groups": ["sg-1a", "sg-2b"]}                # JSON array promotion


def test_undefined_variable_names_file_line_and_field(tmp_path, monkeypatch):
    monkeypatch.delenv("UNDEFINED_X", raising=False)
    p = write(tmp_path, LBWS + "variables:\n  A: ${UNDEFINED_X}\n")
    with pytest.raises(UserError) as e:
        load_workload(p, "demo", "test")
    assert str(e.value).endswith(':9: field \'variables.A\': environment variable "UNDEFINED_X" is not defined '
                                 "(allowed: export it before deploying, or escape it as \\${UNDEFINED_X})")


def test_predefined_variable_conflict(tmp_path, monkeypatch):
    monkeypatch.setenv("COPILOT_ENVIRONMENT_NAME", "prod")
    with pytest.raises(UserError, match="COPILOT_ENVIRONMENT_NAME is set to 'prod'"):
        load_workload(write(tmp_path, LBWS), "demo", "test")


def test_override_merge_rules():
    base = {"image": {"build": "Dockerfile", "port": 80}, "variables": {"A": "1", "B": "2"},
            "count": {"range": "1-5", "cpu_percentage": 70}, "command": ["a", "b"],
            "secrets": {"S": {"from_cfn": "x"}}}
    over = {"image": {"location": "nginx"}, "variables": {"B": "3"}, "count": {"spot": 2}, "command": ["c"],
            "secrets": {"S": {"secretsmanager": "y"}}, "cpu": None}
    out = merge(base, over)
    assert out["image"] == {"port": 80, "location": "nginx"}          # build cleared by location
    assert out["variables"] == {"A": "1", "B": "3"}                   # maps merge key by key
    assert out["count"] == {"spot": 2}                                # spot clears the autoscaling fields
    assert out["command"] == ["c"]                                    # lists replace
    assert out["secrets"]["S"] == {"secretsmanager": "y"}
    assert "cpu" not in out                                           # null keeps the base
    assert merge({"http": {"path": "/"}}, {"http": False}) == {"http": False}


def test_override_lines_point_at_the_override(tmp_path):
    text = LBWS + "environments:\n  prod:\n    cpu: 3\n"
    load_workload(write(tmp_path, text), "demo", "test")             # test is fine
    with pytest.raises(UserError) as e:
        load_workload(write(tmp_path, text), "demo", "prod")
    assert ":10: field 'cpu': 3 is not a Fargate CPU size" in str(e.value)


@pytest.mark.parametrize("text,needle", [
    (LBWS + "memory: 300\n", ":8: field 'memory': 300 MiB is not valid with cpu 256 (allowed: 512, 1024, 2048)"),
    (LBWS + "nlb:\n  port: 443/tcp\n  alias: {name: x.example.com}\n", ":10: field 'nlb.alias': expected a domain or a list of domains"),
    (LBWS + "nlb:\n  port: 443/tls\n", ":9: field 'nlb.port': '443/tls' is not a port such as 80/tcp (tcp, udp or tcp_udp)"),
    (LBWS + "network:\n  vpc:\n    placement:\n      subnets:\n        from_tags: {k: v}\n", "field 'network.vpc.placement.subnets.from_tags': is not supported by copilot-doit"),
    (LBWS + "sidecars:\n  s:\n    image: x\n    mount_points: [{source_volume: v, path: /p}]\n", "field 'sidecars.s.mount_points[0].source_volume': 'v' is not a volume"),
    (LBWS + "bogus: 1\n", ":8: field 'bogus': is not a supported field for a Load Balanced Web Service (allowed: name, type,"),
    (LBWS + "cpu: lots\n", ":8: field 'cpu': expected an integer, got 'lots'"),
    (LBWS.replace("  port: 80\n", ""), "field 'image.port': is required for a Load Balanced Web Service with http"),
    (LBWS + "http:\n  path: /\n", ":8: field 'http': duplicate key 'http'"),
    (LBWS + "count: {range: 1-10}\n", "field 'count': an autoscaling range needs a target"),
    (LBWS + "logging:\n  retention: 2\n", ":9: field 'logging.retention': 2 is not allowed (allowed: 1, 3, 5"),
    (LBWS + "variables:\n  1BAD: x\n", ":9: field 'variables.1BAD': invalid name '1BAD'"),
    (LBWS + "image:\n  location: x\n", "duplicate key 'image'"),
    ("name: svc\ntype: Static Site\n", ":2: field 'type': workload type 'Static Site' is not supported: it deploys to S3"),
    ("name: svc\ntype: Request-Driven Web Service\n", "workload type 'Request-Driven Web Service' is not supported"),
    ("name: svc\ntype: Lambda\n", ":2: field 'type': unknown workload type 'Lambda'"),
    ("name: other\ntype: Backend Service\nimage: {location: x}\n", ":1: field 'name': 'other' must equal the folder name 'svc'"),
    ("name: svc\ntype: Backend Service\nimage: [1, 2\n", "invalid YAML"),
    ("name: svc\ntype: Scheduled Job\nimage: {location: x}\non: {schedule: 'every day'}\n", "field 'on.schedule': 'every day' is not a schedule"),
])
def test_bad_manifests_one_clear_error(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_workload(p, "demo", "test", "svc")
    msg = str(e.value)
    assert needle in msg, msg
    assert str(p) in msg


@pytest.mark.parametrize("given,wanted", [
    ("@daily", "cron(0 0 * * ? *)"), ("@every 90m", "rate(90 minutes)"), ("@every 1m", "rate(1 minute)"),
    ("0 12 * * MON", "cron(0 12 ? * MON *)"), ("0 6 * * 1", "cron(0 6 ? * 2 *)"), ("30 1 15 * *", "cron(30 1 15 * ? *)"),
    ("rate(5 minutes)", "rate(5 minutes)"), ("none", "none"), ("@weekly", "cron(0 0 ? * 1 *)"),
])
def test_schedules(given, wanted):
    assert schedule_expression(given) == wanted


@pytest.mark.parametrize("standard, aws", [
    ("0 6 * * 1", "cron(0 6 ? * 2 *)"),            # Monday
    ("0 6 * * 0", "cron(0 6 ? * 1 *)"),            # Sunday as 0 ...
    ("0 6 * * 7", "cron(0 6 ? * 1 *)"),            # ... and as 7
    ("0 0 * * */2", "cron(0 0 ? * */2 *)"),        # a step is a count, not a day
    ("0 0 * * 1-5/2", "cron(0 0 ? * 2-6/2 *)"),
    ("0 0 * * 0-6", "cron(0 0 ? * 1-7 *)"),
    ("0 0 * * 5-7", "cron(0 0 ? * 6-7,1 *)"),      # Friday to Sunday wraps in AWS's numbering
    ("0 0 * * 1,3", "cron(0 0 ? * 2,4 *)"),
    ("0 0 * * MON-FRI", "cron(0 0 ? * MON-FRI *)"),
    ("0 0 * * 1#2", "cron(0 0 ? * 2#2 *)"),        # the second Monday
])
def test_a_standard_cron_day_of_week_becomes_aws_numbering(standard, aws):
    from copilot_doit.manifest import schedule_expression
    assert schedule_expression(standard) == aws
