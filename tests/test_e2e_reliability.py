"""Reliability on the local target (issue #10): claims re-checked after `local reset`, forged records
never deployed, mistakes as one line with nothing applied."""
from __future__ import annotations

import json

import pytest

from conftest import marks

pytestmark = pytest.mark.e2e

ALL = ("frontend", "api", "worker", "mailer")


def test_local_reset_then_a_plain_deploy_converges(workspace):
    ws = workspace
    ws.run("deploy", "env=test")
    ws.run("local", "reset", tool="cli")
    out = ws.run("deploy", "env=test").stdout          # no manual step, exit 0
    m = marks(out)
    assert all(m[f"deploy:{n}@test"] == "." for n in ALL), out
    assert "it uploaded is gone" in out, out            # the package claims were checked, not trusted
    cfn = ws.client("cloudformation")
    for n in ALL:
        stack = cfn.describe_stacks(StackName=f"{ws.app}-test-{n}")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", (n, stack["StackStatus"])
    params = {p["ParameterKey"]: p["ParameterValue"]
              for p in cfn.describe_stacks(StackName=f"{ws.app}-test-api")["Stacks"][0]["Parameters"]}
    bucket, key = params["EnvFileARN"].removeprefix("arn:aws:s3:::").split("/", 1)
    assert ws.client("s3").head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 200
    again = ws.run("deploy", "env=test").stdout
    assert all(marks(again)[f"deploy:{n}@test"] == "--" for n in ALL), again


def _forge_package_record(ws, name: str, extra_resource: dict) -> None:
    """What an attacker with write access to the cache does: a new template object (content-addressed,
    so it verifies) and the package record pointed at it, its unkeyed check recomputed."""
    import yaml
    from copilot_doit.cache import Cache
    from copilot_doit.hashing import digest_value
    from copilot_doit.templates import dump
    cache = Cache(ws.root / "cache")
    last = json.loads((ws.root / "cache" / "last" / "package" / f"package_{name}@test.json").read_text())
    path = ws.root / "cache" / "actions" / "package" / f"{last['key']}.json"
    record = json.loads(path.read_text())
    template = yaml.safe_load(cache.get_object(record["result"]["template"]).decode())
    template["Resources"].update(extra_resource)
    record["result"]["template"] = cache.put_object(dump(template).encode())
    record.pop("check")
    record["check"] = digest_value(record)
    path.write_text(json.dumps(record))


def test_a_forged_local_package_record_is_never_deployed(workspace):
    ws = workspace
    ws.run("deploy", "name=api", "env=test")
    _forge_package_record(ws, "api", {"Intruder": {"Type": "AWS::IAM::User", "Properties": {}}})
    p = ws.run("deploy", "name=api", "env=test", "force=1", check=False)
    assert p.returncode != 0
    assert "does not match a fresh render of its inputs" in p.stdout, p.stdout
    assert "Traceback" not in p.stdout + p.stderr
    resources = ws.client("cloudformation").describe_stack_resources(StackName=f"{ws.app}-test-api")["StackResources"]
    assert not any(r["LogicalResourceId"] == "Intruder" for r in resources)
    # The record was removed: the next run packages anew and deploys the real template.
    out = ws.run("deploy", "name=api", "env=test", "force=1").stdout
    assert marks(out)["package:api@test"] == ".", out


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_parallel_doit_deploys_the_whole_workspace(workspace, mode):
    ws = workspace
    out = ws.run("-n", "3", "-P", mode, "deploy", "env=test").stdout
    assert "Traceback" not in out
    cfn = ws.client("cloudformation")
    for n in ALL:
        assert cfn.describe_stacks(StackName=f"{ws.app}-test-{n}")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    again = ws.run("-n", "3", "-P", mode, "deploy", "env=test").stdout
    assert all(marks(again)[f"deploy:{n}@test"] == "--" for n in ALL), again


def test_ctrl_c_during_an_update_cancels_it_and_exits_130(workspace):
    """The emulator holds the update (patch 7, asked for by a change-set tag) so there is time for Ctrl-C."""
    import signal
    import subprocess
    import sys
    import time
    ws = workspace
    ws.run("deploy", "name=api", "env=test")
    manifest = ws.manifests / "api" / "manifest.yml"
    manifest.write_text(manifest.read_text().replace("LOG_LEVEL: info", "LOG_LEVEL: debug"))
    p = subprocess.Popen([sys.executable, "-m", "copilot_doit.cli", "deploy", "-n", "api", "-e", "test",
                          "--resource-tags", "copilot-doit-emulator:hold=120/1"],
                         cwd=ws.root, env=ws.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cfn = ws.client("cloudformation")
    stack = f"{ws.app}-test-api"
    deadline = time.monotonic() + 120
    while cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] != "UPDATE_IN_PROGRESS":
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()[0] if p.poll() is not None else "timeout"
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 130, out
    assert "Received Ctrl-C" in out and "Traceback" not in out, out
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    again = ws.run("deploy", "name=api", "env=test").stdout      # a plain deploy converges
    assert marks(again)["deploy:api@test"] == ".", again
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
