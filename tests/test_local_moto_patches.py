"""One test per moto patch in copilot_doit/targets/local/moto_server.py, against the tool's own moto server.

Each test exercises exactly the behaviour the patch restores; without the patch it fails (the failure
modes are in research/feasibility.md §1.b.6 and in the patch comments).
"""
from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.e2e


@pytest.fixture
def cfn(services_up):
    return boto3.client("cloudformation", endpoint_url=services_up.moto_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def ecs(services_up):
    return boto3.client("ecs", endpoint_url=services_up.moto_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def name():
    return "p" + uuid.uuid4().hex[:10]


def via_change_set(cfn, stack, template, params=None, tags=None, kind=None):
    kind = kind or ("UPDATE" if _exists(cfn, stack) else "CREATE")
    cs = cfn.create_change_set(StackName=stack, ChangeSetName=name(), ChangeSetType=kind,
                               TemplateBody=json.dumps(template),
                               Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (params or {}).items()],
                               Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()])
    desc = cfn.describe_change_set(ChangeSetName=cs["Id"])
    if desc["Status"] == "FAILED":
        return desc
    cfn.execute_change_set(ChangeSetName=cs["Id"])
    return cfn.describe_stacks(StackName=stack)["Stacks"][0]


def _exists(cfn, stack):
    try:
        cfn.describe_stacks(StackName=stack)
        return True
    except ClientError:
        return False


