"""End to end on real parts: Docker engine, docker-registry, patched moto server (issue #2)."""
from __future__ import annotations

import time

import pytest

from conftest import marks

pytestmark = pytest.mark.e2e

FRONTEND = ["env:test", "build:frontend@test", "push:frontend@test", "package:frontend@test",
            "lint:frontend@test", "deploy:frontend@test"]


def test_first_deploy_then_noop(workspace):
    ws = workspace
    first = ws.run("deploy", "name=frontend", "env=test")
    assert all(marks(first.stdout).get(t) == "." for t in FRONTEND), first.stdout
    assert "deployed service frontend to test" in first.stdout and ", ECS service arn:aws:ecs:" in first.stdout
    stack = ws.client("cloudformation").describe_stacks(StackName=f"{ws.app}-test-frontend")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert "@sha256:" in params["ContainerImage"], params  # pinned by digest
    digest = params["ContainerImage"].split("@")[1]
    images = ws.client("ecr").describe_images(repositoryName=f"{ws.app}/frontend", imageIds=[{"imageDigest": digest}])
    assert images["imageDetails"][0]["imageDigest"] == digest
    assert "local compat: removed resource DiscoveryService" in first.stdout
    nested = [s for s in ws.stacks() if s["StackName"].startswith(f"{ws.app}-test-frontend-AddonsStack")]
    assert nested and nested[0]["StackStatus"] == "CREATE_COMPLETE"      # the addons nested stack
    assert f"{ws.app}-test-frontend-orders" in ws.client("dynamodb").list_tables()["TableNames"]
    # The summary (issue #13): what ran, how long, and the public load balancer's URL to open.
    env_stack = ws.client("cloudformation").describe_stacks(StackName=f"{ws.app}-test")["Stacks"][0]
    dns = next(o["OutputValue"] for o in env_stack["Outputs"] if o["OutputKey"] == "PublicLoadBalancerDNSName")
    summary = first.stdout[first.stdout.index("WORKLOAD  ENV"):]
    row = next(line for line in summary.splitlines() if line.startswith("frontend  test"))
    assert "build, push, package, lint, deploy" in row and row.rstrip().endswith(f"http://{dns}"), summary

    t0 = time.monotonic()
    second = ws.run("deploy", "name=frontend", "env=test")
    elapsed = time.monotonic() - t0
    m = marks(second.stdout)
    assert [m.get(t) for t in FRONTEND] == ["--"] * len(FRONTEND), second.stdout
    assert "WORKLOAD  ENV" not in second.stdout          # nothing ran: no summary
    assert ws.mutating() == [], ws.mutating()  # no build, push, change set or any other write
    assert not any(c["operation"] in ("Build", "Push") for c in ws.api_calls())
    assert elapsed < 5, elapsed  # generous bound for a loaded CI machine; bench/ measures the real number


