"""`copilot-doit svc|job|env package`: Copilot's file names, nothing started or changed without
`--upload-assets`, and with it the very template `deploy` creates the stack from (issue #8 scope 1)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash

from conftest import REPO, marks

COPILOT_FIXTURES = REPO.parent / "shared" / "copilot-fixtures"


def _cli(root: Path, *args: str, **env) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(REPO), **env)
    e.pop("COPILOT_DOIT_CACHE", None)
    return subprocess.run([sys.executable, "-m", "copilot_doit.cli", *args], cwd=root, env=e,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def offline(tmp_path):
    """A copy of the sample workspace with no service to reach: an empty local-target folder and an
    engine socket that does not exist, so anything that tried to start or ask one would show."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "manifests", root / "manifests", ignore=shutil.ignore_patterns("busybox"))
    local = tmp_path / "local"
    env = {"COPILOT_DOIT_LOCAL_DIR": str(local), "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    return root, local, env


def test_svc_package_writes_copilots_files_and_starts_nothing(offline, tmp_path):
    root, local, env = offline
    out = tmp_path / "out"
    p = _cli(root, "svc", "package", "-n", "frontend", "-e", "test", "--output-dir", str(out), **env)
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in out.iterdir()) == ["frontend-test.params.json", "frontend-test.stack.yml",
                                                    "frontend.addons.stack.yml"]
    doc = json.loads((out / "frontend-test.params.json").read_text())
    assert set(doc) == {"Parameters", "Tags"}
    # No image pushed by this cache: Copilot writes "" then; the addons URL needs the (stopped) emulator.
    assert doc["Parameters"]["ContainerImage"] == "" and doc["Parameters"]["AddonsTemplateURL"] == ""
    assert doc["Tags"] == {"copilot-application": "demo", "copilot-environment": "test", "copilot-service": "frontend"}
    assert "AWS::ECS::Service" in (out / "frontend-test.stack.yml").read_text()
    assert "ContainerImage \"\"" in p.stderr or "ContainerImage ''" in p.stderr, p.stderr
    assert not local.exists() or not any(local.iterdir()), "the local target was started"


