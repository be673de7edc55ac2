"""What `aws cloudformation deploy --no-fail-on-empty-changeset` does, for the naive baseline.

    naive_cfn_deploy.py ENDPOINT STACK TEMPLATE PARAMS_JSON TAGS_JSON

awscli is not installed here; this is its deploy command's sequence with boto3: create an UPDATE change
set, wait for it, and when it holds no changes exit 0 (otherwise execute it and wait).
"""
import json
import sys

import boto3
from botocore.exceptions import WaiterError

endpoint, stack, template, params, tags = sys.argv[1:6]
cfn = boto3.client("cloudformation", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
cs = cfn.create_change_set(
    StackName=stack, ChangeSetName="awscli-cloudformation-package-deploy-1", ChangeSetType="UPDATE",
    TemplateBody=open(template).read(),
    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in json.load(open(params)).items()],
    Tags=[{"Key": k, "Value": v} for k, v in json.load(open(tags)).items()],
    Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
try:
    cfn.get_waiter("change_set_create_complete").wait(ChangeSetName=cs["Id"], StackName=stack,
                                                      WaiterConfig={"Delay": 5})
except WaiterError:
    desc = cfn.describe_change_set(ChangeSetName=cs["Id"], StackName=stack)
    reason = desc.get("StatusReason", "")
    if "didn't contain changes" in reason or "No updates are to be performed" in reason:
        cfn.delete_change_set(ChangeSetName=cs["Id"], StackName=stack)  # so the fixed name can be reused
        print(f"No changes to deploy. Stack {stack} is up to date")
        sys.exit(0)
    raise
cfn.execute_change_set(ChangeSetName=cs["Id"], StackName=stack)
cfn.get_waiter("stack_update_complete").wait(StackName=stack, WaiterConfig={"Delay": 5})
