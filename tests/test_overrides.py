"""Copilot's overrides/ (YAML patches, CDK) and environment addons: pure, no services."""
from __future__ import annotations

import copy
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from copilot_doit import manifest, overrides, templates
from copilot_doit.errors import UserError
from copilot_doit.hashing import StatCache
from copilot_doit.templates import env as env_t
from copilot_doit.templates import workload

REPO = Path(__file__).resolve().parents[1]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/demo/x@sha256:" + "a" * 64

BASE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Description": "CloudFormation template that represents a service.",
    "Parameters": {"TargetPort": {"Type": "Number"}},
    "Resources": {
        "TaskRole": {"Type": "AWS::IAM::Role", "Properties": {"Path": "/"}},
        "Service": {"Type": "AWS::ECS::Service", "Properties": {
            "DesiredCount": 1,
            "Subnets": {"Fn::Split": [",", {"Fn::ImportValue": "subnets"}]},
            "ServiceConnectConfiguration": {"Services": [{"ClientAliases": [{"Port": 80, "DnsName": "a"}]}]},
            "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}},
        "a/b~c": {"Type": "AWS::SNS::Topic"},
    },
}


def patched(tmp_path, text, template=None):
    folder = tmp_path / "overrides"
    folder.mkdir(exist_ok=True)
    (folder / "cfn.patches.yml").write_text(textwrap.dedent(text))
    src = template if template is not None else BASE
    before = copy.deepcopy(src)
    out = overrides.apply(folder, src)
    assert src == before                                  # the input is never touched
    return out


def error(tmp_path, text, template=None) -> str:
    with pytest.raises(UserError) as e:
        patched(tmp_path, text, template)
    return str(e.value)


# --- kind -------------------------------------------------------------------------------------------------

def test_kind_follows_copilots_lookup(tmp_path):
    d = tmp_path / "overrides"
    assert overrides.kind(d) is None                      # no folder: no override (Copilot's Noop)
    d.mkdir()
    with pytest.raises(UserError, match="empty"):
        overrides.kind(d)
    (d / "README.md").write_text("x")
    with pytest.raises(UserError) as e:
        overrides.kind(d)
    assert str(d) in str(e.value) and "neither cfn.patches.yml nor cdk.json" in str(e.value)
    (d / "cfn.patches.yaml").write_text("[]")
    with pytest.raises(UserError, match=r"only cfn.patches.yml, not \.yaml"):
        overrides.kind(d)
    (d / "cdk.json").write_text("{}")
    assert overrides.kind(d) == "cdk"
    (d / "cfn.patches.yml").write_text("[]")
    assert overrides.kind(d) == "yamlpatch"               # Copilot: the YAML patch wins over cdk.json
    assert overrides.workload_folder(tmp_path, "fe") == tmp_path / "fe" / "overrides"
    assert overrides.env_folder(tmp_path) == tmp_path / "environments" / "overrides"
    assert overrides.env_addons_folder(tmp_path) == tmp_path / "environments" / "addons"


def test_no_folder_is_a_copy(tmp_path):
    out = overrides.apply(tmp_path / "none", BASE)
    assert out == BASE and out is not BASE


# --- every op -----------------------------------------------------------------------------------------------

def test_add_to_map_new_key_and_existing_key(tmp_path):
    out = patched(tmp_path, """\
        - op: add
          path: /Resources/Service/Properties/EnableExecuteCommand
          value: true
        - op: add
          path: /Resources/Service/Properties/DesiredCount
          value: 3
        - op: add
          path: /Resources/TaskRole/Properties/RoleArn
          value: !GetAtt Other.Arn
        - op: add
          path: /Resources/TaskRole/Properties/AssumeRolePolicyDocument
          value: {Version: 2012-10-17, Statement: []}
        """)
    assert out["Resources"]["TaskRole"]["Properties"]["AssumeRolePolicyDocument"]["Version"] == "2012-10-17"
    props = out["Resources"]["Service"]["Properties"]
    assert props["EnableExecuteCommand"] is True and list(props)[-1] == "EnableExecuteCommand"  # appended
    assert props["DesiredCount"] == 3 and list(props)[0] == "DesiredCount"                       # in place
    assert out["Resources"]["TaskRole"]["Properties"]["RoleArn"] == {"Fn::GetAtt": ["Other", "Arn"]}


def test_add_to_list_by_index_and_dash(tmp_path):
    out = patched(tmp_path, """\
        - op: add
          path: /Resources/Service/Properties/Tags/0
          value: {Key: first, Value: "0"}
        - op: add
          path: /Resources/Service/Properties/Tags/-
          value: {Key: last, Value: "9"}
        - op: add
          path: /Resources/Service/Properties/Tags/4
          value: {Key: end, Value: "10"}
        - op: add
          path: /Resources/Service/Properties/ServiceConnectConfiguration/Services/0/ClientAliases/-
          value:
            Port: !Ref TargetPort
            DnsName: yamlpatchiscool
        """)
    props = out["Resources"]["Service"]["Properties"]
    assert [t["Key"] for t in props["Tags"]] == ["first", "a", "b", "last", "end"]
    assert props["ServiceConnectConfiguration"]["Services"][0]["ClientAliases"][-1] == \
        {"Port": {"Ref": "TargetPort"}, "DnsName": "yamlpatchiscool"}


def test_remove_from_map_and_list(tmp_path):
    out = patched(tmp_path, """\
        - op: remove
          path: /Resources/TaskRole
        - op: remove
          path: /Resources/Service/Properties/Tags/0
        """)
    assert "TaskRole" not in out["Resources"]
    assert out["Resources"]["Service"]["Properties"]["Tags"] == [{"Key": "b", "Value": "2"}]


def test_replace_in_map_and_list_and_values_are_independent(tmp_path):
    out = patched(tmp_path, """\
        - op: replace
          path: /Resources/Service/Properties/DesiredCount
          value: 5
        - op: replace
          path: /Resources/Service/Properties/Tags/1/Value
          value: changed
        - op: replace
          path: /Resources/TaskRole/Properties
          value: {Path: /x/}
        - op: add
          path: /Resources/Service/Properties/Tags/-
          value: {Key: same}
        - op: add
          path: /Resources/Service/Properties/Tags/-
          value: {Key: same}
        """)
    props = out["Resources"]["Service"]["Properties"]
    assert props["DesiredCount"] == 5 and props["Tags"][1] == {"Key": "b", "Value": "changed"}
    assert out["Resources"]["TaskRole"]["Properties"] == {"Path": "/x/"}
    assert props["Tags"][-1] is not props["Tags"][-2]


def test_null_value_is_a_value_and_description_is_marked(tmp_path):
    out = patched(tmp_path, """\
        - op: replace
          path: /Resources/Service/Properties/DesiredCount
          value: null
        """)
    assert out["Resources"]["Service"]["Properties"]["DesiredCount"] is None
    assert out["Description"] == "CloudFormation template that represents a service using AWS Copilot with YAML patches."


def test_comment_only_file_changes_only_the_description(tmp_path):
    out = patched(tmp_path, """\
        # Delete the task role resource
        # - op: remove
        #   path: /Resources/TaskRole
        """)
    assert out == {**BASE, "Description": BASE["Description"][:-1] + overrides.YAML_PATCH_SUFFIX}


def test_escapes(tmp_path):
    out = patched(tmp_path, """\
        - op: add
          path: /Resources/a~1b~0c/Properties
          value: {TopicName: t}
        - op: add
          path: /Metadata
          value: {}
        - op: add
          path: /Metadata/x~01
          value: tilde-one
        """)
    assert out["Resources"]["a/b~c"]["Properties"] == {"TopicName": "t"}
    assert out["Metadata"] == {"x~1": "tilde-one"}             # ~01 is "~1", not "/"
    assert overrides.pointer("/a~1b/~0~1/") == ["a/b", "~/", ""]


def test_paths_through_short_form_intrinsics(tmp_path):
    # In Copilot's YAML `Subnets: !Split [",", !ImportValue subnets]` is a list: /Subnets/1 is its 2nd item.
    out = patched(tmp_path, """\
        - op: replace
          path: /Resources/Service/Properties/Subnets/1
          value: !ImportValue other-subnets
        """)
    assert out["Resources"]["Service"]["Properties"]["Subnets"] == \
        {"Fn::Split": [",", {"Fn::ImportValue": "other-subnets"}]}
    msg = error(tmp_path, """\
        - op: add
          path: /Resources/Service/Properties/Subnets/1/Foo
          value: x
        """)
    assert "/Resources/Service/Properties/Subnets/1 is a Fn::ImportValue value, not a map or a list: " \
           "'Foo' cannot be there" in msg


# --- errors ------------------------------------------------------------------------------------------------

def test_missing_path_names_file_index_line_and_what_is_there(tmp_path):
    msg = error(tmp_path, """\
        - op: add
          path: /Resources/TaskRole/Properties/Path
          value: /y/
        # second patch
        - op: replace
          path: /Resources/Servic/Properties/DesiredCount
          value: 2
        """)
    f = tmp_path / "overrides" / "cfn.patches.yml"
    assert msg.startswith(f"{f}:6: field '[1].path': patch 1 (replace /Resources/Servic/Properties/DesiredCount): "
                          "'Servic' not found in /Resources (it has: TaskRole, Service, a/b~c)")


@pytest.mark.parametrize("text, wanted", [
    ("- op: move\n  path: /Resources\n  from: /x\n", "unknown key 'from'"),
    ("- op: move\n  path: /Resources\n", "op 'move' is not supported (allowed: add, remove, replace"),
    ("- op: test\n  path: /Resources\n  value: 1\n", "op 'test' is not supported"),
    ("- path: /Resources\n", ":1: field '[0].op': patch 0: no op is not supported"),
    ("- op: add\n  path: /Resources/X\n", ":1: field '[0].value': patch 0 (add /Resources/X): value required"),
    ("- op: replace\n  path: Resources/X\n  value: 1\n", "path 'Resources/X' must start with '/'"),
    ("- op: remove\n  path: [a]\n", "path must be a string"),
    ("op: add\n", ":1: must be a list of patches"),
    ("- just a string\n", "patch 0 must be a mapping"),
    ("- op: add\n  path: /x\n  value: [unclosed\n", "invalid YAML"),
    ("- op: replace\n  path: /Resources/Service/Properties/Tags/2\n  value: {}\n",
     "index 2 is out of bounds for the list at /Resources/Service/Properties/Tags of length 2"),
    ("- op: add\n  path: /Resources/Service/Properties/Tags/3\n  value: {}\n", "of length 2 (use - to append)"),
    ("- op: remove\n  path: /Resources/Service/Properties/Tags/-\n",
     "/Resources/Service/Properties/Tags is a list: expected an index, got '-'"),
    ("- op: replace\n  path: /Resources/Service/Properties/Tags/x/Key\n  value: k\n", "expected an index, got 'x'"),
    ("- op: remove\n  path: /Resources/Nope\n", "'Nope' not found in /Resources"),
    ("- op: add\n  path: /Resources/Service/Type/Foo\n  value: 1\n",
     "/Resources/Service/Type is a string, not a map or a list"),
    ("- op: remove\n  path: ''\n", "the whole template cannot be removed"),
])
def test_bad_patches_are_user_errors(tmp_path, text, wanted):
    msg = error(tmp_path, text)
    assert str(tmp_path / "overrides" / "cfn.patches.yml") in msg
    assert wanted in msg


# --- a real rendered template, then cfn-lint -------------------------------------------------------------

def test_patch_a_rendered_sample_template_and_lint_it(tmp_path):
    from cfnlint.api import lint

    m = manifest.load_workload(REPO / "manifests/frontend/manifest.yml", "demo", "test", "frontend")
    t, _ = workload.render(workload.RenderInput(m, "demo", "test", IMAGE))
    rendered = templates.dump(t)
    out = patched(tmp_path, """\
        # Copilot's scaffold examples, adapted to this service
        - op: replace
          path: /Resources/TaskDefinition/Properties/TaskRoleArn
          value: arn:aws:iam::123456789012:role/MyTaskRole
        - op: add
          path: /Resources/TaskDefinition/Properties/ContainerDefinitions/0/Environment/-
          value:
            Name: FROM_PATCH
            Value: !Sub '${AppName}-patched'
        - op: add
          path: /Resources/Service/Properties/DeploymentConfiguration/MinimumHealthyPercent
          value: 50
        - op: remove
          path: /Resources/Service/Properties/HealthCheckGracePeriodSeconds
        - op: add
          path: /Resources/ExtraQueue
          value:
            Type: AWS::SQS::Queue
            Properties:
              MessageRetentionPeriod: 600
        - op: add
          path: /Outputs/ExtraQueueUrl
          value:
            Value: !Ref ExtraQueue
        """, template=t)
    assert templates.dump(t) == rendered                          # the rendered template is untouched
    assert out["Resources"]["TaskDefinition"]["Properties"]["TaskRoleArn"] == "arn:aws:iam::123456789012:role/MyTaskRole"
    env = out["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"]
    assert env[-1] == {"Name": "FROM_PATCH", "Value": {"Fn::Sub": "${AppName}-patched"}}
    assert "HealthCheckGracePeriodSeconds" not in out["Resources"]["Service"]["Properties"]
    assert out["Description"].endswith(overrides.YAML_PATCH_SUFFIX)
    problems = [(m.rule.id, m.linenumber, m.message) for m in lint(templates.dump(out), regions=["us-east-1"])]
    assert problems == []


# --- CDK ----------------------------------------------------------------------------------------------------

def _cdk_folder(tmp_path) -> Path:
    d = tmp_path / "overrides"
    d.mkdir()
    (d / "cdk.json").write_text('{"app": "npx ts-node --prefer-ts-exts bin/override.ts"}')
    (d / "stack.ts").write_text("// the user's CDK app\n")
    return d


def test_cdk_without_cdk_installed_is_a_clear_error(tmp_path, monkeypatch):
    d = _cdk_folder(tmp_path)
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))                 # no npx, no cdk
    with pytest.raises(UserError) as e:
        overrides.apply(d, BASE, app="demo", env="test")
    assert str(e.value).startswith(f"{d}: CDK overrides need the AWS CDK installed (npm install in {d}); "
                                   "copilot-doit never downloads it")
    fake_npx = empty / "npx"                               # npx alone is not enough: no cdk anywhere
    fake_npx.write_text("#!/bin/sh\nexit 99\n")
    fake_npx.chmod(0o755)
    with pytest.raises(UserError, match="never downloads it"):
        overrides.apply(d, BASE)
    assert not (d / "node_modules").exists() and not (d / ".build").exists()   # nothing installed, nothing run


