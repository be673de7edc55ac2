"""The application domain's parts of the environment stack, as plain CloudFormation.

Copilot renders these with custom resources run by Lambda functions under a role that can assume the
app account's DNS role (DelegateDNSAction, HTTPSCert, CustomDomainAction). copilot-doit deploys with the
caller's credentials in the account that holds the domain's zones, so CloudFormation does it itself:

    EnvironmentHostedZone          AWS::Route53::HostedZone `<env>.<app>.<domain>`
    EnvironmentHostedZoneDelegation  NS record of the env zone in the app zone `<app>.<domain>` (DelegateDNSAction)
    HTTPSCert                      AWS::CertificateManager::Certificate, DNS-validated in the zone each name
                                   lives in: `<env>.<app>.<domain>`, `*.<env>.<app>.<domain>` and every alias
    HTTPSListener                  the public ALB's HTTPS listener with that certificate
    AliasRecordsIn<Zone>Zone       A records of the aliases to the public ALB (CustomDomainAction)
    outputs                        EnvironmentHostedZone / EnvironmentSubdomain, exported as Copilot does
                                   (`<stack>-HostedZone`, `<stack>-SubDomain`), and HTTPSListenerArn

`zone_ids` holds the ids of the app zone and (when an alias lives there) the domain's zone: facts of the
world looked up by the target (`Target.hosted_zone_id`), part of the env stack's key.
"""
from __future__ import annotations

from . import getatt, ref, sub

ZONE_RESOURCE = {"env": "Environment", "app": "App", "root": "Root"}
DELEGATION_TTL = 60  # Copilot's DNS delegation function writes the NS record with this TTL
SSL_POLICY = "ELBSecurityPolicy-2016-08"


def subdomain(domain: str):
    return sub("${EnvironmentName}.${AppName}." + domain)


def zone_id(kind: str, zone_ids: dict):
    """The hosted zone id of ENV (this stack's zone), APP or ROOT."""
    return ref("EnvironmentHostedZone") if kind == "env" else zone_ids[kind]


def hosted_zone(resources: dict, app: str, env: str, domain: str, zone_ids: dict) -> None:
    resources["EnvironmentHostedZone"] = {"Type": "AWS::Route53::HostedZone", "Properties": {
        "HostedZoneConfig": {"Comment": sub("HostedZone for environment ${EnvironmentName} - "
                                            "${EnvironmentName}.${AppName}." + domain)},
        "Name": subdomain(domain)}}
    resources["EnvironmentHostedZoneDelegation"] = {"Type": "AWS::Route53::RecordSet", "Properties": {
        "HostedZoneId": zone_ids["app"], "Name": subdomain(domain), "Type": "NS", "TTL": str(DELEGATION_TTL),
        "ResourceRecords": getatt("EnvironmentHostedZone", "NameServers")}}


def certificate(resources: dict, app: str, env: str, domain: str, aliases: list, zones: dict, zone_ids: dict) -> None:
    """DNS-validated: ACM writes each validation record itself into the zone named for that name.
    `zones`: alias -> "env" | "app" | "root" (domain.zone_of)."""
    names = [f"*.{env}.{app}.{domain}"] + [a for a in aliases if a != f"{env}.{app}.{domain}"]
    sans = list(dict.fromkeys(names))
    validations = [{"DomainName": f"{env}.{app}.{domain}", "HostedZoneId": ref("EnvironmentHostedZone")}]
    for a in dict.fromkeys(aliases):
        if a != f"{env}.{app}.{domain}":
            validations.append({"DomainName": a, "HostedZoneId": zone_id(zones[a], zone_ids)})
    resources["HTTPSCert"] = {"Type": "AWS::CertificateManager::Certificate",
                              # validation answers only once the env zone is delegated
                              "DependsOn": "EnvironmentHostedZoneDelegation",
                              "Properties": {
                                  "DomainName": f"{env}.{app}.{domain}", "SubjectAlternativeNames": sans,
                                  "ValidationMethod": "DNS", "DomainValidationOptions": validations,
                                  "Tags": [{"Key": "copilot-application", "Value": app},
                                           {"Key": "copilot-environment", "Value": env}]}}


def https_listener(resources: dict) -> None:
    resources["HTTPSListener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
        "LoadBalancerArn": ref("PublicLoadBalancer"), "Port": 443, "Protocol": "HTTPS",
        "Certificates": [{"CertificateArn": ref("HTTPSCert")}], "SslPolicy": SSL_POLICY,
        "DefaultActions": [{"Type": "fixed-response", "FixedResponseConfig": {
            "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no service matches this path"}}]}}


def alias_records(resources: dict, aliases: list, zones: dict, zone_ids: dict) -> None:
    """One record group per zone: each alias an A record aliasing the public load balancer."""
    by_zone: dict = {}
    for a in aliases:
        by_zone.setdefault(zones[a], []).append(a)
    for kind in ("env", "app", "root"):
        if kind not in by_zone:
            continue
        resources[f"AliasRecordsIn{ZONE_RESOURCE[kind]}Zone"] = {"Type": "AWS::Route53::RecordSetGroup", "Properties": {
            "HostedZoneId": zone_id(kind, zone_ids),
            "Comment": sub("Aliases of the services of environment ${EnvironmentName}"),
            "RecordSets": [{"Name": a, "Type": "A", "AliasTarget": {
                "HostedZoneId": getatt("PublicLoadBalancer", "CanonicalHostedZoneID"),
                "DNSName": getatt("PublicLoadBalancer", "DNSName")}} for a in by_zone[kind]]}}


def outputs(outs: dict, out, domain: str) -> None:
    outs["EnvironmentHostedZone"] = {**out("HostedZone", ref("EnvironmentHostedZone")),
                                     "Description": "The HostedZone for this environment's subdomain."}
    outs["EnvironmentSubdomain"] = {**out("SubDomain", subdomain(domain)),
                                    "Description": "The domain name of this environment."}


def dns(resources: dict, outs: dict, out, *, app: str, env: str, domain: str, zone_ids: dict, aliases: list,
        zones: dict, public_alb: bool, imported_certs: bool) -> None:
    """Everything above. With imported certificates (`http.public.certificates`) the listener and the
    aliases are the user's: only the zone, its delegation and the outputs are rendered."""
    hosted_zone(resources, app, env, domain, zone_ids)
    outputs(outs, out, domain)
    if not public_alb or imported_certs:
        return
    certificate(resources, app, env, domain, aliases, zones, zone_ids)
    https_listener(resources)
    alias_records(resources, aliases, zones, zone_ids)