def exporter(export, value="v1"):
    return {"Parameters": {"V": {"Type": "String", "Default": value}},
            "Resources": {"Log": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": {"Fn::Sub": f"/{export}-${{V}}"}}}},
            "Outputs": {"Out": {"Value": {"Ref": "V"}, "Export": {"Name": export}}}}


def test_patch1_and_3_create_change_set_resolves_exports_of_a_change_set_stack(cfn):
    export = name()
    first = via_change_set(cfn, name(), exporter(export))
    assert first["Outputs"][0]["OutputValue"] == "v1"                     # patch 3: outputs refreshed
    importer = {"Resources": {"Log": {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": {"Fn::Join": ["-", ["/imp", {"Fn::ImportValue": export}]]}}}}}
    st = via_change_set(cfn, name(), importer)                             # patch 1 (+ 3: export registered)
    assert st["StackStatus"] == "CREATE_COMPLETE"


def test_patch3_outputs_and_parameters_refreshed_after_update_change_set(cfn):
    stack = name()
    export = name()
    via_change_set(cfn, stack, exporter(export), params={"V": "a"})
    st = via_change_set(cfn, stack, exporter(export), params={"V": "b"})
    assert {p["ParameterKey"]: p["ParameterValue"] for p in st["Parameters"]} == {"V": "b"}
    assert st["Outputs"][0]["OutputValue"] == "b"


def test_patch4_noop_update_stack_fails_like_aws(cfn):
    stack = name()
    body = json.dumps(exporter(name()))
    cfn.create_stack(StackName=stack, TemplateBody=body)
    with pytest.raises(ClientError, match="No updates are to be performed"):
        cfn.update_stack(StackName=stack, TemplateBody=body)


def test_patch5_tags_only_change_set_updates_stack_tags(cfn):
    stack = name()
    tpl = exporter(name())
    via_change_set(cfn, stack, tpl, params={"V": "x"}, tags={"a": "1"})
    st = via_change_set(cfn, stack, tpl, params={"V": "x"}, tags={"a": "2"})
    assert st.get("StackStatus") == "UPDATE_COMPLETE", st
    assert {t["Key"]: t["Value"] for t in st["Tags"]} == {"a": "2"}
    same = via_change_set(cfn, stack, tpl, params={"V": "x"}, tags={"a": "2"})
    assert same["Status"] == "FAILED" and "didn't contain changes" in same["StatusReason"]


def ecs_template(image, count="1"):
    return {"Parameters": {"Image": {"Type": "String"}, "Count": {"Type": "String"}},
            "Resources": {
                "Cluster": {"Type": "AWS::ECS::Cluster"},
                "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
                    "Family": "fam-" + image.split(":")[0], "Memory": "512",
                    "ContainerDefinitions": [{"Name": "app", "Image": {"Ref": "Image"}}]}},
                "Service": {"Type": "AWS::ECS::Service", "Properties": {
                    "Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "Task"}, "DesiredCount": {"Ref": "Count"}}}},
            "Outputs": {"Task": {"Value": {"Ref": "Task"}}}}


def test_patch2_and_6_ecs_task_definition_update_and_desired_count_parameter(cfn, ecs):
    stack = name()
    fam = name()
    st = via_change_set(cfn, stack, ecs_template(fam), params={"Image": "img:1", "Count": "2"})   # patch 6
    assert st["StackStatus"] == "CREATE_COMPLETE"
    st = via_change_set(cfn, stack, ecs_template(fam), params={"Image": "img:2", "Count": "3"})  # patches 2, 6
    assert st["StackStatus"] == "UPDATE_COMPLETE"
    arn = st["Outputs"][0]["OutputValue"]
    td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    assert td["containerDefinitions"][0]["image"] == "img:2"
    assert td["containerDefinitions"][0]["name"] == "app"


def test_patch7_held_update_is_cancelled_by_cancel_update_stack_and_rolls_back(cfn):
    import time
    stack = name()
    tpl = exporter(name())
    via_change_set(cfn, stack, tpl, params={"V": "a"})
    with pytest.raises(ClientError, match="CancelUpdateStack cannot be called from current stack status"):
        cfn.cancel_update_stack(StackName=stack)                           # as on AWS: nothing in progress
    held = dict(tpl, Metadata={"CopilotDoitEmulatorHold": {"Seconds": 60}})
    assert via_change_set(cfn, stack, held, params={"V": "b"})["StackStatus"] == "UPDATE_IN_PROGRESS"
    time.sleep(0.3)
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "UPDATE_IN_PROGRESS"  # still held
    cfn.cancel_update_stack(StackName=stack)
    st = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert st["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in st["Parameters"]} == {"V": "a"}      # the previous one
    assert "Metadata" not in cfn.get_template(StackName=stack)["TemplateBody"]
    events = [e["ResourceStatus"] for e in cfn.describe_stack_events(StackName=stack)["StackEvents"]][:4]
    assert events == ["UPDATE_ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
                      "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_IN_PROGRESS"]
    assert via_change_set(cfn, stack, tpl, params={"V": "c"})["StackStatus"] == "UPDATE_COMPLETE"  # no marker: at once


def test_patch7_held_create_ends_at_its_time_or_when_deleted(cfn):
    import time
    stack = name()
    st = via_change_set(cfn, stack, exporter(name()), params={"V": "a"}, tags={"copilot-doit-emulator:hold": "0.5"})
    assert st["StackStatus"] == "CREATE_IN_PROGRESS"
    time.sleep(0.6)
    st = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert st["StackStatus"] == "CREATE_COMPLETE" and st["Outputs"][0]["OutputValue"] == "a"   # executed as usual
    other = name()
    st = via_change_set(cfn, other, exporter(name()), tags={"copilot-doit-emulator:hold": "60"})
    assert st["StackStatus"] == "CREATE_IN_PROGRESS"
    cfn.delete_stack(StackName=st["StackId"])
    assert cfn.describe_stacks(StackName=st["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"


def test_patch8_a_resource_moto_cannot_update_in_place_keeps_the_stack_readable(cfn):
    stack = name()

    def template(days):
        return {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"},
                              "Log": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": days}}}}
    via_change_set(cfn, stack, template(7))
    assert via_change_set(cfn, stack, template(14))["StackStatus"] == "UPDATE_COMPLETE"
    # Without the patch moto stored None for the LogGroup and this answered HTTP 500.
    topic = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="Topic")["StackResourceDetail"]
    assert topic["PhysicalResourceId"]
    assert {r["LogicalResourceId"] for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]} == {"Topic", "Log"}


def test_patch9_cloudformation_load_balancer_type_network_takes_udp_listeners(cfn, services_up):
    stack = name()
    tpl = {"Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.9.0.0/16"}},
        "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.9.0.0/24",
                                                               "AvailabilityZone": "us-east-1a"}},
        "SubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.9.1.0/24",
                                                               "AvailabilityZone": "us-east-1b"}},
        "Nlb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
            "Type": "network", "Scheme": "internet-facing", "Subnets": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]}},
        "Tg": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {
            "Port": 8080, "Protocol": "UDP", "TargetType": "ip", "VpcId": {"Ref": "Vpc"},
            "HealthCheckProtocol": "TCP", "HealthCheckPort": "80"}},
        "Udp": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "LoadBalancerArn": {"Ref": "Nlb"}, "Port": 8080, "Protocol": "UDP",
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "Tg"}}]}}},
        "Outputs": {"Nlb": {"Value": {"Ref": "Nlb"}}}}
    st = via_change_set(cfn, stack, tpl)   # without the patch: "Listener protocol 'UDP' must be one of 'HTTP, HTTPS'"
    assert st["StackStatus"] == "CREATE_COMPLETE", st
    elbv2 = boto3.client("elbv2", endpoint_url=services_up.moto_url, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    arn = st["Outputs"][0]["OutputValue"]
    assert elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]["Type"] == "network"
    listeners = elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
    assert [(x["Protocol"], x["Port"]) for x in listeners] == [("UDP", 8080)]