FAKE_CDK = """\
#!{python}
# Stands in for node_modules/.bin/cdk: checks Copilot's invocation, prints the transformed template.
import os, sys, yaml
assert sys.argv[1:] == ["synth", "--no-version-reporting"], sys.argv
assert os.environ["COPILOT_APPLICATION_NAME"] == "demo" and os.environ["COPILOT_ENVIRONMENT_NAME"] == "test"
assert os.environ["npm_config_yes"] == "false"
t = yaml.safe_load(open(os.path.join(".build", "in.yml")))
t["Resources"]["Service"]["Properties"]["DesiredCount"] = 7
t["Parameters"]["BootstrapVersion"] = {{"Type": "AWS::SSM::Parameter::Value<String>"}}
t["Rules"] = {{"CheckBootstrapVersion": {{"Assertions": []}}}}
print(yaml.safe_dump(t, sort_keys=False))
"""


def test_cdk_runs_copilots_way_when_installed(tmp_path, monkeypatch):
    d = _cdk_folder(tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "npx").write_text("#!/bin/sh\nexit 99\n")
    (bindir / "npx").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.path.dirname(sys.executable)}{os.pathsep}/usr/bin:/bin")
    cdk = d / "node_modules" / ".bin" / "cdk"
    cdk.parent.mkdir(parents=True)
    cdk.write_text(FAKE_CDK.format(python=sys.executable))
    cdk.chmod(cdk.stat().st_mode | stat.S_IEXEC)
    out = overrides.apply(d, BASE, app="demo", env="test", timeout=60)
    assert out["Resources"]["Service"]["Properties"]["DesiredCount"] == 7
    assert "Rules" not in out and "BootstrapVersion" not in out["Parameters"]
    assert out["Description"] == "CloudFormation template that represents a service using AWS Copilot and CDK."
    assert (d / ".build" / "in.yml").is_file()             # where Copilot's scaffolded app reads it
    cdk.write_text("#!/bin/sh\necho 'Error: boom' >&2\nexit 3\n")
    with pytest.raises(UserError, match=r"`cdk synth` failed \(exit 3\):\nError: boom"):
        overrides.apply(d, BASE, app="demo", env="test")


