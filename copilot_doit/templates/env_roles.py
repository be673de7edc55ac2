"""Copilot's environment bootstrap roles, so that Copilot can work on an environment copilot-doit made.

Copilot's env stack carries two roles (template/templates/environment/partials/cfn-execution-role.yml and
environment-manager-role.yml, rendered by its bootstrap-cf.yml and cf.yml):

- `CloudformationExecutionRole` (`<stack>-CFNExecutionRole`): the role CloudFormation assumes for Copilot's
  stack operations. Copilot's env controller, a custom resource in every Copilot workload stack, updates
  the env stack's `*Workloads` parameters with `RoleARN` = the env stack's output `CFNExecutionRoleARN`, and
  its Lambda may pass only `<app>-<env>-CFNExecutionRole` tagged `copilot-application`/`copilot-environment`
  (the env stack's tags, which CloudFormation propagates to the role).
- `EnvironmentManagerRole` (`<stack>-EnvManagerRole`): the role Copilot's CLI assumes for the environment
  (`managerRoleARN` of its SSM entry): deploy workload stacks, read logs, exec, upload artifacts.

The role names are per stack, so two environments never clash. copilot-doit deploys with the caller's
credentials, or as the execution role Copilot's SSM entry of the environment names (session.execution_role:
this one, once `copilot env init` has registered the stack).
"""
from __future__ import annotations

from . import getatt, sub

# Copilot gives both roles `DeletionPolicy: Retain` (aws/copilot-cli#1533: the execution role must outlive
# the env stack's deletion, which runs under it). copilot-doit uses RetainExceptOnCreate: the same on a
# stack delete and on an update that drops the roles, but a create that rolls back deletes the roles it
# made. copilot-doit creates the roles together with the whole environment (Copilot first creates them
# alone, with its bootstrap stack), and retries a failed first create by deleting the stack and creating it
# again — with Retain the retry would fail on the fixed role names the rollback left behind.
DELETION_POLICY = "RetainExceptOnCreate"
# A role is replaced only when its name changes, which the stack name fixes; Retain all the same, as
# cfn-lint asks of a resource kept on deletion (W3011).
UPDATE_REPLACE_POLICY = "Retain"
# Copilot's policy also lists s3:ListBucketByTags, s3:HeadBucket (BuiltArtifactAccess) and s3:EmptyBucket
# (its EmptyELBAccessLogsBucket statement, rendered when the stack creates the access-log bucket): none is
# an IAM action (cfn-lint W3037), so they grant nothing and are left out, with that statement.
# `${AWS::StackName}-CFNExecutionRole` must fit IAM's 64 characters.
MAX_STACK_NAME = 64 - len("-CFNExecutionRole")
# Set by Copilot to the application account's root (`arn:aws:iam::<tools account>:root`); copilot-doit
# passes nothing, and the role then trusts the environment's own account, which is the same for an
# application and environment in one account.
TOOLS_PRINCIPAL_CONDITION = "HasToolsAccountPrincipal"


def conditions() -> dict:
    return {TOOLS_PRINCIPAL_CONDITION: {"Fn::Not": [{"Fn::Equals": [{"Ref": "ToolsAccountPrincipalARN"}, ""]}]}}


def roles(imported_certs: list, artifact_bucket_arn: str | None = None, artifact_key_arn: str | None = None) -> dict:
    """{"CloudformationExecutionRole": ..., "EnvironmentManagerRole": ...} with Copilot's policies.

    `imported_certs`: the certificate ARNs the env manifest imports (Copilot's ImportedCertificates
    statement). `artifact_bucket_arn` / `artifact_key_arn`: Copilot's application artifact bucket and its
    KMS key (outputs PipelineBucket and KMSKeyARN of the application's StackSet in the region), which
    Copilot's CLI writes to under this role. Without them those two statements are left out: copilot-doit
    does not look them up yet."""
    return {"CloudformationExecutionRole": _execution_role(),
            "EnvironmentManagerRole": _manager_role(imported_certs, artifact_bucket_arn, artifact_key_arn)}


def outputs() -> dict:
    """Copilot's outputs of the two roles, exported as `<stack>-EnvironmentManagerRoleARN` and
    `<stack>-CFNExecutionRoleARN`."""
    return {
        "EnvironmentManagerRoleARN": {
            "Value": getatt("EnvironmentManagerRole", "Arn"),
            "Description": "The role to be assumed by the ecs-cli to manage environments.",
            "Export": {"Name": sub("${AWS::StackName}-EnvironmentManagerRoleARN")}},
        "CFNExecutionRoleARN": {
            "Value": getatt("CloudformationExecutionRole", "Arn"),
            "Description": "The role to be assumed by the Cloudformation service when it deploys application "
                           "infrastructure.",
            "Export": {"Name": sub("${AWS::StackName}-CFNExecutionRoleARN")}},
    }