def test_patch10_a_stack_with_a_vpc_and_internet_gateway_deletes(cfn, services_up):
    stack = name()
    tpl = {"Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.8.0.0/16"}},
        "Igw": {"Type": "AWS::EC2::InternetGateway"},
        "Att": {"Type": "AWS::EC2::VPCGatewayAttachment",
                "Properties": {"VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "Igw"}}},
        "Rt": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
        "Route": {"Type": "AWS::EC2::Route", "DependsOn": "Att", "Properties": {
            "RouteTableId": {"Ref": "Rt"}, "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": {"Ref": "Igw"}}},
        "Sub": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.8.0.0/24",
                                                           "AvailabilityZone": "us-east-1a"}},
        "Assoc": {"Type": "AWS::EC2::SubnetRouteTableAssociation",
                  "Properties": {"RouteTableId": {"Ref": "Rt"}, "SubnetId": {"Ref": "Sub"}}}},
        "Outputs": {"Vpc": {"Value": {"Ref": "Vpc"}}, "Igw": {"Value": {"Ref": "Igw"}}}}
    st = via_change_set(cfn, stack, tpl)
    out = {o["OutputKey"]: o["OutputValue"] for o in st["Outputs"]}
    cfn.delete_stack(StackName=st["StackId"])    # without the patch: DependencyViolation (the vpc has dependencies)
    assert cfn.describe_stacks(StackName=st["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    ec2 = boto3.client("ec2", endpoint_url=services_up.moto_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    assert not [v for v in ec2.describe_vpcs()["Vpcs"] if v["VpcId"] == out["Vpc"]]
    assert not [g for g in ec2.describe_internet_gateways()["InternetGateways"] if g["InternetGatewayId"] == out["Igw"]]


def _nested_fixture(cfn, services_up):
    """A bucket holding nested templates (TemplateURL path-style at localhost, as the local target uploads them)."""
    from urllib.parse import urlsplit
    s3 = boto3.client("s3", endpoint_url=services_up.moto_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    ddb = boto3.client("dynamodb", endpoint_url=services_up.moto_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    port = urlsplit(services_up.moto_url).port

    def table(table_name):
        return {"Type": "AWS::DynamoDB::Table", "Properties": {
            "TableName": table_name, "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}}

    def url(resources: dict) -> str:
        body = {"Parameters": {"T": {"Type": "String"}},
                "Resources": {"Table": table({"Ref": "T"}), **resources},
                "Outputs": {"TableName": {"Value": {"Ref": "Table"}}}}
        key = name() + ".yml"
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode())
        return f"http://localhost:{port}/{bucket}/{key}"

    def parent(*nested: str) -> dict:
        return {"Parameters": {n + "Url": {"Type": "String"} for n in nested},
                "Resources": {n: {"Type": "AWS::CloudFormation::Stack", "Properties": {
                    "TemplateURL": {"Ref": n + "Url"}, "Parameters": {"T": {"Fn::Sub": "${AWS::StackName}-" + n}}}}
                    for n in nested}}

    return ddb, table, url, parent


def _all_stacks(cfn) -> list[dict]:
    """Every page: the worker's emulator holds the stacks of every test before this one."""
    return [s for page in cfn.get_paginator("describe_stacks").paginate() for s in page["Stacks"]]


def test_patch11_a_failed_nested_stack_update_rolls_back_and_describe_stacks_answers(cfn, services_up):
    ddb, table, url, parent = _nested_fixture(cfn, services_up)
    stack = name()
    v1 = url({})
    assert via_change_set(cfn, stack, parent("Addons"), params={"AddonsUrl": v1})["StackStatus"] == "CREATE_COMPLETE"
    nested_id = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="Addons")["StackResourceDetail"]["PhysicalResourceId"]
    nested = cfn.describe_stacks(StackName=nested_id)["Stacks"][0]
    own = f"{stack}-Addons"
    assert nested["Outputs"][0]["OutputValue"] == own
    taken = name()
    ddb.create_table(**{k: v for k, v in table(taken)["Properties"].items()})

    # The nested update fails (a table of that name exists). Without the patch ExecuteChangeSet answered
    # "Table already exists", four half-created nested stacks stayed CREATE_IN_PROGRESS and every
    # DescribeStacks without a name answered HTTP 400 until the emulator was reset.
    first = name()   # created before the failing one, removed by the rollback
    st = via_change_set(cfn, stack, parent("Addons"), params={"AddonsUrl": url({"First": table(first), "Clash": table(taken)})})
    assert st["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE", st
    assert {p["ParameterKey"]: p["ParameterValue"] for p in st["Parameters"]} == {"AddonsUrl": v1}
    listed = {s["StackId"]: s["StackStatus"] for s in _all_stacks(cfn)}                      # answers
    assert not [s for s, status in listed.items() if f"/{stack}" in s and status.endswith("_IN_PROGRESS")]
    nested = cfn.describe_stacks(StackName=nested_id)["Stacks"][0]                          # the same one, in place
    assert nested["StackId"] in listed and nested["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert nested["Outputs"][0]["OutputValue"] == own and own in ddb.list_tables()["TableNames"]
    assert "Clash" not in json.dumps(cfn.get_template(StackName=nested_id)["TemplateBody"])
    assert first not in ddb.list_tables()["TableNames"]
    failed = [e for e in cfn.describe_stack_events(StackName=stack)["StackEvents"] if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert failed and failed[0]["LogicalResourceId"] == "Addons"
    assert f"Table already exists: {taken}" in failed[0]["ResourceStatusReason"]
    inner = [e for e in cfn.describe_stack_events(StackName=nested_id)["StackEvents"] if e["ResourceStatus"] == "CREATE_FAILED"]
    assert inner and inner[0]["LogicalResourceId"] == "Clash"

    # A good update then goes through, in place (the table the nested stack holds is kept; the one the
    # rollback removed is created again).
    st = via_change_set(cfn, stack, parent("Addons"), params={"AddonsUrl": url({"First": table(first)})})
    assert st["StackStatus"] == "UPDATE_COMPLETE"
    nested = cfn.describe_stacks(StackName=nested_id)["Stacks"][0]
    assert nested["StackStatus"] == "UPDATE_COMPLETE"
    assert {own, first} <= set(ddb.list_tables()["TableNames"])


def test_patch11_a_nested_stack_that_fails_to_create_leaves_nothing_half_made(cfn, services_up):
    ddb, table, url, parent = _nested_fixture(cfn, services_up)
    stack = name()
    v1 = url({})
    via_change_set(cfn, stack, parent("Addons"), params={"AddonsUrl": v1})
    taken = name()
    ddb.create_table(**{k: v for k, v in table(taken)["Properties"].items()})
    before = {s["StackId"] for s in _all_stacks(cfn) if f"/{stack}" in s["StackId"]}
    st = via_change_set(cfn, stack, parent("Addons", "Extra"), params={"AddonsUrl": v1, "ExtraUrl": url({"Clash": table(taken)})})
    assert st["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE", st
    after = _all_stacks(cfn)                                                                  # answers
    assert {s["StackId"] for s in after if f"/{stack}" in s["StackId"]} == before                                           # no half-made nested stack
    assert f"{stack}-Extra" not in ddb.list_tables()["TableNames"]                           # its first table removed
    assert {r["LogicalResourceId"] for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]} == {"Addons"}


def test_patch12_an_output_whose_condition_is_false_is_left_out(cfn):
    """Copilot's env template exports the public load balancer's DNS name under `Condition: CreateALB`;
    with no load-balanced workload the condition is false and the load balancer is not created."""
    stack = name()
    template = {"Parameters": {"Workloads": {"Type": "String", "Default": ""}},
                "Conditions": {"HasWorkloads": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Workloads"}, ""]}]}},
                "Resources": {"Log": {"Type": "AWS::Logs::LogGroup"},
                              "Topic": {"Type": "AWS::SNS::Topic", "Condition": "HasWorkloads"}},
                "Outputs": {"LogName": {"Value": {"Ref": "Log"}, "Export": {"Name": f"{stack}-LogName"}},
                            "TopicName": {"Condition": "HasWorkloads", "Value": {"Fn::GetAtt": ["Topic", "TopicName"]},
                                          "Export": {"Name": f"{stack}-TopicName"}}}}
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    out = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    assert out["StackStatus"] == "CREATE_COMPLETE"
    assert [o["OutputKey"] for o in out["Outputs"]] == ["LogName"]
    exports = {e["Name"] for page in cfn.get_paginator("list_exports").paginate() for e in page["Exports"]}
    assert f"{stack}-LogName" in exports and f"{stack}-TopicName" not in exports


def test_patch13_a_deleted_stack_takes_its_listener_rule_target_group_and_listener_along(cfn, services_up):
    """`svc delete` then deploy again: the workload's listener rule on the environment's load balancer keeps
    its priority (derived from the workload's name), so a rule left behind made the new stack fail."""
    env, workload = name(), name()
    env_tpl = {"Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.7.0.0/16"}},
        "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.7.0.0/24",
                                                               "AvailabilityZone": "us-east-1a"}},
        "SubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.7.1.0/24",
                                                               "AvailabilityZone": "us-east-1b"}},
        "Alb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {
            "Scheme": "internet-facing", "Subnets": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]}}},
        "Outputs": {"Alb": {"Value": {"Ref": "Alb"}}, "Vpc": {"Value": {"Ref": "Vpc"}}}}
    out = {o["OutputKey"]: o["OutputValue"] for o in via_change_set(cfn, env, env_tpl)["Outputs"]}
    workload_tpl = {"Resources": {
        "Tg": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {
            "Port": 80, "Protocol": "HTTP", "TargetType": "ip", "VpcId": out["Vpc"]}},
        "Http": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
            "LoadBalancerArn": out["Alb"], "Port": 80, "Protocol": "HTTP",
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "Tg"}}]}},
        "Rule": {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {
            "ListenerArn": {"Ref": "Http"}, "Priority": 7,
            "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
            "Actions": [{"Type": "forward", "TargetGroupArn": {"Ref": "Tg"}}]}}},
        "Outputs": {"Tg": {"Value": {"Ref": "Tg"}}}}
    first = via_change_set(cfn, workload, workload_tpl)
    assert first["StackStatus"] == "CREATE_COMPLETE", first
    elbv2 = boto3.client("elbv2", endpoint_url=services_up.moto_url, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing")
    cfn.delete_stack(StackName=first["StackId"])
    assert cfn.describe_stacks(StackName=first["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    assert elbv2.describe_listeners(LoadBalancerArn=out["Alb"])["Listeners"] == []    # without the patch: still there
    assert first["Outputs"][0]["OutputValue"] not in {
        g["TargetGroupArn"] for g in elbv2.describe_target_groups()["TargetGroups"]}
    again = via_change_set(cfn, workload, workload_tpl)   # without the patch: PriorityInUse
    assert again["StackStatus"] == "CREATE_COMPLETE", again
    cfn.delete_stack(StackName=workload)
    cfn.delete_stack(StackName=env)


def test_patch14_outputs_name_their_exports_as_before(cfn):
    """Patch 14 only evaluates a stack's export list once per DescribeStacks (moto did it once per output):
    every output still names its own export, an unexported one none, and equal values stay distinct."""
    stack = name()
    template = {"Resources": {"Log": {"Type": "AWS::Logs::LogGroup"}, "Other": {"Type": "AWS::Logs::LogGroup"}},
                "Outputs": {"LogName": {"Value": {"Ref": "Log"}, "Export": {"Name": f"{stack}-LogName"}},
                            "OtherName": {"Value": {"Ref": "Other"}, "Export": {"Name": f"{stack}-OtherName"}},
                            "Plain": {"Value": "just a value"}}}
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    out = {o["OutputKey"]: o for o in cfn.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}
    assert out["LogName"].get("ExportName") == f"{stack}-LogName"
    assert out["OtherName"].get("ExportName") == f"{stack}-OtherName"
    assert "ExportName" not in out["Plain"] and out["Plain"]["OutputValue"] == "just a value"


def test_patch15_each_resource_has_its_own_events(cfn):
    stack = name()
    log = {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}}
    via_change_set(cfn, stack, {"Resources": {"Log": log}})
    via_change_set(cfn, stack, {"Resources": {"Log": {**log, "Properties": {"RetentionInDays": 14}},
                                              "Off": {**log, "Condition": "No"}},
                                "Conditions": {"No": {"Fn::Equals": ["a", "b"]}}})
    events = [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceType"))
              for e in reversed(cfn.describe_stack_events(StackName=stack)["StackEvents"])]
    log_events = [(lid, status) for lid, status, kind in events if lid == "Log"]
    assert log_events == [("Log", "CREATE_IN_PROGRESS"), ("Log", "CREATE_COMPLETE"),
                          ("Log", "UPDATE_IN_PROGRESS"), ("Log", "UPDATE_COMPLETE")], events
    assert all(kind == "AWS::Logs::LogGroup" for lid, _, kind in events if lid == "Log")
    assert "Off" not in {lid for lid, _, _ in events}                # a false condition creates nothing
    # in order: the stack's own IN_PROGRESS before its resources', its COMPLETE after
    assert events.index((stack, "CREATE_IN_PROGRESS", "AWS::CloudFormation::Stack")) < \
        events.index(("Log", "CREATE_IN_PROGRESS", "AWS::Logs::LogGroup")) < \
        events.index((stack, "CREATE_COMPLETE", "AWS::CloudFormation::Stack"))


def test_patch16_every_ecr_image_digest_in_one_answer(services_up):
    from copilot_doit.targets.local import lite
    ecr = boto3.client("ecr", endpoint_url=services_up.moto_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    with_image, empty = name(), name()
    for repo in (with_image, empty):
        ecr.create_repository(repositoryName=repo)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                                      "digest": "sha256:" + "0" * 64}, "layers": []})
    digest = "sha256:" + uuid.uuid4().hex * 2
    ecr.put_image(repositoryName=with_image, imageManifest=manifest, imageTag="v1", imageDigest=digest)
    ecr.put_image(repositoryName=with_image, imageManifest=manifest, imageTag="v2", imageDigest=digest)

    listed = lite.ecr_images(services_up.moto_url, "us-east-1", "123456789012")
    assert listed is not None, "the emulator has no /copilot-doit/ecr-images (patch 16 not applied)"
    assert listed[with_image] == {digest} and listed[empty] == set()
    # what DescribeImages says, per repository, is what the one answer says
    described = {d["imageDigest"] for d in ecr.describe_images(repositoryName=with_image)["imageDetails"]}
    assert described == listed[with_image]
    other_region = lite.ecr_images(services_up.moto_url, "eu-west-1", "123456789012")
    assert with_image not in other_region and empty not in other_region