# --- digest -------------------------------------------------------------------------------------------------

def test_digest_follows_the_patch_file_not_node_modules(tmp_path):
    d = tmp_path / "overrides"
    assert overrides.digest(d, StatCache(None)) is None
    d.mkdir()
    (d / "cfn.patches.yml").write_text("- op: remove\n  path: /Resources/TaskRole\n")
    (d / "lib").mkdir()
    (d / "lib" / "helper.ts").write_text("// part of the app\n")
    first = overrides.digest(d, StatCache(None))
    for junk in ("node_modules/aws-cdk-lib/index.js", "cdk.out/Stack.template.json", ".build/in.yml",
                 "lib/node_modules/x.js"):
        (d / junk).parent.mkdir(parents=True, exist_ok=True)
        (d / junk).write_text("generated")
    assert overrides.digest(d, StatCache(None)) == first
    (d / "cfn.patches.yml").write_text("- op: remove\n  path: /Resources/Service\n")
    second = overrides.digest(d, StatCache(None))
    assert second != first
    (d / "package-lock.json").write_text("{}")
    assert overrides.digest(d, StatCache(None)) not in (first, second)


# --- environment addons -----------------------------------------------------------------------------------

ENV_ADDON = """\
Parameters:
  App: {Type: String}
  Env: {Type: String}
  Retention: {Type: Number}
Resources:
  SharedBucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub '${App}-${Env}-shared'
Outputs:
  SharedBucketName:
    Value: !Ref SharedBucket
    Export: {Name: !Sub '${App}-${Env}-SharedBucketName'}
"""

