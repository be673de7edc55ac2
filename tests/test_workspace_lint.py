"""Workspace discovery, settings validation, the imported-VPC environment, and lint failures (pure)."""
from __future__ import annotations

from pathlib import Path

import pytest

from copilot_doit import manifest, templates
from copilot_doit.cache import Cache
from copilot_doit.errors import StageFailed, UserError
from copilot_doit.templates import env as env_t
from copilot_doit.workspace import find_workspace_dir, load_workspace


def make_copilot_ws(root: Path) -> Path:
    ws = root / "copilot"
    (ws / "svc").mkdir(parents=True)
    (ws / "environments" / "dev").mkdir(parents=True)
    (ws / ".workspace").write_text("application: shop\n")
    (ws / "svc" / "manifest.yml").write_text("name: svc\ntype: Backend Service\nimage: {location: nginx}\n")
    (ws / "environments" / "dev" / "manifest.yml").write_text("name: dev\ntype: Environment\n")
    return ws


def test_copilot_folder_found_walking_up_from_any_subfolder(tmp_path, monkeypatch):
    monkeypatch.delenv("COPILOT_DOIT_WORKSPACE", raising=False)
    ws = make_copilot_ws(tmp_path)
    deep = tmp_path / "services" / "svc" / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_workspace_dir() == ws
    w = load_workspace()
    assert (w.app, w.workloads, w.environments, w.root) == ("shop", ["svc"], ["dev"], tmp_path)
    monkeypatch.chdir(ws / "svc")
    assert find_workspace_dir() == ws
    too_deep = tmp_path / "a" / "b" / "c" / "d" / "e" / "f" / "g"
    too_deep.mkdir(parents=True)
    monkeypatch.chdir(too_deep)
    with pytest.raises(UserError, match="no workspace found"):
        find_workspace_dir()


@pytest.mark.parametrize("text,needle", [
    ("environments:\n  dev:\n    target: moon\n", ":3: field 'environments.dev.target': unknown target 'moon' (allowed: local, aws)"),
    ("environments:\n  dev:\n    regoin: x\n", ":3: field 'environments.dev.regoin': is not a known environment setting"),
    ("environments:\n  dev:\n    account: 123\n", ":3: field 'environments.dev.account': must be a string"),
    ("cache:\n  s3:\n    prefix: x\n", ":2: field 'cache.s3': needs at least 'bucket: <name>'"),
    ("cache:\n  s3:\n    bucket: b\n    expected_owner: 111122223333\n", ":4: field 'cache.s3.expected_owner': must be a string (quote account ids)"),
    ("cache:\n  redis: {}\n", ":2: field 'cache.redis': is not a known cache setting (allowed: s3)"),
    ("targets: {}\n", ":1: field 'targets': is not a known setting (allowed: environments, cache, application)"),
])
def test_bad_workspace_settings(tmp_path, monkeypatch, text, needle):
    ws = make_copilot_ws(tmp_path)
    (ws / "copilot-doit.yml").write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        load_workspace()
    assert needle in str(e.value)


def env_with_vpc(tmp_path, vpc: str) -> dict:
    """The data of an environment manifest `test` whose network.vpc block is `vpc` (YAML, 4-space indented)."""
    p = tmp_path / "manifest.yml"
    p.write_text("name: test\ntype: Environment\nnetwork:\n  vpc:\n" + vpc)
    return manifest.load_environment(p, "app", "test").data


def test_imported_vpc_environment_renders_lint_clean(tmp_path):
    data = env_with_vpc(tmp_path, """\
    id: vpc-0123456789abcdef0
    subnets:
      public: [{id: subnet-0aaaaaaaaaaaaaaaa}, {id: subnet-0bbbbbbbbbbbbbbbb}]
      private: [{id: subnet-0cccccccccccccccc}, {id: subnet-0dddddddddddddddd}]
""")
    t, _ = env_t.render("app", "test", data, public_alb=True, internal_alb=False)
    assert "VPC" not in t["Resources"] and "InternalLoadBalancer" not in t["Resources"]
    assert t["Resources"]["PublicLoadBalancer"]["Properties"]["Subnets"] == ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
    assert t["Outputs"]["VpcId"]["Value"] == "vpc-0123456789abcdef0"
    from cfnlint.api import lint
    assert [m.rule.id for m in lint(templates.dump(t), regions=["us-east-1"])] == []


def test_lint_errors_stop_with_rule_line_and_message(tmp_path, capsys):
    from copilot_doit.linting import lint_template
    cache = Cache(tmp_path)
    bad = "Resources:\n  Log:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      RetentionInDays: sixty\n"
    with pytest.raises(StageFailed, match=r"cfn-lint found 2 error\(s\) in bad.yml; nothing was deployed"):
        lint_template(cache, bad, "us-east-1", "bad.yml")
    out = capsys.readouterr().out
    assert "bad.yml:5: E3012 error: 'sixty' is not of type 'integer'" in out, out
    # The report is cached: a second run fails the same way without linting again.
    with pytest.raises(StageFailed):
        lint_template(cache, bad, "us-east-1", "bad.yml")


def test_new_vpc_subnets_take_cidr_and_az_from_the_manifest(tmp_path):
    data = env_with_vpc(tmp_path, """\
    cidr: 10.2.0.0/16
    subnets:
      public: [{cidr: 10.2.0.0/24, az: us-east-1a}, {cidr: 10.2.1.0/24, az: us-east-1b}]
      private: [{cidr: 10.2.2.0/24}, {cidr: 10.2.3.0/24}]
""")
    t, _ = env_t.render("app", "test", data)
    props = t["Resources"]["PublicSubnet2"]["Properties"]
    assert (props["CidrBlock"], props["AvailabilityZone"]) == ("10.2.1.0/24", "us-east-1b")
    assert t["Resources"]["PrivateSubnet1"]["Properties"]["AvailabilityZone"] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