def _execution_role() -> dict:
    return {
        "Type": "AWS::IAM::Role",
        "DeletionPolicy": DELETION_POLICY,
        "UpdateReplacePolicy": UPDATE_REPLACE_POLICY,
        "Properties": {
            "RoleName": sub("${AWS::StackName}-CFNExecutionRole"),
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": ["cloudformation.amazonaws.com"]},
                "Action": "sts:AssumeRole"}]},
            "Path": "/",
            # Copilot: "more permissive than the managed PowerUserAccess since it allows arbitrary role
            # creation, which is needed for the ECS task role specified by the customers".
            "Policies": [{"PolicyName": "executeCfn", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "NotAction": ["organizations:*", "account:*"], "Resource": "*"},
                {"Effect": "Allow", "Action": ["organizations:DescribeOrganization", "account:ListRegions"],
                 "Resource": "*"}]}}],
        },
    }


def _allow(sid: str, actions: list, resource="*", condition: dict | None = None) -> dict:
    st = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        st["Condition"] = condition
    return st


def _tagged(prefix: str) -> dict:
    return {"StringEquals": {f"{prefix}/copilot-application": sub("${AppName}"),
                             f"{prefix}/copilot-environment": sub("${EnvironmentName}")}}


def _manager_statements(imported_certs, artifact_bucket_arn, artifact_key_arn) -> list:
    out = []
    if imported_certs:
        out.append(_allow("ImportedCertificates", ["acm:DescribeCertificate"], list(imported_certs)))
    out += [
        _allow("CloudwatchLogs", ["logs:GetLogRecord", "logs:GetQueryResults", "logs:StartQuery", "logs:GetLogEvents",
                                  "logs:DescribeLogStreams", "logs:StopQuery", "logs:TestMetricFilter",
                                  "logs:FilterLogEvents", "logs:GetLogGroupFields", "logs:GetLogDelivery"]),
        _allow("Cloudwatch", ["cloudwatch:DescribeAlarms"]),
        _allow("ECS", ["ecs:ListAttributes", "ecs:ListTasks", "ecs:DescribeServices", "ecs:DescribeTaskSets",
                       "ecs:ListContainerInstances", "ecs:DescribeContainerInstances", "ecs:DescribeTasks",
                       "ecs:DescribeClusters", "ecs:UpdateService", "ecs:PutAttributes", "ecs:StartTelemetrySession",
                       "ecs:StartTask", "ecs:StopTask", "ecs:ListServices", "ecs:ListTaskDefinitionFamilies",
                       "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions", "ecs:ListClusters", "ecs:RunTask",
                       "ecs:ListServicesByNamespace"]),
        _allow("ExecuteCommand", ["ecs:ExecuteCommand", "ssm:StartSession"], condition=_tagged("aws:ResourceTag")),
        _allow("StartStateMachine", ["states:StartExecution", "states:DescribeStateMachine"], [sub(
            "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AppName}-${EnvironmentName}-*")]),
        _allow("CloudFormation", ["cloudformation:CancelUpdateStack", "cloudformation:CreateChangeSet",
                                  "cloudformation:CreateStack", "cloudformation:DeleteChangeSet",
                                  "cloudformation:DeleteStack", "cloudformation:Describe*",
                                  "cloudformation:DetectStackDrift", "cloudformation:DetectStackResourceDrift",
                                  "cloudformation:ExecuteChangeSet", "cloudformation:GetTemplate",
                                  "cloudformation:GetTemplateSummary", "cloudformation:UpdateStack",
                                  "cloudformation:UpdateTerminationProtection"]),
        _allow("GetAndPassCopilotRoles", ["iam:GetRole", "iam:PassRole"], condition=_tagged("iam:ResourceTag")),
        _allow("ECR", ["ecr:BatchGetImage", "ecr:BatchCheckLayerAvailability", "ecr:CompleteLayerUpload",
                       "ecr:DescribeImages", "ecr:DescribeRepositories", "ecr:GetDownloadUrlForLayer",
                       "ecr:InitiateLayerUpload", "ecr:ListImages", "ecr:ListTagsForResource", "ecr:PutImage",
                       "ecr:UploadLayerPart", "ecr:GetAuthorizationToken"]),
        _allow("ResourceGroups", ["resource-groups:GetGroup", "resource-groups:GetGroupQuery", "resource-groups:GetTags",
                                  "resource-groups:ListGroupResources", "resource-groups:ListGroups",
                                  "resource-groups:SearchResources"]),
        _allow("SSM", ["ssm:DeleteParameter", "ssm:DeleteParameters", "ssm:GetParameter", "ssm:GetParameters",
                       "ssm:GetParametersByPath"]),
        _allow("SSMSecret", ["ssm:PutParameter", "ssm:AddTagsToResource"], [sub(
            "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
            "parameter/copilot/${AppName}/${EnvironmentName}/secrets/*")]),
        _allow("SSMSession", ["ssm:StartSession"], [sub(
            "arn:${AWS::Partition}:ssm:${AWS::Region}::document/AWS-StartPortForwardingSessionToRemoteHost")]),
        _allow("ELBv2", ["elasticloadbalancing:DescribeLoadBalancerAttributes", "elasticloadbalancing:DescribeSSLPolicies",
                         "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTargetGroupAttributes",
                         "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTags",
                         "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeTargetGroups",
                         "elasticloadbalancing:DescribeRules"]),
        _allow("BuiltArtifactAccess", [
            "s3:GetLifecycleConfiguration", "s3:GetBucketTagging", "s3:GetInventoryConfiguration",
            "s3:GetObjectVersionTagging", "s3:ListBucketVersions", "s3:GetBucketLogging", "s3:ListBucket",
            "s3:GetAccelerateConfiguration", "s3:GetBucketPolicy", "s3:GetObjectVersionTorrent", "s3:GetObjectAcl",
            "s3:GetEncryptionConfiguration", "s3:GetBucketRequestPayment", "s3:GetObjectVersionAcl",
            "s3:GetObjectTagging", "s3:GetMetricsConfiguration", "s3:GetBucketPublicAccessBlock",
            "s3:GetBucketPolicyStatus", "s3:ListBucketMultipartUploads", "s3:GetBucketWebsite", "s3:ListJobs",
            "s3:GetBucketVersioning", "s3:GetBucketAcl", "s3:GetBucketNotification", "s3:GetReplicationConfiguration",
            "s3:ListMultipartUploadParts", "s3:GetObject", "s3:GetObjectTorrent", "s3:GetAccountPublicAccessBlock",
            "s3:ListAllMyBuckets", "s3:DescribeJob", "s3:GetBucketCORS", "s3:GetAnalyticsConfiguration",
            "s3:GetObjectVersionForReplication", "s3:GetBucketLocation", "s3:GetObjectVersion", "kms:Decrypt"]),
    ]
    if artifact_bucket_arn:
        out.append(_allow("PutObjectsToArtifactBucket", ["s3:PutObject", "s3:PutObjectAcl"],
                          [artifact_bucket_arn, f"{artifact_bucket_arn}/*"]))
    if artifact_key_arn:
        out.append(_allow("EncryptObjectsInArtifactBucket", ["kms:GenerateDataKey"], artifact_key_arn))
    out += [
        _allow("EC2", ["ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeNetworkInterfaces",
                       "ec2:DescribeRouteTables"]),
        _allow("AppRunner", ["apprunner:DescribeService", "apprunner:ListOperations", "apprunner:ListServices",
                             "apprunner:PauseService", "apprunner:ResumeService", "apprunner:StartDeployment",
                             "apprunner:DescribeObservabilityConfiguration", "apprunner:DescribeVpcIngressConnection"]),
        _allow("Tags", ["tag:GetResources"]),
        _allow("ApplicationAutoscaling", ["application-autoscaling:DescribeScalingPolicies"]),
        _allow("DeleteRoles", ["iam:DeleteRole", "iam:ListRolePolicies", "iam:DeleteRolePolicy"], [
            getatt("CloudformationExecutionRole", "Arn"),
            sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${AWS::StackName}-EnvManagerRole")]),
        _allow("DeleteEnvStack", ["cloudformation:DescribeStacks", "cloudformation:DeleteStack"], [sub(
            "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/${AWS::StackName}/*")]),
        _allow("RDS", ["rds:DescribeDBInstances", "rds:DescribeDBClusters"]),
    ]
    return out


def _manager_role(imported_certs, artifact_bucket_arn, artifact_key_arn) -> dict:
    principal = {"Fn::If": [TOOLS_PRINCIPAL_CONDITION, sub("${ToolsAccountPrincipalARN}"),
                            sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")]}
    return {
        "Type": "AWS::IAM::Role",
        "DeletionPolicy": DELETION_POLICY,
        "UpdateReplacePolicy": UPDATE_REPLACE_POLICY,
        # Copilot also says DependsOn: CloudformationExecutionRole; the DeleteRoles statement's GetAtt of its
        # Arn orders them already (cfn-lint W3005).
        "Properties": {
            "RoleName": sub("${AWS::StackName}-EnvManagerRole"),
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}]},
            "Path": "/",
            "Policies": [{"PolicyName": "root", "PolicyDocument": {"Version": "2012-10-17", "Statement":
                          _manager_statements(imported_certs, artifact_bucket_arn, artifact_key_arn)}}],
        },
    }