ENV_ADDON_2 = """\
Parameters:
  App: {Type: String}
  Env: {Type: String}
Resources:
  SharedTopic: {Type: AWS::SNS::Topic}
"""


def _env_addons(tmp_path, params="Parameters:\n  Retention: 7\n") -> Path:
    d = tmp_path / "environments" / "addons"
    d.mkdir(parents=True)
    (d / "bucket.yml").write_text(ENV_ADDON)
    (d / "topic.yaml").write_text(ENV_ADDON_2)
    if params is not None:
        (d / "addons.parameters.yml").write_text(params)
    return d


def test_env_addons_merge_and_nested_stack(tmp_path):
    from cfnlint.api import lint

    d = _env_addons(tmp_path)
    pkg = overrides.env_addons(d)
    assert set(pkg["template"]["Resources"]) == {"SharedBucket", "SharedTopic"}
    assert pkg["template"]["AWSTemplateFormatVersion"] == "2010-09-09"
    assert pkg["parameters"] == {"Retention": 7}
    body = templates.dump(pkg["template"]).encode()
    key = overrides.env_addons_s3_key(body)
    assert key.startswith("manual/addons/environments/") and key.endswith(".yml") and len(key) == 27 + 64 + 4
    assert [(m.rule.id, m.message) for m in lint(body.decode(), regions=["us-east-1"])
            if m.rule.id[0] == "E"] == []

    em = manifest.load_environment(REPO / "manifests/environments/test/manifest.yml", "demo", "test")
    t, _ = env_t.render("demo", "test", em.data)
    before = copy.deepcopy(t)
    url = "https://s3.us-east-1.amazonaws.com/bucket/" + key
    out = overrides.env_addons_stack(t, url, pkg["parameters"])
    assert t == before
    assert out["Resources"]["AddonsStack"] == {
        "Metadata": {"aws:copilot:description": "A CloudFormation nested stack for your additional AWS resources"},
        "Type": "AWS::CloudFormation::Stack",
        "Properties": {"Parameters": {"App": {"Ref": "AppName"}, "Env": {"Ref": "EnvironmentName"}, "Retention": 7},
                       "TemplateURL": url}}
    assert [(m.rule.id, m.linenumber, m.message) for m in lint(templates.dump(out), regions=["us-east-1"])] == []


