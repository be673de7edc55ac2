"""Addons: Copilot's merge (its own test vectors), parameters file rules, output wiring (pure)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from copilot_doit import addons, cfnyaml, manifest, templates
from copilot_doit.errors import UserError
from copilot_doit.templates import workload

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "copilot-fixtures" / "addon-testdata"
needs_fixtures = pytest.mark.skipif(not SHARED.is_dir() and os.environ.get("CI", "").lower() != "true",
                                    reason="shared/copilot-fixtures is not beside the repo")


@needs_fixtures
def test_merge_gives_copilots_wanted_yaml():
    merged = addons.merge([SHARED / "merge/first.yaml", SHARED / "merge/second.yaml"])
    wanted, _ = cfnyaml.load("wanted.yaml", (SHARED / "merge/wanted.yaml").read_text())
    assert merged == wanted


def test_conflicting_logical_ids_name_both_files_and_lines(tmp_path):
    a = tmp_path / "a.yml"
    b = tmp_path / "b.yml"
    a.write_text("Resources:\n  Table:\n    Type: AWS::DynamoDB::Table\n")
    b.write_text("# other\nResources:\n  Table:\n    Type: AWS::S3::Bucket\n")
    with pytest.raises(UserError) as e:
        addons.merge([a, b])
    msg = str(e.value)
    assert f"Resources 'Table' is defined differently in {a}:2 and {b}:3" in msg
    b.write_text("Resources:\n  Table: {Type: 'AWS::DynamoDB::Table'}   # same, other style\n")
    assert addons.merge([a, b])["Resources"] == {"Table": {"Type": "AWS::DynamoDB::Table"}}


def test_parameters_file_rules(tmp_path):
    d = tmp_path / "addons"
    d.mkdir()
    base = {"Parameters": {"App": {"Type": "String"}, "Env": {"Type": "String"}, "Name": {"Type": "String"},
                           "Size": {"Type": "Number"}}}
    with pytest.raises(UserError, match="'Size' has no Default and no value"):
        addons.read_parameters(d, base)
    (d / "addons.parameters.yml").write_text("Parameters:\n  Size: 3\n  Bogus: 1\n")
    with pytest.raises(UserError, match=r"addons.parameters.yml:3: field 'Parameters.Bogus': 'Bogus' is not a parameter"):
        addons.read_parameters(d, base)
    (d / "addons.parameters.yml").write_text("Parameters:\n  Env: prod\n")
    with pytest.raises(UserError, match="'Env' is reserved"):
        addons.read_parameters(d, base)
    (d / "addons.parameters.yml").write_text("Parameters:\n  Size: !Ref Env\n")
    assert addons.read_parameters(d, base) == {"Size": {"Ref": "Env"}}
    (d / "addons.parameters.yaml").write_text("Parameters: {}\n")
    with pytest.raises(UserError, match="only one of"):
        addons.read_parameters(d, base)
    (d / "addons.parameters.yaml").unlink()
    with pytest.raises(UserError, match="must declare the parameters App, Env, Name"):
        addons.read_parameters(d, {"Parameters": {}})


def test_outputs_are_wired_as_copilot_does(tmp_path):
    folder = tmp_path / "addons"
    shutil.copytree(REPO / "manifests/frontend/addons", folder)
    header = (folder / "orders-table.yml").read_text().split("  ReadCapacity:")[0]   # the same App/Env/Name
    (folder / "secret.yml").write_text(header + """
Resources:
  DbSecret: {Type: AWS::SecretsManager::Secret, Properties: {GenerateSecretString: {PasswordLength: 20}}}
Outputs:
  DbSecret: {Value: !Ref DbSecret}
""")
    packaged = addons.package(folder)
    assert packaged["outputs"] == {"OrdersTableName": "value", "OrdersTableAccessPolicy": "AWS::IAM::ManagedPolicy",
                                   "DbSecret": "AWS::SecretsManager::Secret"}
    assert packaged["parameters"] == {"ReadCapacity": 10}
    m = manifest.load_workload(REPO / "manifests/frontend/manifest.yml", "demo", "test", "frontend")
    t, params = workload.render(workload.RenderInput(m, "demo", "test", "img", addons={
        "url": "https://b.s3.us-east-1.amazonaws.com/k.yml", **{k: packaged[k] for k in ("parameters", "outputs")}}))
    res = t["Resources"]
    assert res["AddonsStack"]["Properties"]["Parameters"] == {"App": {"Ref": "AppName"}, "Env": {"Ref": "EnvName"},
                                                             "Name": {"Ref": "WorkloadName"}, "ReadCapacity": 10}
    assert res["TaskRole"]["Properties"]["ManagedPolicyArns"] == [
        {"Fn::GetAtt": ["AddonsStack", "Outputs.OrdersTableAccessPolicy"]}]
    c = res["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert {"Name": "ORDERS_TABLE_NAME", "Value": {"Fn::GetAtt": ["AddonsStack", "Outputs.OrdersTableName"]}} in c["Environment"]
    assert {"Name": "DB_SECRET", "ValueFrom": {"Fn::GetAtt": ["AddonsStack", "Outputs.DbSecret"]}} in c["Secrets"]
    assert params["AddonsTemplateURL"] == "https://b.s3.us-east-1.amazonaws.com/k.yml"
    from cfnlint.api import lint
    assert [m.rule.id for m in lint(templates.dump(t), regions=["us-east-1"])] == []
    assert [m.rule.id for m in lint(templates.dump(packaged["template"]), regions=["us-east-1"])
            if m.rule.severity == "error"] == []


@needs_fixtures
@pytest.mark.parametrize("name", ["ddb.yml", "bucket.yml"])
def test_copilot_storage_addons_package_and_lint(tmp_path, name):
    folder = tmp_path / "addons"
    folder.mkdir()
    shutil.copy(SHARED / "storage" / name, folder / name)
    packaged = addons.package(folder)
    from cfnlint.api import lint
    errors = [m for m in lint(templates.dump(packaged["template"]), regions=["us-east-1"]) if m.rule.severity == "error"]
    assert errors == []
    assert "AWS::IAM::ManagedPolicy" in packaged["outputs"].values()