def test_patch17_concurrent_requests_do_not_break_the_emulator(services_up):
    """Without patch 17, 10 threads creating 400 IAM roles got one HTTP 500 here (moto iterated its roles while
    another request added one); a 500-workload `-j 8` deploy failed an ExecuteChangeSet the same way. A stress
    test: it can pass without the patch by luck, never fail with it."""
    import threading
    from botocore.config import Config
    iam = boto3.client("iam", endpoint_url=services_up.moto_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing",
                       config=Config(retries={"max_attempts": 1}, max_pool_connections=16))
    errors = []

    def work(t):
        for i in range(50):
            try:
                iam.create_role(RoleName=f"{name()}-{t}-{i}", AssumeRolePolicyDocument="{}")
                if i % 10 == 0:
                    iam.list_roles(MaxItems=1000)
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(str(exc)[:200])
    threads = [threading.Thread(target=work, args=(t,)) for t in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_patch19_the_region_s_stacks_in_one_answer_read_as_describe_stacks_reads_them(cfn, services_up):
    """The local target's listing (one GET, patch 19) gives what its DescribeStacks walk gives, for stacks of
    every shape this emulator holds: the suite's deployed environments and workloads (nested stacks,
    unresolved outputs) and these: tags (one with XML's special characters), a NoEcho parameter, exported and plain outputs, none, an
    update through a change set, a deleted stack."""
    from copilot_doit.targets.local import lite
    tagged, updated, bare, deleted = name(), name(), name(), name()
    cfn.create_stack(StackName=tagged, TemplateBody=json.dumps({
        "Parameters": {"Secret": {"Type": "String", "NoEcho": True}, "Plain": {"Type": "String", "Default": "p"}},
        "Resources": {"Log": {"Type": "AWS::Logs::LogGroup"}},
        "Outputs": {"Name": {"Value": {"Ref": "Log"}, "Export": {"Name": f"{tagged}-Name"}},
                    "Text": {"Value": "a <value> & more"}}}),
        Parameters=[{"ParameterKey": "Secret", "ParameterValue": "hunter2"}],
        Tags=[{"Key": "copilot-application", "Value": "app"}, {"Key": "note", "Value": "x & <y>"}])
    via_change_set(cfn, updated, exporter(f"{updated}-out"), tags={"k": "v1"})
    via_change_set(cfn, updated, exporter(f"{updated}-out", "v2"), params={"V": "v2"}, tags={"k": "v2"})
    bare_template = json.dumps({"Resources": {"Log": {"Type": "AWS::Logs::LogGroup"}}})
    cfn.create_stack(StackName=bare, TemplateBody=bare_template)
    cfn.create_stack(StackName=deleted, TemplateBody=bare_template)
    cfn.delete_stack(StackName=deleted)

    url, region, account = services_up.moto_url, "us-east-1", "123456789012"
    for _ in range(51 - len(lite.describe_stacks(url, region))):   # DescribeStacks pages hold 50: two at least
        cfn.create_stack(StackName=name(), TemplateBody=bare_template)
    # Other tests deploy to this emulator meanwhile: the walk is compared with the one answer only when a
    # second read through the local target's path (the one answer again) shows the region did not change.
    deadline = time.monotonic() + 60
    while True:
        before = lite._stacks_in_one(url, region, account)
        assert before is not None, "the emulator has no /copilot-doit/stacks (patch 19 not applied)"
        walked = lite.describe_stacks(url, region)                       # DescribeStacks, page by page
        if lite.describe_stacks(url, region, account=account) == before:  # what the local target reads
            break
        assert time.monotonic() < deadline, "the region's stacks changed during every walk for 60 s"
    assert before == walked
    assert before[tagged]["tags"] == {"copilot-application": "app", "note": "x & <y>"}
    assert sorted(before[tagged]["parameters"]) == ["Plain", "Secret"] and before[tagged]["parameters"]["Plain"] == "p"
    assert before[tagged]["outputs"]["Text"] == "a <value> & more"
    assert before[updated]["parameters"] == {"V": "v2"} and before[updated]["tags"] == {"k": "v2"}
    assert before[bare]["outputs"] == {} and before[bare]["status"] == "CREATE_COMPLETE"
    assert deleted not in before and len(before) > 50


def test_patch18_the_server_neither_logs_each_request_nor_lists_its_package_per_request(services_up, local_dir):
    """Without patch 18 every request added a line to moto.log (werkzeug's request log) and moto's dispatcher
    listed its package folders (os.listdir, an isdir each) to find the service: ~17 % of the server's CPU."""
    log = local_dir / "moto.log"
    before = log.read_text(errors="replace").count("HTTP/1.1")
    cfn = boto3.client("cloudformation", endpoint_url=services_up.moto_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    for _ in range(5):
        cfn.list_stacks()
    assert log.read_text(errors="replace").count("HTTP/1.1") == before
    import subprocess
    import sys
    probe = ("import os\nfrom copilot_doit.targets.local import moto_server\nmoto_server._patch_request_overhead()\n"
             "from moto import backends\nfirst = backends.list_of_moto_modules()\ncalls = []\n"
             "os.listdir = lambda *a: calls.append(a) or []\n"
             "assert backends.list_of_moto_modules() is first and calls == [] and 'cloudformation' in first\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