def test_env_addons_parameter_rules(tmp_path):
    assert overrides.env_addons(tmp_path / "none") is None
    d = _env_addons(tmp_path / "a", params=None)
    with pytest.raises(UserError, match="'Retention' has no Default and no value"):
        overrides.env_addons(d)
    d = _env_addons(tmp_path / "b", params="Parameters:\n  Env: x\n  Retention: 1\n")
    with pytest.raises(UserError, match="'Env' is reserved"):
        overrides.env_addons(d)
    d = _env_addons(tmp_path / "c", params="Parameters:\n  Retention: 1\n  Nope: 2\n")
    with pytest.raises(UserError, match="'Nope' is not a parameter"):
        overrides.env_addons(d)
    d = _env_addons(tmp_path / "d", params="Other: 1\n")
    with pytest.raises(UserError, match="must define 'Parameters'"):
        overrides.env_addons(d)
    d = _env_addons(tmp_path / "e")
    (d / "topic.yaml").write_text("Parameters:\n  App: {Type: String}\nResources:\n  SharedTopic: {Type: AWS::SNS::Topic}\n")
    (d / "bucket.yml").write_text(ENV_ADDON.replace("  Env: {Type: String}\n", ""))
    with pytest.raises(UserError, match="must declare the parameters Env"):
        overrides.env_addons(d)
    # Name is reserved for workload addons only: an environment addon may take it as its own parameter.
    d = _env_addons(tmp_path / "f", params="Parameters:\n  Retention: 1\n  Name: shared\n")
    (d / "bucket.yml").write_text(ENV_ADDON.replace("  Retention: {Type: Number}\n",
                                                    "  Retention: {Type: Number}\n  Name: {Type: String}\n"))
    assert overrides.env_addons(d)["parameters"] == {"Retention": 1, "Name": "shared"}


def test_env_addons_conflicts_name_both_files(tmp_path):
    d = _env_addons(tmp_path)
    (d / "topic.yaml").write_text(ENV_ADDON_2 + "  SharedBucket: {Type: AWS::SNS::Topic}\n")
    with pytest.raises(UserError, match="Resources 'SharedBucket' is defined differently in"):
        overrides.env_addons(d)
