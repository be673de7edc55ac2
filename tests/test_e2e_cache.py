"""The content-addressed engine across runners: content tags, the shared S3 cache, corruption (issue #3)."""
from __future__ import annotations

import shutil

import pytest

from conftest import Workspace, make_workspace, marks

pytestmark = pytest.mark.e2e


@pytest.fixture
def workspace(tmp_path, services_up) -> Workspace:
    """The sample workspace with a frontend image of its own: these tests remove the images their builds
    made from the engine (by id, with every tag), which must not take away an image another test — another
    pytest-xdist worker's — built from the same content at the same moment."""
    import uuid
    ws = make_workspace(tmp_path, services_up)
    (ws.manifests / "frontend" / "src" / "www" / "instance.txt").write_text(uuid.uuid4().hex + "\n")
    ws.commit("an image of this test's own")
    return ws

STAGES = ["build", "push", "package", "lint", "deploy"]
KEYED = {"COPILOT_DOIT_CACHE_KEY": "5f" * 32}   # the team key that authenticates shared records


def fresh_runner(ws: Workspace, tmp_path, name: str) -> Workspace:
    """Another checkout of the same commit, elsewhere, with an empty cache/."""
    root = tmp_path / name / "checkout"
    shutil.copytree(ws.root, root, symlinks=True, ignore=shutil.ignore_patterns("cache", "api.jsonl"))
    return Workspace(root, ws.app, ws.endpoints)


def drop_images(ws: Workspace, name: str) -> None:
    """An empty engine, as on a fresh CI runner: remove every image this workload's builds produced."""
    import json
    import docker
    c = docker.from_env()
    for rec in (ws.root / "cache" / "actions" / "build").glob("*.json"):
        image = json.loads(rec.read_text())["result"]["image_id"]
        try:
            c.images.remove(image, force=True)
        except docker.errors.ImageNotFound:
            pass


def engine_ops(ws):
    return [c["operation"] for c in ws.api_calls() if c["service"] == "docker"
            and c["operation"] not in ("InspectImage", "LookupListing")]


def test_wiped_cache_and_engine_finds_the_content_tag(workspace, tmp_path):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    other = fresh_runner(ws, tmp_path, "runner2")
    drop_images(ws, "frontend")
    out = other.run("deploy", "name=frontend", "env=test").stdout
    m = marks(out)
    assert (m["build:frontend@test"], m["push:frontend@test"], m["deploy:frontend@test"]) == ("--", "--", "--"), out
    assert "has its content tag" in out and "pushed by another runner" in out
    # Rendering and linting are local and pure: they run, and give the byte-identical template.
    assert (m["package:frontend@test"], m["lint:frontend@test"]) == (".", "."), out
    assert engine_ops(other) == [] and other.mutating() == [], (engine_ops(other), other.mutating())


def test_two_environments_share_one_build(workspace):
    ws = workspace
    out = ws.run("deploy", "name=frontend", "env=test,prod").stdout
    assert out.count("building frontend") == 1, out
    m = marks(out)
    assert m["build:frontend@test"] != m["build:frontend@prod"] or m["build:frontend@prod"] == "--", out
    assert [c["operation"] for c in ws.api_calls()].count("Build") == 1


def with_s3_cache(ws: Workspace, bucket: str) -> None:
    cfg = ws.manifests / "copilot-doit.yml"
    cfg.write_text(cfg.read_text() + f"""
cache:
  s3:
    bucket: {bucket}
    prefix: shared/cache
    expected_owner: "123456789012"
    target: local
""")
    ws.client("s3").create_bucket(Bucket=bucket)
    ws.commit("shared cache")


