"""A failed nested-stack update on the local target (issue #10): the frontend's addons (the nested stack
AddonsStack) are edited so their update fails in the emulator, as it would on AWS (a table of the name the
edit asks for already exists). One clear error, no traceback; the stacks roll back and stay readable
(DescribeStacks, the next deploy, `plan`) without `copilot-doit local reset`; after the edit is reverted a
plain deploy converges. Moto's side of it is patch 11 of copilot_doit/targets/local/moto_server.py."""
from __future__ import annotations

import pytest

from conftest import marks

pytestmark = pytest.mark.e2e

ARCHIVE = """  OrdersArchive:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: {table}
      AttributeDefinitions:
        - AttributeName: id
          AttributeType: S
      KeySchema:
        - AttributeName: id
          KeyType: HASH
      BillingMode: PAY_PER_REQUEST

"""


def _nested(cfn, stack: str) -> dict:
    res = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="AddonsStack")["StackResourceDetail"]
    return cfn.describe_stacks(StackName=res["PhysicalResourceId"])["Stacks"][0]


def _errors(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("ERROR:")]


def test_a_failed_addons_update_rolls_back_and_the_next_runs_answer(workspace):
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    cfn, ddb = ws.client("cloudformation"), ws.client("dynamodb")
    stack = f"{ws.app}-test-frontend"
    nested_before = _nested(cfn, stack)
    orders = f"{ws.app}-test-frontend-orders"
    assert orders in ddb.list_tables()["TableNames"]

    # Something outside the stack holds the table name the edit asks for: the nested update must fail.
    taken = f"{ws.app}-taken"
    ddb.create_table(TableName=taken, AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    addon = ws.manifests / "frontend" / "addons" / "orders-table.yml"
    original = addon.read_text()
    addon.write_text(original.replace("  OrdersTableAccessPolicy:\n",
                                      ARCHIVE.format(table=taken) + "  OrdersTableAccessPolicy:\n", 1))

    p = ws.run("deploy", "name=frontend", "env=test", check=False)
    assert p.returncode != 0
    assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    errors = _errors(p.stdout)
    assert len(errors) == 1, p.stdout
    assert f"stack {stack} ended UPDATE_ROLLBACK_COMPLETE" in errors[0], errors
    assert "AddonsStack" in errors[0] and f"Table already exists: {taken}" in errors[0], errors

    # Rolled back, as on AWS: the parent and the same nested stack are live again with what they had.
    listed = {s["StackName"]: s for s in ws.stacks()}          # DescribeStacks without a name answers
    mine = {n: s["StackStatus"] for n, s in listed.items() if n.startswith(f"{ws.app}-")}
    assert mine[stack] == "UPDATE_ROLLBACK_COMPLETE", mine
    assert not [n for n, st in mine.items() if st.endswith("_IN_PROGRESS")], mine
    nested = _nested(cfn, stack)
    assert nested["StackId"] == nested_before["StackId"] and nested["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert {o["OutputKey"]: o["OutputValue"] for o in nested["Outputs"]}["OrdersTableName"] == orders
    assert orders in ddb.list_tables()["TableNames"]          # the addon's table was never dropped
    assert "OrdersArchive" not in cfn.get_template(StackName=nested["StackId"])["TemplateBody"]

    # Without `local reset`: the next deploy tries again and fails the same way, `plan` answers.
    again = ws.run("deploy", "name=frontend", "env=test", check=False)
    assert again.returncode != 0 and "Traceback" not in again.stdout + again.stderr
    assert marks(again.stdout).get("env:test") == "--", again.stdout
    errors = _errors(again.stdout)
    assert len(errors) == 1 and "UPDATE_ROLLBACK_COMPLETE" in errors[0], again.stdout
    plan = ws.run("plan", "-n", "frontend", "-e", "test", tool="cli", check=False)
    assert "Traceback" not in plan.stdout + plan.stderr and "DescribeStacks failed" not in plan.stdout + plan.stderr
    assert plan.returncode == 2, plan.stdout + plan.stderr                  # 2: something would change
    assert "run   deploy:frontend@test" in plan.stdout and "AddonsTemplateURL" in plan.stdout, plan.stdout

    # Reverted: a plain deploy converges, and the run after it is up to date.
    addon.write_text(original)
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    assert "Traceback" not in out
    final = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    assert final.endswith("_COMPLETE") and "_IN_PROGRESS" not in final, final
    assert _nested(cfn, stack)["StackStatus"].endswith("_COMPLETE")
    up = ws.run("deploy", "name=frontend", "env=test").stdout
    assert all(mark == "--" for mark in marks(up).values()), up


def test_a_good_addons_update_updates_the_nested_stack_in_place(workspace):
    """The other side of patch 11: an addons edit that works is an in-place update of the same nested
    stack, its table kept (moto used to delete the nested stack and create a new one)."""
    ws = workspace
    ws.run("deploy", "name=frontend", "env=test")
    cfn, ddb = ws.client("cloudformation"), ws.client("dynamodb")
    stack = f"{ws.app}-test-frontend"
    before = _nested(cfn, stack)
    params = ws.manifests / "frontend" / "addons" / "addons.parameters.yml"
    params.write_text(params.read_text().replace("ReadCapacity: 10", "ReadCapacity: 20"))
    p = ws.run("deploy", "name=frontend", "env=test")
    assert "Traceback" not in p.stdout + p.stderr
    assert marks(p.stdout)["deploy:frontend@test"] == ".", p.stdout
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    after = _nested(cfn, stack)
    assert after["StackId"] == before["StackId"] and after["StackStatus"] == "UPDATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in after["Parameters"]}["ReadCapacity"] == "20"
    assert f"{ws.app}-test-frontend-orders" in ddb.list_tables()["TableNames"]
    assert all(m == "--" for m in marks(ws.run("deploy", "name=frontend", "env=test").stdout).values())
