"""The environment's managed EFS file system (Copilot creates it through its EnvController when a workload
sets `storage.volumes.<v>.efs: true`): file system, one mount target per private subnet, NFS from the
environment security group. Exported as `<app>-<env>-ManagedFileSystemID`."""
from __future__ import annotations

from . import ref, sub


def managed_efs(resources: dict, vpc_id, private_subnets: list):
    resources["EFSSecurityGroup"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "GroupDescription": sub("${AppName}-${EnvironmentName}-EFSSecurityGroup"), "VpcId": vpc_id}}
    resources["EFSSecurityGroupIngressFromEnvironment"] = {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
        "Description": "Ingress from containers in the Environment Security Group.",
        "GroupId": ref("EFSSecurityGroup"), "IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049,
        "SourceSecurityGroupId": ref("EnvironmentSecurityGroup")}}
    resources["FileSystem"] = {"Type": "AWS::EFS::FileSystem", "DeletionPolicy": "Retain",
                               "UpdateReplacePolicy": "Retain", "Properties": {
        "BackupPolicy": {"Status": "ENABLED"}, "Encrypted": True,
        "FileSystemPolicy": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Action": "*", "Principal": {"AWS": "*"},
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]},
        "LifecyclePolicies": [{"TransitionToIA": "AFTER_30_DAYS"}], "PerformanceMode": "generalPurpose",
        "ThroughputMode": "bursting"}}
    for i, subnet in enumerate(private_subnets):
        resources[f"MountTarget{i + 1}"] = {"Type": "AWS::EFS::MountTarget", "Properties": {
            "FileSystemId": ref("FileSystem"), "SubnetId": subnet, "SecurityGroups": [ref("EFSSecurityGroup")]}}