def test_svc_package_with_tag_and_to_stdout(offline):
    root, _, env = offline
    p = _cli(root, "svc", "package", "-n", "api", "-e", "prod", "--tag", "v1.2", **env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("AWSTemplateFormatVersion")
    params = json.loads(p.stdout[p.stdout.index("\n{\n") + 1:])   # the template, then the parameters
    assert params["Parameters"]["ContainerImage"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/demo/api:v1.2"
    assert params["Parameters"]["EnvName"] == "prod"


def test_env_package_and_job_package(offline, tmp_path):
    root, _, env = offline
    p = _cli(root, "env", "package", "-n", "test", "--output-dir", str(tmp_path / "e"), **env)
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in (tmp_path / "e").iterdir()) == ["test.env.params.json", "test.env.yml"]
    assert json.loads((tmp_path / "e" / "test.env.params.json").read_text())["Parameters"] == {
        "AppName": "demo", "EnvironmentName": "test"}
    p = _cli(root, "job", "package", "-n", "mailer", "-e", "test", "--output-dir", str(tmp_path / "j"), **env)
    assert p.returncode == 0, p.stderr
    assert "AWS::StepFunctions::StateMachine" in (tmp_path / "j" / "mailer-test.stack.yml").read_text()


@pytest.mark.parametrize("args, message", [
    (["svc", "package", "-n", "mailer", "-e", "test"], "'mailer' is a Scheduled Job, not a service"),
    (["job", "package", "-n", "api", "-e", "test"], "'api' is a Backend Service, not a job"),
    (["svc", "package", "-n", "frontend"], "field 'env': which environment?"),
    (["svc", "package", "-n", "nope", "-e", "test"], "nope"),
    (["env", "package", "-n", "staging"], "staging"),
])
def test_package_mistakes_are_one_line(offline, args, message):
    root, _, env = offline
    p = _cli(root, *args, **env)
    assert p.returncode != 0
    assert message in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.e2e
def test_upload_assets_gives_the_template_deploy_uses(workspace, tmp_path):
    ws = workspace
    out = tmp_path / "pkg"
    p = ws.run("svc", "package", "-n", "frontend", "-e", "test", "--upload-assets", "--output-dir", str(out), tool="cli")
    assert "Traceback" not in p.stderr
    params = json.loads((out / "frontend-test.params.json").read_text())["Parameters"]
    assert f"/{ws.app}/frontend@sha256:" in params["ContainerImage"]
    assert params["AddonsTemplateURL"].endswith(".yml")
    assert not any(s["StackName"].startswith(f"{ws.app}-") for s in ws.stacks()), "package deployed a stack"
    deployed = ws.run("deploy", "name=frontend", "env=test")
    m = marks(deployed.stdout)
    assert m["build:frontend@test"] == m["push:frontend@test"] == m["package:frontend@test"] == "--", deployed.stdout
    live = ws.client("cloudformation").describe_stacks(StackName=f"{ws.app}-test-frontend")["Stacks"][0]
    live_params = {x["ParameterKey"]: x["ParameterValue"] for x in live["Parameters"]}
    assert live_params["ContainerImage"] == params["ContainerImage"]
    digest = xxhash.xxh3_128_hexdigest((out / "frontend-test.stack.yml").read_bytes())
    assert f"template {digest[:12]}" in deployed.stdout, deployed.stdout
    # Without --upload-assets, the same image is found by content in this cache.
    again = ws.run("svc", "package", "-n", "frontend", "-e", "test", tool="cli")
    assert params["ContainerImage"] in again.stdout


class _RecordedElbv2:
    """DescribeLoadBalancers / DescribeListeners answers for Copilot's imported ALB (recorded shapes)."""

    ARN = "arn:aws:elasticloadbalancing:us-west-2:1234567890:loadbalancer/app/demo-t-Publi-MqfbfMJgLPZ0/5ea280ee3a7eff37"

    class exceptions:
        from botocore.exceptions import ClientError

    def describe_load_balancers(self, LoadBalancerArns):
        assert LoadBalancerArns == [self.ARN]
        return {"LoadBalancers": [{"LoadBalancerArn": self.ARN, "Type": "application",
                                   "DNSName": "demo-t-Publi.us-west-2.elb.amazonaws.com",
                                   "CanonicalHostedZoneId": "Z1H1FL5HABSF5", "SecurityGroups": ["sg-0aaa"]}]}

    def describe_listeners(self, LoadBalancerArn):
        base = LoadBalancerArn.replace(":loadbalancer/", ":listener/")
        return {"Listeners": [{"ListenerArn": base + "/https", "Protocol": "HTTPS", "Port": 443},
                              {"ListenerArn": base + "/http", "Protocol": "HTTP", "Port": 80}]}


class _RecordedSts:
    def get_caller_identity(self):
        return {"Account": "123456789012"}


class _RecordedSsm:
    """Copilot's registry has no application `my-app` (ParameterNotFound): the standalone case."""
    class exceptions:
        class ParameterNotFound(Exception):
            pass

        class ClientError(Exception):
            pass

    def get_parameter(self, Name):
        raise self.exceptions.ParameterNotFound(Name)


def test_svc_package_of_copilots_kitchen_sink_manifest(tmp_path, monkeypatch):
    """Copilot's stack-testdata svc-manifest.yml, unchanged, as workload `fe`; the workspace supplies only
    what the fixture lacks (.workspace, a basic env manifest, the Dockerfile it names, ${TAG}), and the
    imported ALB's ELBv2 answers are recorded ones (its ARN names an account that does not exist), and so
    is Copilot's SSM registry's (no such application: standalone)."""
    from copilot_doit import packaging
    from copilot_doit.session import Options, Session
    fixture = COPILOT_FIXTURES / "stack-testdata" / "workloads" / "svc-manifest.yml"
    ws = tmp_path / "copilot"
    (ws / "fe").mkdir(parents=True)
    (ws / "environments" / "test").mkdir(parents=True)
    (ws / ".workspace").write_text("application: my-app\n")
    (ws / "copilot-doit.yml").write_text('environments:\n  test: {target: aws, region: us-west-2, account: "123456789012"}\n')
    # Its aliases name a hosted zone: Copilot deploys that only to an environment importing certificates.
    (ws / "environments" / "test" / "manifest.yml").write_text(
        "name: test\ntype: Environment\nhttp:\n  public:\n    certificates:\n"
        "      - arn:aws:acm:us-west-2:123456789012:certificate/11111111-2222-3333-4444-555555555555\n")
    shutil.copy(fixture, ws / "fe" / "manifest.yml")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TAG", "v1")
    monkeypatch.setenv("COPILOT_DOIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    s = Session(Options(names=["fe"], envs=["test"]))
    target = s.target("test")
    target._clients.update({"elbv2": _RecordedElbv2(), "sts": _RecordedSts()})
    target._base_sts = target._clients["sts"]   # who the default credentials are (the account check)
    target._registry_client = _RecordedSsm()   # Copilot's registry: the app's home region (us-west-2 here)
    pkg = packaging.workload_package(s, "fe", "test")
    written = packaging.write(pkg, str(tmp_path / "out"))
    assert sorted(Path(p).name for p in written) == ["fe-test.params.json", "fe-test.stack.yml"]
    params = json.loads((tmp_path / "out" / "fe-test.params.json").read_text())["Parameters"]
    assert params["ImportedALBListenerArn"].endswith("/https")
    assert params["ImportedALBHTTPListenerArn"].endswith("/http")
    body = (tmp_path / "out" / "fe-test.stack.yml").read_text()
    assert "AWS::ElasticLoadBalancingV2::ListenerRule" in body and "sg-0aaa" in body