def test_context_change_runs_build_to_deploy(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    (ws.manifests / "frontend" / "src" / "www" / "index.html").write_text("<h1>changed</h1>\n")
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    m = marks(out)
    assert m["env:test"] == "--"
    for t in ("build:frontend@test", "push:frontend@test", "package:frontend@test", "deploy:frontend@test"):
        assert m[t] == ".", out
    # The image is a parameter (ContainerImage): the template body is byte-identical, so no re-lint.
    assert m["lint:frontend@test"] == "--", out
    assert "1 context file changed: www/index.html" in out


def test_ignored_file_change_runs_nothing(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    (ws.manifests / "frontend" / "src" / "README.md").write_text("edited, but .dockerignore'd\n")
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    assert set(marks(out).values()) == {"--"}, out


def test_manifest_only_change_skips_build_and_push(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    mf = ws.manifests / "frontend" / "manifest.yml"
    mf.write_text(mf.read_text().replace("LOG_LEVEL: info", "LOG_LEVEL: debug"))
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    m = marks(out)
    assert (m["build:frontend@test"], m["push:frontend@test"]) == ("--", "--"), out
    assert (m["package:frontend@test"], m["lint:frontend@test"], m["deploy:frontend@test"]) == (".", ".", "."), out
    assert "manifest field changed: variables.LOG_LEVEL" in out
    assert not any(c["operation"] in ("Build", "Push") for c in ws.api_calls())


def test_manifest_comment_and_order_change_runs_nothing(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    mf = ws.manifests / "frontend" / "manifest.yml"
    text = mf.read_text().replace("cpu: 256\nmemory: 512\n", "memory: 512   # reordered\ncpu: 256\n")
    mf.write_text("# a new comment\n" + text)
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    assert set(marks(out).values()) == {"--"}, out


def test_force_redeploys_with_existing_image(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    out = ws.run("deploy", "name=frontend", "env=test", "force=1").stdout
    m = marks(out)
    assert m["build:frontend@test"] == "--" and m["deploy:frontend@test"] == ".", out
    ops = [c for c in ws.api_calls() if c["operation"] == "UpdateService"]
    assert ops and ops[0]["params"] == {"forceNewDeployment": True}, ws.api_calls()
    assert "forced a new deployment of service" in out
    assert not any(c["operation"] in ("Build", "Push") for c in ws.api_calls())


def test_resource_tags_land_on_stack_and_reserved_tags_are_refused(workspace):
    ws = workspace
    refused = ws.run("deploy", "name=frontend", "env=test",
                     "resource-tags=source/revision=bb133e7,copilot-service=spoofed", check=False)
    assert refused.returncode != 0 and "tag key 'copilot-service' is reserved" in refused.stderr, refused.stderr
    assert not any(s["StackName"].startswith(f"{ws.app}-") for s in ws.stacks())
    ws.run("deploy", "name=frontend", "env=test", "resource-tags=source/revision=bb133e7,deployment/initiator=manual")
    stack = ws.client("cloudformation").describe_stacks(StackName=f"{ws.app}-test-frontend")["Stacks"][0]
    tags = {t["Key"]: t["Value"] for t in stack["Tags"]}
    assert tags["source/revision"] == "bb133e7" and tags["deployment/initiator"] == "manual"
    assert tags["copilot-service"] == "frontend" and tags["copilot-application"] == ws.app
    assert tags["copilot-environment"] == "test"
    # The same tags again: nothing to do; different tags: a stack update only.
    again = ws.run("deploy", "name=frontend", "env=test", "resource-tags=source/revision=bb133e7,deployment/initiator=manual")
    assert set(marks(again.stdout).values()) == {"--"}, again.stdout
    changed = ws.run("deploy", "name=frontend", "env=test", "resource-tags=source/revision=ccc").stdout
    m = marks(changed)
    assert m["deploy:frontend@test"] == "." and m["package:frontend@test"] == "--", changed


def test_no_rollback_reaches_change_set_execution(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    mf = ws.manifests / "frontend" / "manifest.yml"
    mf.write_text(mf.read_text().replace("count: 1", "count: 2"))
    out = ws.run("deploy", "name=frontend", "env=test", "no-rollback=1").stdout
    assert "not recommended while deploying to a production environment" in out
    execs = [c for c in ws.api_calls() if c["operation"] == "ExecuteChangeSet"]
    assert execs and execs[-1]["params"] == {"DisableRollback": True}, ws.api_calls()


def test_copilot_cli_and_doit_forms_agree(workspace):
    ws = workspace
    ws.run("deploy", "--name", "frontend", "--env", "test", tool="copilot")
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    assert set(marks(out).values()) == {"--"}, out
    quiet = ws.run("deploy", "-n", "mailer", "-e", "prod", "--resource-tags",
                   "source/revision=bb133e7,deployment/initiator=manual", "--quiet", tool="copilot").stdout
    # --quiet: errors and the summary only (no stage lines, no CloudFormation events).
    assert quiet.lstrip().startswith("WORKLOAD  ENV") and "mailer    prod  build, push, package, lint, deploy" in quiet
    assert "next run" in quiet and "deploying stack" not in quiet and not marks(quiet), quiet
    out = ws.run("deploy", "name=mailer", "env=prod",
                 "resource-tags=source/revision=bb133e7,deployment/initiator=manual").stdout
    assert set(marks(out).values()) == {"--"}, out
    stack = ws.client("cloudformation").describe_stacks(StackName=f"{ws.app}-prod-mailer")["Stacks"][0]
    assert {"Key": "deployment/initiator", "Value": "manual"} in stack["Tags"]
    rule = [r for r in ws.client("events").list_rules()["Rules"] if r.get("ScheduleExpression") == "cron(0 6 ? * 2 *)"]
    assert rule, "the prod override of on.schedule reached the Events rule"


def test_info_and_list_explain_in_words(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    (ws.manifests / "frontend" / "src" / "www" / "healthz").write_text("still ok\n")
    info = ws.run("info", "deploy:frontend@test", "name=frontend", "env=test", check=False).stdout
    assert "will run: after lint:frontend@test" in info, info
    info = ws.run("info", "build:frontend@test", "name=frontend", "env=test", check=False).stdout
    assert "1 context file changed: www/healthz" in info, info
    listing = ws.run("list", "--all", "--status", "name=frontend", "env=test").stdout
    assert "R build:frontend@test" in listing and "U env:test" in listing, listing
    assert "| will run: 1 context file changed: www/healthz" in listing, listing
    assert ws.mutating() == []


def test_plan_changes_nothing_and_shows_diffs(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    mf = ws.manifests / "frontend" / "manifest.yml"
    mf.write_text(mf.read_text().replace("count: 1", "count: 3").replace("LOG_LEVEL: info", "LOG_LEVEL: trace"))
    out = ws.run("plan", "name=frontend", "env=test").stdout
    assert "skip  build:frontend@test" in out and "run   deploy:frontend@test" in out, out
    assert "-TaskCount: 1" in out and "+TaskCount: 3" in out, out          # parameter diff
    assert "+            Value: trace" in out or "Value: trace" in out, out  # template diff
    assert ws.mutating() == [], ws.mutating()
    assert not any(c["operation"] in ("Build", "Push", "Tag") for c in ws.api_calls())
    after = ws.run("deploy", "name=frontend", "env=test").stdout
    assert marks(after)["deploy:frontend@test"] == "."  # the plan did not apply it


def test_bad_manifest_is_one_clear_error_and_nothing_applied(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    cache_before = sorted(p.relative_to(ws.root) for p in (ws.root / "cache" / "actions").rglob("*"))
    mf = ws.manifests / "frontend" / "manifest.yml"
    mf.write_text(mf.read_text().replace("memory: 512", "memory: 300"))
    p = ws.run("deploy", "name=frontend", "env=test", check=False)
    assert p.returncode != 0
    err = p.stdout + p.stderr
    assert "Traceback" not in err
    assert "ERROR: manifests/frontend/manifest.yml:15: field 'memory': 300 MiB is not valid with cpu 256" in err, err
    assert ws.mutating() == []
    assert sorted(p.relative_to(ws.root) for p in (ws.root / "cache" / "actions").rglob("*")) == cache_before


def test_failed_stack_operation_reports_reason(workspace):
    ws = workspace
    ws.run("deploy", "name=mailer", "env=test")
    # Something outside the tool holds the log group the stack wants: the create must fail cleanly.
    ws.client("logs").create_log_group(logGroupName=f"/copilot/{ws.app}-prod-mailer")
    p = ws.run("deploy", "name=mailer", "env=prod", check=False)
    assert p.returncode != 0
    assert "ERROR: deploy:mailer@prod: ExecuteChangeSet failed" in p.stdout, p.stdout
    assert "log group already exists" in p.stdout
    assert "Traceback" not in p.stdout + p.stderr
    # Nothing was marked done: the next run tries the stack again.
    retry = ws.run("deploy", "name=mailer", "env=prod", check=False)
    assert marks(retry.stdout).get("deploy:mailer@prod") == ".", retry.stdout


def test_all_four_types_deploy_and_redeploy_noop_and_env_file_is_uploaded(workspace):
    ws = workspace
    out = ws.run("deploy", "env=test").stdout
    for kind, name in (("service", "frontend"), ("service", "api"), ("service", "worker"), ("job", "mailer")):
        assert f"deployed {kind} {name} to test" in out, out
    stacks = ws.stacks()
    params = {p["ParameterKey"]: p["ParameterValue"]
              for s in stacks if s["StackName"] == f"{ws.app}-test-api" for p in s["Parameters"]}
    arn = params["EnvFileARN"]
    bucket, key = arn.removeprefix("arn:aws:s3:::").split("/", 1)
    body = ws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == (ws.manifests / "api" / "api.env").read_bytes()
    assert key.startswith("manual/env-files/api.env/")
    again = ws.run("deploy", "env=test").stdout
    assert set(marks(again).values()) == {"--"}, again
    assert len(marks(again)) == 1 + 4 * 5


def test_noop_path_imports_no_heavy_library(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    probe = ("import sys\n"
             "from doit.doit_cmd import DoitMain\n"
             "from doit.cmd_base import DodoTaskLoader\n"
             "rc = DoitMain(DodoTaskLoader()).run(['deploy', 'name=frontend', 'env=test'])\n"
             "heavy = sorted(m for m in ('boto3', 'botocore', 'docker', 'cfnlint', 'moto', 'pygit2') if m in sys.modules)\n"
             "print('HEAVY', heavy, 'RC', rc)\n")
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-c", probe], cwd=ws.root, env=ws.env(), capture_output=True, text=True)
    assert "HEAVY [] RC 0" in p.stdout, p.stdout + p.stderr
    assert set(marks(p.stdout).values()) == {"--"}, p.stdout


def test_image_location_workload_deploys_without_build_or_push(workspace):
    ws = workspace
    svc = ws.manifests / "cache-svc"
    svc.mkdir()
    (svc / "manifest.yml").write_text("""name: cache-svc
type: Backend Service
image:
  location: public.ecr.aws/docker/library/redis:7
  port: 6379
network:
  vpc:
    placement: private
""")
    ws.commit("image.location service")
    out = ws.run("deploy", "name=cache-svc", "env=test").stdout
    m = marks(out)
    assert m["build:cache-svc@test"] == "--" and m["push:cache-svc@test"] == "--", out
    assert "nothing to build: image.location public.ecr.aws/docker/library/redis:7" in out
    assert "image public.ecr.aws/docker/library/redis:7" in out
    assert not any(c["operation"] in ("Build", "Push", "Tag") for c in ws.api_calls())
    again = ws.run("deploy", "name=cache-svc", "env=test").stdout
    assert set(marks(again).values()) == {"--"}, again


def test_tag_variable_tags_the_image_and_only_retags_later(workspace):
    ws = workspace
    ws.run("deploy", "name=mailer", "env=test")
    out = ws.run("deploy", "name=mailer", "env=test", "tag=v1.2").stdout
    m = marks(out)
    assert m["push:mailer@test"] == "." and m["deploy:mailer@test"] == "--", out   # same digest, same stack
    assert "without pushing layers" in out
    ecr = ws.client("ecr")
    by_tag = ecr.describe_images(repositoryName=f"{ws.app}/mailer", imageIds=[{"imageTag": "v1.2"}])
    stack = [s for s in ws.stacks() if s["StackName"] == f"{ws.app}-test-mailer"][0]
    image = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["ContainerImage"]
    assert image.endswith("@" + by_tag["imageDetails"][0]["imageDigest"])
    again = ws.run("deploy", "name=mailer", "env=test", "tag=v1.2").stdout
    assert set(marks(again).values()) == {"--"}, again


def test_force_on_a_scheduled_job_redeploys_its_stack_only(workspace):
    ws = workspace
    ws.run("deploy", "name=mailer", "env=test")
    out = ws.run("deploy", "name=mailer", "env=test", "force=1").stdout
    assert marks(out)["deploy:mailer@test"] == "." and marks(out)["build:mailer@test"] == "--", out
    assert "is a Scheduled Job; it has no service to roll" in out
    assert not [c for c in ws.api_calls() if c["operation"] == "UpdateService"]


@pytest.mark.parametrize("edit,needle", [
    (("frontend", "build: manifests/frontend/src/Dockerfile", "build: manifests/frontend/src/Dockerfile.missing"),
     "manifests/frontend/manifest.yml:7: field 'image.build': Dockerfile"),
    (("api", "env_file: manifests/api/api.env", "env_file: manifests/api/missing.env"),
     "manifests/api/manifest.yml:33: field 'env_file':"),
])
def test_missing_paths_stop_before_anything_is_applied(workspace, edit, needle):
    ws = workspace
    name, old, new = edit
    mf = ws.manifests / name / "manifest.yml"
    mf.write_text(mf.read_text().replace(old, new))
    p = ws.run("deploy", f"name={name}", "env=test", check=False)
    assert p.returncode != 0 and "Traceback" not in p.stdout + p.stderr
    assert needle in p.stdout + p.stderr, p.stdout + p.stderr
    assert ws.mutating() == [] and not (ws.root / "cache" / "actions").exists()


def test_lint_rerun_keeps_the_warnings(workspace):
    """Issue #13 scope 5: the cached lint result keeps its warnings; a rerun and the plan name them."""
    import re
    ws = workspace
    first = ws.run("deploy", "name=api", "env=test").stdout
    rules = sorted(set(re.findall(rf"{ws.app}-test-api\.yml:\d+: (W\d+) warning", first)))
    again = ws.run("deploy", "name=api", "env=test").stdout
    line = next(x for x in again.splitlines() if x.startswith("-- lint:api@test"))
    if rules:
        assert f"passed cfn-lint with {len(rules)} warning" in line, line
        assert all(r in line for r in rules), (rules, line)
        plan = ws.run("plan", "-n", "api", "-e", "test", tool="cli", check=False).stdout
        assert all(r in plan for r in rules), plan
    else:
        assert "passed cfn-lint" in line and "warning" not in line, line


def test_the_engine_pushes_one_tag_and_the_registry_gets_every_tag(workspace, services_up):
    """The push stage's tags (the git tag, the content tag `ck-…`, `latest`): the engine tags and pushes one,
    the others are put on the pushed digest manifest-only. All of them name that digest in the registry and
    in ECR, as if each had been pushed."""
    from copilot_doit.targets.local import lite
    ws = workspace
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("pushed "))
    digest = line.split("@", 1)[1].split()[0]
    tags = line[line.index("(") + 1:line.rindex(")")].split(", ")
    assert len(tags) == 3 and "latest" in tags and any(t.startswith("ck-") for t in tags), line
    repo = f"{ws.app}/frontend"
    assert {t: lite.registry_digest(services_up.registry, repo, t) for t in tags} == {t: digest for t in tags}
    images = ws.client("ecr").describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])
    assert sorted(images["imageDetails"][0]["imageTags"]) == sorted(tags)
    ops = [c["operation"] for c in ws.api_calls() if c["service"] == "docker"]
    assert ops.count("Push") == 1 and ops.count("Tag") == 1, ops
    # the registry's manifest is read once for the pushed tag's ECR record, once for the others' retag
    assert [c["operation"] for c in ws.api_calls()].count("GetManifest") == 2, ws.api_calls()
