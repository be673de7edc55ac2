"""Target groups and listener rules on the environment's public (LBWS) or internal (Backend) ALB, or on an
imported ALB (`http.alb`): the main rule and every `additional_rules` entry, with path, host-header
(`alias`) and source-ip (`allowed_source_ips`) conditions, HTTPS with an HTTP redirect when the
environment has certificates or the app a domain, Route 53 alias records for `hosted_zone`, and with the
application domain the default record `<svc>.<env>.<app>.<domain>` of a service without aliases."""
from __future__ import annotations

import xxhash

from . import if_, import_env, ref, sub
from .util import health_check_tuning, seconds

DEREGISTRATION_DELAY_DEFAULT = 60


SPECIFIC_PRIORITIES = (1, 40000)      # rules with a path: evaluated before ...
CATCH_ALL_PRIORITIES = (45000, 49999)  # ... the catch-all "/" rules


def rule_priority(name: str, rule_path: str) -> int:
    """The preferred listener-rule priority of a workload rule (Copilot uses a custom resource for this).

    Specific paths get 1..40000; the catch-all "/" goes to 45000..49999 so it is evaluated last.
    Derived from the name only, so adding a workload never renumbers the others. Only a preference: two
    names can hash alike, and another stack may hold it, so the template takes the priority as a parameter
    (`RulePriority<i>`) whose value is settled at deploy time (rule_priorities.py).
    """
    h = xxhash.xxh32_intdigest(name.encode())
    lo, hi = CATCH_ALL_PRIORITIES if rule_path == "/" else SPECIFIC_PRIORITIES
    return lo + h % (hi - lo + 1)


def priority_range(preferred: int) -> tuple[int, int]:
    """The range a rule's priority may be moved within without changing its order against the others."""
    return CATCH_ALL_PRIORITIES if preferred >= CATCH_ALL_PRIORITIES[0] else SPECIFIC_PRIORITIES


def _rule_path(path) -> str:
    path = str(path if path is not None else "/")
    return "/" if path.strip("/") == "" else path.strip("/")


def aliases(alias) -> list:
    """[(name, hosted_zone | None)] of any alias form."""
    if not alias:
        return []
    if isinstance(alias, str):
        return [(alias, None)]
    return [(a, None) if isinstance(a, str) else (a["name"], a.get("hosted_zone")) for a in alias]


def _target_group(b, rule: dict, port) -> dict:
    hc = rule.get("healthcheck", "/")
    hc = {"path": hc} if isinstance(hc, str) else hc
    version = str(rule.get("version") or "").upper()
    tg = {
        "HealthCheckPath": hc.get("path", "/"),
        "Matcher": {"GrpcCode": str(hc.get("success_codes", "0"))} if version == "GRPC"
        else {"HttpCode": str(hc.get("success_codes", "200"))},
        "Port": port, "Protocol": "HTTP", "TargetType": "ip",
        "VpcId": import_env("VpcId"),
        "TargetGroupAttributes": [
            {"Key": "deregistration_delay.timeout_seconds",
             "Value": str(seconds(rule["deregistration_delay"]) if rule.get("deregistration_delay") else DEREGISTRATION_DELAY_DEFAULT)},
            {"Key": "stickiness.enabled", "Value": str(bool(rule.get("stickiness", False))).lower()}],
    }
    if version in ("GRPC", "HTTP2"):
        tg["ProtocolVersion"] = version
    tg.update(health_check_tuning(hc))
    return tg