def test_shared_s3_cache_fresh_runner_runs_nothing_and_rejects_poison(workspace, tmp_path, capfd):
    """With the team key, every record the fleet wrote is authenticated: a fresh runner runs nothing."""
    ws = workspace
    bucket = f"cache-{ws.app}"
    with_s3_cache(ws, bucket)
    ws.run("deploy", "name=frontend", "env=test", **KEYED)
    s3 = ws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="shared/cache/")["Contents"]]
    assert any("/actions/package/" in k for k in keys) and any("/objects/" in k for k in keys)

    b = fresh_runner(ws, tmp_path, "runner-b")
    drop_images(ws, "frontend")
    out = b.run("deploy", "name=frontend", "env=test", **KEYED).stdout
    assert set(marks(out).values()) == {"--"}, out                 # read-through: nothing runs at all
    assert engine_ops(b) == [] and b.mutating() == [], (engine_ops(b), b.mutating())

    # Poison the shared template object: a fresh runner rejects it and re-derives, never deploys it.
    pkg = next(k for k in keys if "/actions/package/" in k)
    import json
    template_digest = json.loads(s3.get_object(Bucket=bucket, Key=pkg)["Body"].read())["result"]["template"]
    obj_key = f"shared/cache/objects/{template_digest[:2]}/{template_digest}"
    s3.put_object(Bucket=bucket, Key=obj_key, Body=b"Resources: {Evil: {Type: AWS::IAM::User}}\n")
    c = fresh_runner(ws, tmp_path, "runner-c")
    p = c.run("deploy", "name=frontend", "env=test", **KEYED)
    assert "does not match its digest; rejected" in p.stderr, p.stderr
    m = marks(p.stdout)
    assert m["package:frontend@test"] == "." and m["deploy:frontend@test"] == "--", p.stdout
    assert c.mutating() == [] or all(op.startswith("s3:") for op in c.mutating()), c.mutating()


def _forge_s3_package_record(s3, bucket: str, keys: list[str]) -> None:
    """A writer of the bucket (not of the key): a template object with an IAM user, the package record
    pointed at it, its unkeyed check recomputed."""
    import json
    import yaml
    from copilot_doit.hashing import digest_bytes, digest_value
    from copilot_doit.templates import dump
    pkg = next(k for k in keys if "/actions/package/" in k)
    record = json.loads(s3.get_object(Bucket=bucket, Key=pkg)["Body"].read())
    digest = record["result"]["template"]
    template = yaml.safe_load(s3.get_object(Bucket=bucket, Key=f"shared/cache/objects/{digest[:2]}/{digest}")["Body"].read())
    template["Resources"]["Intruder"] = {"Type": "AWS::IAM::User", "Properties": {}}
    forged = dump(template).encode()
    fd = digest_bytes(forged)
    s3.put_object(Bucket=bucket, Key=f"shared/cache/objects/{fd[:2]}/{fd}", Body=forged)
    record["result"]["template"] = fd
    record.pop("check"), record.pop("mac", None)
    record["check"] = digest_value(record)
    s3.put_object(Bucket=bucket, Key=pkg, Body=json.dumps(record).encode())


@pytest.mark.parametrize("keyed", [False, True], ids=["no-team-key", "team-key"])
def test_a_forged_shared_record_is_never_deployed(workspace, tmp_path, keyed):
    ws = workspace
    env = KEYED if keyed else {}
    bucket = f"cache-{ws.app}"
    with_s3_cache(ws, bucket)
    ws.run("deploy", "name=frontend", "env=test", **env)
    s3 = ws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="shared/cache/")["Contents"]]
    _forge_s3_package_record(s3, bucket, keys)
    b = fresh_runner(ws, tmp_path, "runner-b")
    p = b.run("deploy", "name=frontend", "env=test", "force=1", **env)
    assert marks(p.stdout)["package:frontend@test"] == ".", p.stdout   # re-derived, not taken from S3
    if keyed:
        assert "not signed with the team key" in p.stderr or "rejected" in p.stderr, p.stderr
    resources = ws.client("cloudformation").describe_stack_resources(StackName=f"{ws.app}-test-frontend")
    assert not any(r["LogicalResourceId"] == "Intruder" for r in resources["StackResources"])


