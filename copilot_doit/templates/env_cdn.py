"""`cdn`: a CloudFront distribution in front of the public ALB, optionally with a static-assets S3 origin
(origin access control) and an imported certificate. Copilot's UniqueAliasesAction (a Lambda collecting
the workloads' aliases) is not rendered: the distribution takes the certificate's aliases from
`cdn.static_assets.alias` only."""
from __future__ import annotations

from . import getatt, ref, sub

CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER = "216adef6-5c7f-47e4-b989-5492eafa07d3"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]


def cdn(resources: dict, outputs: dict, cfg, out):
    if not cfg:
        return
    cfg = cfg if isinstance(cfg, dict) else {}
    tls = bool(cfg.get("terminate_tls"))
    static = cfg.get("static_assets")
    dist = {
        "DefaultCacheBehavior": {
            "AllowedMethods": ALL_METHODS, "CachePolicyId": CACHING_DISABLED,
            "TargetOriginId": sub("copilot-${AppName}-${EnvironmentName}-origin"),
            "OriginRequestPolicyId": ALL_VIEWER,
            "ViewerProtocolPolicy": "redirect-to-https" if tls else "allow-all"},
        "Enabled": True, "IPV6Enabled": True,
        "Origins": [{"Id": sub("copilot-${AppName}-${EnvironmentName}-origin"),
                     "DomainName": getatt("PublicLoadBalancer", "DNSName"),
                     "CustomOriginConfig": {"OriginProtocolPolicy": "http-only" if tls else "match-viewer"}}],
    }
    if static:
        resources["CloudFrontOriginAccessControl"] = {"Type": "AWS::CloudFront::OriginAccessControl", "Properties": {
            "OriginAccessControlConfig": {
                "Description": "Access control for static s3 origin",
                "Name": sub("copilot-${AppName}-${EnvironmentName}-origin-access-control"),
                "OriginAccessControlOriginType": "s3", "SigningBehavior": "always", "SigningProtocol": "sigv4"}}}
        dist["Origins"].append({"Id": sub("copilot-${AppName}-${EnvironmentName}-s3"), "DomainName": static["location"],
                                "OriginAccessControlId": ref("CloudFrontOriginAccessControl"),
                                "S3OriginConfig": {"OriginAccessIdentity": ""}})
        dist["CacheBehaviors"] = [{"AllowedMethods": ALL_METHODS, "ViewerProtocolPolicy": "allow-all",
                                   "CachePolicyId": CACHING_OPTIMIZED,
                                   "TargetOriginId": sub("copilot-${AppName}-${EnvironmentName}-s3"),
                                   "PathPattern": static["path"]}]
    if cfg.get("certificate"):
        if static and static.get("alias"):
            dist["Aliases"] = [static["alias"]]
        dist["ViewerCertificate"] = {"AcmCertificateArn": cfg["certificate"], "MinimumProtocolVersion": "TLSv1",
                                     "SslSupportMethod": "sni-only"}
    resources["CloudFrontDistribution"] = {"Type": "AWS::CloudFront::Distribution",
                                           "Properties": {"DistributionConfig": dist}}
    outputs["CloudFrontDomainName"] = out("CloudFrontDomainName", getatt("CloudFrontDistribution", "DomainName"))