def _listeners(b, listener_export: str, http: dict) -> list:
    """[(logical id prefix, listener ARN, action kind)]: where the rules go and what they do."""
    internal = listener_export.startswith("Internal")
    if http.get("alb"):
        if not b.ri.imported_alb:
            b.m.fail(("http", "alb"), "the imported load balancer's listeners were not looked up (RenderInput.imported_alb)",
                     allowed="a deploy that resolves http.alb with DescribeLoadBalancers/DescribeListeners")
        alb = b.ri.imported_alb
        b.param("ImportedALBListenerArn", alb.get("https_listener_arn") or alb.get("listener_arn") or "")
        out = [("HTTPListenerRuleForImportedALB", ref("ImportedALBListenerArn"), "forward")]
        if alb.get("https_listener_arn") and alb.get("listener_arn") and http.get("redirect_to_https", True):
            b.param("ImportedALBHTTPListenerArn", alb["listener_arn"])
            out = [("HTTPSListenerRuleForImportedALB", ref("ImportedALBListenerArn"), "forward"),
                   ("HTTPListenerRedirectRuleForImportedALB", ref("ImportedALBHTTPListenerArn"), "redirect")]
        return out
    if b.ri.https:
        https = import_env("InternalHTTPSListenerArn" if internal else "HTTPSListenerArn")
        second = "redirect" if http.get("redirect_to_https", True) and not internal else "forward"
        return [("HTTPSListenerRule", https, "forward"),
                ("HTTPListenerRedirectRule" if second == "redirect" else "HTTPListenerRule", import_env(listener_export), second)]
    return [("HTTPListenerRule", import_env(listener_export), "forward")]


def http(b, listener_export: str):
    http = b.d.get("http") or {}
    port = (b.d.get("image") or {}).get("port")
    sidecars = b.d.get("sidecars") or {}

    def target_of(rule, default_container):
        container = rule.get("target_container", default_container)
        tport = rule.get("target_port") or (
            port if container == b.m.name else (_sidecar_port(sidecars[container]) or port))
        return container, tport

    target_container, target_port = target_of(http, b.m.name)
    rule_path = _rule_path(http.get("path", "/"))
    b.param("ContainerPort", port)
    b.param("TargetContainer", target_container)
    b.param("TargetPort", target_port)
    b.param("RulePath", rule_path)
    b.conditions["IsDefaultRootPath"] = {"Fn::Equals": [ref("RulePath"), "/"]}
    rules = [http] + list(http.get("additional_rules") or [])
    listeners = _listeners(b, listener_export, http)
    load_balancers, rule_ids, zones = [], [], {}
    imported = bool(http.get("alb"))
    # The application domain (Copilot's DNSDelegated): a public service without aliases answers at
    # <svc>.<env>.<app>.<domain> (https-listener.yml: LoadBalancerDNSAlias and its host-header conditions).
    default_name = bool(b.ri.extra.get("app_domain")) and b.ri.https and not imported and \
        not listener_export.startswith("Internal") and not any(r.get("alias") for r in rules)
    for i, rule in enumerate(rules):
        suffix = str(i) if i else ""
        tg_id = ("TargetGroupForImportedALB" if imported else "TargetGroup") + suffix
        if i == 0:
            container, tport = ref("TargetContainer"), ref("TargetPort")
            paths = if_("IsDefaultRootPath", ["/*"], [sub("/${RulePath}"), sub("/${RulePath}/*")])
            preferred = rule_priority(b.m.name, rule_path)
            b.exposed.append((target_container, target_port, "tcp"))
        else:
            cname, tport = target_of(rule, target_container)
            container = cname
            b.exposed.append((cname, tport, "tcp"))
            rp = _rule_path(rule["path"])
            paths = ["/*"] if rp == "/" else [f"/{rp}", f"/{rp}/*"]
            preferred = rule_priority(f"{b.m.name}#{i}", rp)
        # The value is a preference the deploy may move (rule_priorities.py): a priority held on the shared
        # listener by another stack's rule would fail the create with PriorityInUse.
        b.param(f"RulePriority{suffix}", preferred, "Number")
        priority = ref(f"RulePriority{suffix}")
        if i == 0:
            b.main_tg = tg_id
        b.resources[tg_id] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                              "Properties": _target_group(b, rule, tport)}
        conditions = [{"Field": "path-pattern", "PathPatternConfig": {"Values": paths}}]
        names = aliases(rule.get("alias"))
        if names:
            conditions.append({"Field": "host-header", "HostHeaderConfig": {"Values": [n for n, _ in names]}})
        elif default_name:
            conditions.append({"Field": "host-header", "HostHeaderConfig": {"Values": [default_host()]}})
        if rule.get("allowed_source_ips"):
            conditions.append({"Field": "source-ip", "SourceIpConfig": {"Values": list(rule["allowed_source_ips"])}})
        for n, zone in names:
            zone = zone or rule.get("hosted_zone") or http.get("hosted_zone")
            if zone and n not in zones.setdefault(zone, []):
                zones[zone].append(n)
        for prefix, listener, kind in listeners:
            logical = prefix + suffix
            action = ({"Type": "forward", "TargetGroupArn": ref(tg_id)} if kind == "forward" else
                      {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "Host": "#{host}",
                                                              "Path": "/#{path}", "Query": "#{query}",
                                                              "StatusCode": "HTTP_301"}})
            b.resources[logical] = {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule", "Properties": {
                "ListenerArn": listener, "Priority": priority, "Conditions": conditions, "Actions": [action]}}
            rule_ids.append(logical)
        load_balancers.append({"ContainerName": container, "ContainerPort": tport, "TargetGroupArn": ref(tg_id)})
    if imported:  # the imported ALB's security groups may reach the tasks
        for i, sg in enumerate((b.ri.imported_alb or {}).get("security_groups") or []):
            b.resources["EnvironmentSecurityGroupIngressFromImportedALB" + (str(i) if i else "")] = {
                "Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
                    "GroupId": import_env("EnvironmentSecurityGroup"), "Description": "Ingress from the imported ALB",
                    "SourceSecurityGroupId": sg, "IpProtocol": "-1"}}
    for zone, names in zones.items():
        dns_records(b, zone, names, listener_export.startswith("Internal"), imported)
    if default_name:
        default_record(b)
    b.rule_ids = rule_ids
    return load_balancers