def test_corrupt_local_record_is_discarded_and_rederived(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    rec = next((ws.root / "cache" / "actions" / "package").glob("*.json"))
    rec.write_text(rec.read_text().replace('"template":"', '"template":"0'))
    p = ws.run("deploy", "name=frontend", "env=test")
    assert "is corrupt; discarded" in p.stderr
    m = marks(p.stdout)
    assert m["package:frontend@test"] == "." and m["deploy:frontend@test"] == "--", p.stdout


def test_stack_deleted_behind_the_tools_back_is_redeployed(workspace):
    ws = workspace
    ws.run("deploy", "name=mailer", "env=test")
    ws.client("cloudformation").delete_stack(StackName=f"{ws.app}-test-mailer")
    out = ws.run("deploy", "name=mailer", "env=test").stdout
    m = marks(out)
    assert m["deploy:mailer@test"] == "." and m["build:mailer@test"] == "--", out
    assert "does not exist" in out


EDITS = {
    # edit -> the stages that must run (all others must print --)
    "context file": (lambda ws: (ws.manifests / "frontend/src/www/index.html").write_text("<p>v2</p>\n"),
                     {"build", "push", "package", "deploy"}),
    "dockerignored file": (lambda ws: (ws.manifests / "frontend/src/README.md").write_text("doc only\n"), set()),
    "touch without change": (lambda ws: (ws.manifests / "frontend/src/www/index.html").touch(), set()),
    "Dockerfile": (lambda ws: _append(ws.manifests / "frontend/src/Dockerfile", "ENV MODE=edited\n"),
                   {"build", "push", "package", "deploy"}),
    "manifest value": (lambda ws: _replace(ws.manifests / "frontend/manifest.yml", "LOG_LEVEL: info", "LOG_LEVEL: error"),
                       {"package", "lint", "deploy"}),
    "manifest parameter": (lambda ws: _replace(ws.manifests / "frontend/manifest.yml", "count: 1", "count: 2"),
                           {"package", "deploy"}),
    "manifest comment": (lambda ws: _append(ws.manifests / "frontend/manifest.yml", "# just a comment\n"), set()),
    "other environment's override": (lambda ws: _replace(ws.manifests / "frontend/manifest.yml", "LOG_LEVEL: warn", "LOG_LEVEL: crit"),
                                     set()),
    "other workload": (lambda ws: _replace(ws.manifests / "mailer/manifest.yml", "retries: 2", "retries: 3"), set()),
    "env manifest": (lambda ws: _replace(ws.manifests / "environments/test/manifest.yml", "container_insights: false",
                                         "container_insights: true"), {"env", "package"}),  # template body unchanged: no redeploy
}


def _append(p, text):
    p.write_text(p.read_text() + text)


def _replace(p, a, b):
    t = p.read_text()
    assert a in t, (p, a)
    p.write_text(t.replace(a, b))


@pytest.mark.parametrize("edit", list(EDITS))
def test_each_kind_of_edit_runs_exactly_the_stages_it_feeds(workspace, edit):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    change, expected = EDITS[edit]
    change(ws)
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    m = marks(out)
    ran = {t.split(":")[0] for t, mark in m.items() if mark == "."}
    assert ran == expected, out
    again = ws.run("deploy", "name=frontend", "env=test").stdout
    assert set(marks(again).values()) == {"--"}, again


def test_stack_changed_behind_the_tools_back_is_redeployed(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    cfn = ws.client("cloudformation")
    name = f"{ws.app}-test-frontend"
    live = cfn.describe_stacks(StackName=name)["Stacks"][0]
    params = [{"ParameterKey": p["ParameterKey"], "ParameterValue": p["ParameterValue"] if p["ParameterKey"] != "TaskCount" else "5"}
              for p in live["Parameters"]]
    cfn.update_stack(StackName=name, TemplateBody=cfn.get_template(StackName=name)["TemplateBody"],
                     Parameters=params, Tags=live["Tags"])
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    m = marks(out)
    assert m["deploy:frontend@test"] == "." and m["package:frontend@test"] == "--", out
    assert "parameters were changed outside copilot-doit (TaskCount)" in out, out
    assert set(marks(ws.run("deploy", "name=frontend", "env=test").stdout).values()) == {"--"}
