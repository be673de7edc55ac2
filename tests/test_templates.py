"""Rendered templates: deterministic, cfn-lint clean, Copilot's names and parameters (no services)."""
from __future__ import annotations

from pathlib import Path

import pytest

from copilot_doit import manifest, templates
from copilot_doit.templates import env as env_t
from copilot_doit.templates import workload

REPO = Path(__file__).resolve().parents[1]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/demo/x@sha256:" + "a" * 64
SAMPLES = sorted(p.parent.name for p in (REPO / "manifests").glob("*/manifest.yml") if p.parent.name != "environments")


@pytest.fixture(scope="module")
def lint():
    from cfnlint.api import lint as run
    return lambda body: [(m.rule.id, m.linenumber, m.message) for m in run(body, regions=["us-east-1"])]


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("env", ["test", "prod"])
def test_sample_workloads_render_lint_clean(lint, name, env):
    m = manifest.load_workload(REPO / f"manifests/{name}/manifest.yml", "demo", env, name)
    t, params = workload.render(workload.RenderInput(m, "demo", env, IMAGE))
    body = templates.dump(t)
    assert lint(body) == []                                       # no errors and no warnings
    assert templates.dump(workload.render(workload.RenderInput(m, "demo", env, IMAGE))[0]) == body
    assert params["ContainerImage"] == IMAGE and params["WorkloadName"] == name
    assert set(t["Parameters"]) == set(params)


@pytest.mark.parametrize("env", ["test", "prod"])
def test_environment_templates_lint_clean(lint, env):
    em = manifest.load_environment(REPO / f"manifests/environments/{env}/manifest.yml", "demo", env)
    t, params = env_t.render("demo", env, em.data)
    assert lint(templates.dump(t)) == []
    assert set(t["Outputs"]) == set(env_t.BASE_EXPORTS) and set(env_t.BASE_EXPORTS) <= set(env_t.EXPORTS)


def test_job_parameters_follow_copilot():
    m = manifest.load_workload(REPO / "manifests/mailer/manifest.yml", "demo", "prod", "mailer")
    _, params = workload.render(workload.RenderInput(m, "demo", "prod", IMAGE))
    assert params == {"AppName": "demo", "EnvName": "prod", "WorkloadName": "mailer", "ContainerImage": IMAGE,
                      "TaskCPU": "256", "TaskMemory": "512", "LogRetention": "30", "Schedule": "cron(0 6 ? * 2 *)"}


def test_lbws_parameters_follow_copilot():
    m = manifest.load_workload(REPO / "manifests/frontend/manifest.yml", "demo", "test", "frontend")
    _, params = workload.render(workload.RenderInput(m, "demo", "test", IMAGE))
    assert params == {"AppName": "demo", "EnvName": "test", "WorkloadName": "frontend", "ContainerImage": IMAGE,
                      "TaskCPU": "256", "TaskMemory": "512", "TaskCount": "1", "LogRetention": "30",
                      "ContainerPort": "8080", "TargetContainer": "frontend", "TargetPort": "8080", "RulePath": "/",
                      "RulePriority": str(workload.rule_priority("frontend", "/"))}


def test_secrets_are_references_never_values(monkeypatch):
    m = manifest.load_workload(REPO / "manifests/mailer/manifest.yml", "demo", "test", "mailer")
    t, _ = workload.render(workload.RenderInput(m, "demo", "test", IMAGE))
    c = t["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert c["Secrets"] == [{"Name": "SMTP_PASSWORD", "ValueFrom": {"Fn::Sub":
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/copilot/demo/test/secrets/smtp_password"}}]


def test_cli_help_is_copilots():
    from copilot_doit.cli import DEPLOY_HELP
    for line in ["  -a, --app string                     Name of the application.",
                 "      --force                          Optional. Force a new service deployment using the existing image.",
                 "      --resource-tags stringToString   Optional. Labels with a key and value separated by commas.",
                 "      --tag string                     Optional. The container image tag."]:
        assert line in DEPLOY_HELP.splitlines()


def test_cli_flags_map_to_doit_variables():
    from copilot_doit.cli import deploy_parser, doit_argv
    a = deploy_parser("x").parse_args(["-n", "mailer", "-e", "prod", "--resource-tags",
                                       "source/revision=bb133e7,deployment/initiator=manual", "--no-rollback",
                                       "--force", "--tag", "v1", "-a", "demo"])
    assert doit_argv("deploy", a) == ["deploy", "name=mailer", "env=prod", "app=demo", "force=1", "no-rollback=1",
                                      "resource-tags=source/revision=bb133e7,deployment/initiator=manual", "tag=v1"]
    b = deploy_parser("x").parse_args(["--name", "a,b", "--name", "c/2", "--env", "test", "--no-rollback=false"])
    assert doit_argv("deploy", b) == ["deploy", "name=a,b,c", "env=test"]


# What fixed manifests render to, per recipe version. A package key holds the recipe version, not the
# renderer's code: a change of the rendered output without a bump of templates.RECIPE_VERSION (or, for the
# environment, templates.env.RECIPE) leaves every deployed workload on its old template while the runs say
# "up to date". When this fails on purpose: bump the version and pin the new digest beside it.
RENDERED = {"templates/7": "807e0cbcdd5875725c077fec363a35c7", "env/6": "5f941012200fea816bfe376c8fe349d5"}
PINNED_MANIFESTS = {
    "web": """name: web
type: Load Balanced Web Service
image: {build: Dockerfile, port: 8080}
http:
  path: web
  healthcheck: /healthz
  additional_rules:
    - path: admin
      target_port: 8081
cpu: 256
memory: 512
count: 1
variables: {LOG_LEVEL: info}
publish:
  topics: [{name: orders}]
""",
    "api": "name: api\ntype: Backend Service\nimage: {build: Dockerfile, port: 8080}\nhttp: {path: /}\ncount: 2\n",
    "worker": "name: worker\ntype: Worker Service\nimage: {build: Dockerfile}\n"
              "subscribe:\n  topics: [{name: orders, service: web}]\n  queue: {retention: 96h, timeout: 30s}\n",
    "job": "name: job\ntype: Scheduled Job\nimage: {build: Dockerfile}\non: {schedule: '@daily'}\nretries: 2\n",
}


def _rendered_digest(tmp_path) -> tuple[str, str]:
    from copilot_doit.hashing import canonical_json
    import xxhash
    out = []
    for name, text in PINNED_MANIFESTS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.yml").write_text(text)
        m = manifest.load_workload(tmp_path / name / "manifest.yml", "demo", "test", name)
        out.append(workload.render(workload.RenderInput(m, "demo", "test", IMAGE)))
    (tmp_path / "env.yml").write_text("name: test\ntype: Environment\n")
    em = manifest.load_environment(tmp_path / "env.yml", "demo", "test")
    env_out = env_t.render("demo", "test", em.data, public_alb=True, internal_alb=True)
    digest = lambda value: xxhash.xxh3_128_hexdigest(canonical_json(value).encode())  # noqa: E731
    return digest(out), digest(env_out)


def test_a_template_change_comes_with_a_recipe_bump(tmp_path):
    workloads, environment = _rendered_digest(tmp_path)
    assert RENDERED.get(templates.RECIPE_VERSION) == workloads, (
        f"the workload templates render differently from what {templates.RECIPE_VERSION} pinned: bump "
        f"templates.RECIPE_VERSION and pin {workloads} for it in RENDERED")
    assert RENDERED.get(env_t.RECIPE) == environment, (
        f"the environment template renders differently from what {env_t.RECIPE} pinned: bump templates.env.RECIPE "
        f"and pin {environment} for it in RENDERED")