def default_host() -> dict:
    """<svc>.<env>.<app>.<domain>: the service's name in the env's subdomain (an env stack export)."""
    return {"Fn::Join": [".", [ref("WorkloadName"), import_env("SubDomain")]]}


def default_record(b):
    """Copilot's LoadBalancerDNSAlias: the default name of a public service in the env's hosted zone."""
    b.resources["LoadBalancerDNSAlias"] = {"Type": "AWS::Route53::RecordSetGroup", "Properties": {
        "HostedZoneId": import_env("HostedZone"), "Comment": sub("LoadBalancer alias for service ${WorkloadName}"),
        "RecordSets": [{"Name": {"Fn::Join": [".", [ref("WorkloadName"), import_env("SubDomain"), ""]]}, "Type": "A",
                        "AliasTarget": {"HostedZoneId": import_env("CanonicalHostedZoneID"),
                                        "DNSName": import_env("PublicLoadBalancerDNSName")}}]}}


def dns_records(b, zone: str, names: list, internal: bool, imported: bool):
    """`hosted_zone`: A records aliasing each name to the load balancer (Copilot: LoadBalancerDNSAlias<zone>)."""
    if imported:
        alb = b.ri.imported_alb or {}
        b.param("ImportedALBDNSName", alb.get("dns_name", ""))
        b.param("ImportedALBHostedZoneID", alb.get("hosted_zone_id", ""))
        dns, zone_id = ref("ImportedALBDNSName"), ref("ImportedALBHostedZoneID")
    elif internal:
        dns, zone_id = import_env("InternalLoadBalancerDNSName"), import_env("InternalLoadBalancerCanonicalHostedZoneID")
    else:
        dns, zone_id = import_env("PublicLoadBalancerDNSName"), import_env("CanonicalHostedZoneID")
    logical = "LoadBalancerDNSAlias" + "".join(ch for ch in zone if ch.isalnum())
    b.resources[logical] = {"Type": "AWS::Route53::RecordSetGroup", "Properties": {
        "HostedZoneId": zone, "Comment": sub("LoadBalancer aliases for service ${WorkloadName} in hosted zone " + zone),
        "RecordSets": [{"Name": n, "Type": "A", "AliasTarget": {"HostedZoneId": zone_id, "DNSName": dns}}
                       for n in names]}}


def _sidecar_port(sc: dict):
    port = sc.get("port")
    if port is None:
        return None
    return port if isinstance(port, int) else int(str(port).split("/")[0])
