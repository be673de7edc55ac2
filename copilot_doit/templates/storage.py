"""storage.volumes: EFS volumes (existing file systems, or the environment's managed one through an access
point), bind mounts (a volume without efs), mount points of the main container and sidecars."""
from __future__ import annotations

import zlib

from . import import_env, ref, sub


def _volumes(b) -> dict:
    return (b.d.get("storage") or {}).get("volumes") or {}


def _fs_id(efs):
    fid = efs["id"]
    return {"Fn::ImportValue": fid["from_cfn"]} if isinstance(fid, dict) else fid


def managed_volume(b):
    """(name, volume) of the volume with `efs: true` (Copilot allows one), or (None, None)."""
    for name, vol in sorted(_volumes(b).items()):
        efs = vol.get("efs")
        if efs is True or (isinstance(efs, dict) and not efs.get("id") and (efs.get("uid") is not None)):
            return name, vol
    return None, None


def uid_gid(b) -> tuple[int, int]:
    """Copilot's POSIX ids of a managed EFS access point: the CRC-32 of the workload name unless set."""
    _, vol = managed_volume(b)
    efs = vol.get("efs") if isinstance(vol.get("efs"), dict) else {}
    default = zlib.crc32(b.m.name.encode())
    return efs.get("uid", default), efs.get("gid", efs.get("uid", default))


def access_point(b):
    name, _ = managed_volume(b)
    if not name:
        return
    uid, gid = uid_gid(b)
    b.resources["AccessPoint"] = {"Type": "AWS::EFS::AccessPoint", "Properties": {
        "ClientToken": sub("${AppName}-${EnvName}-${WorkloadName}"),
        "FileSystemId": import_env("ManagedFileSystemID"),
        "PosixUser": {"Uid": str(uid), "Gid": str(gid)},
        "RootDirectory": {"Path": sub("/${WorkloadName}"), "CreationInfo": {
            "OwnerUid": str(uid), "OwnerGid": str(gid), "Permissions": "0755"}}}}


def task_volumes(b) -> list:
    out = []
    managed, _ = managed_volume(b)
    for name, vol in sorted(_volumes(b).items()):
        efs = vol.get("efs")
        v = {"Name": name}
        if name == managed:
            v["EFSVolumeConfiguration"] = {"FilesystemId": import_env("ManagedFileSystemID"), "RootDirectory": "/",
                                           "TransitEncryption": "ENABLED",
                                           "AuthorizationConfig": {"AccessPointId": ref("AccessPoint"), "IAM": "ENABLED"}}
        elif isinstance(efs, dict):
            auth = efs.get("auth") or {}
            cfg = {"FilesystemId": _fs_id(efs), "RootDirectory": efs.get("root_dir", "/"),
                   "TransitEncryption": "ENABLED"}
            ac = {}
            if auth.get("access_point_id"):
                ac["AccessPointId"] = auth["access_point_id"]
            if auth.get("iam", True):
                ac["IAM"] = "ENABLED"
            if ac:
                cfg["AuthorizationConfig"] = ac
            if auth.get("access_point_id"):
                cfg["RootDirectory"] = "/"  # ECS: the access point's root is used
            v["EFSVolumeConfiguration"] = cfg
        out.append(v)
    return out


def main_mount_points(b) -> list:
    return [{"ContainerPath": vol["path"], "ReadOnly": vol.get("read_only", True), "SourceVolume": name}
            for name, vol in sorted(_volumes(b).items())]


def sidecar_mount_points(sc: dict) -> list:
    return [{"ContainerPath": mp["path"], "ReadOnly": mp.get("read_only", True), "SourceVolume": mp["source_volume"]}
            for mp in sc.get("mount_points") or []]


def storage_statements(b) -> list:
    """Task role permissions to mount the EFS file systems (write unless every mount is read-only)."""
    out = []
    managed, _ = managed_volume(b)
    for name, vol in sorted(_volumes(b).items()):
        efs = vol.get("efs")
        writes = not vol.get("read_only", True) or any(
            not mp.get("read_only", True) for sc in (b.d.get("sidecars") or {}).values()
            for mp in sc.get("mount_points") or [] if mp.get("source_volume") == name)
        if name == managed:
            out.append({"Effect": "Allow", "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                        "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": sub(
                            "arn:${AWS::Partition}:elasticfilesystem:${AWS::Region}:${AWS::AccountId}:access-point/"
                            "${AccessPoint}")}},
                        "Resource": [{"Fn::Join": ["/", [sub("arn:${AWS::Partition}:elasticfilesystem:${AWS::Region}:"
                                                             "${AWS::AccountId}:file-system"),
                                                         import_env("ManagedFileSystemID")]]}]})
        elif isinstance(efs, dict) and (efs.get("auth") or {}).get("iam", True):
            st = {"Effect": "Allow", "Action": ["elasticfilesystem:ClientMount"]
                  + (["elasticfilesystem:ClientWrite"] if writes else []),
                  "Resource": [{"Fn::Join": ["/", [sub("arn:${AWS::Partition}:elasticfilesystem:${AWS::Region}:"
                                                       "${AWS::AccountId}:file-system"), _fs_id(efs)]]}]}
            ap = (efs.get("auth") or {}).get("access_point_id")
            if ap:
                st["Condition"] = {"StringEquals": {"elasticfilesystem:AccessPointArn": sub(
                    "arn:${AWS::Partition}:elasticfilesystem:${AWS::Region}:${AWS::AccountId}:access-point/" + ap)}}
            out.append(st)
    return out


def needs_managed_efs(data: dict) -> bool:
    """Whether a resolved workload manifest asks for the environment's managed EFS file system."""
    for vol in ((data.get("storage") or {}).get("volumes") or {}).values():
        efs = vol.get("efs")
        if efs is True or (isinstance(efs, dict) and not efs.get("id") and efs.get("uid") is not None):
            return True
    return False
