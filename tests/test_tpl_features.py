"""The manifest surface beyond the sample workspace: each field renders as Copilot renders it and the
template is cfn-lint clean (errors; warnings are listed where they are expected)."""
from __future__ import annotations

import textwrap

import pytest
import yaml

from copilot_doit import manifest, templates
from copilot_doit.errors import UserError
from copilot_doit.templates import env as env_t
from copilot_doit.templates import workload

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/demo/x@sha256:" + "a" * 64
LBWS = "name: svc\ntype: Load Balanced Web Service\nimage:\n  location: nginx\n  port: 80\nhttp:\n  path: /\n"
BACKEND = "name: svc\ntype: Backend Service\nimage:\n  location: nginx\n  port: 80\n"
WORKER = ("name: svc\ntype: Worker Service\nimage:\n  location: nginx\n"
          "subscribe:\n  topics:\n    - {name: events, service: api}\n")
JOB = "name: svc\ntype: Scheduled Job\nimage:\n  location: nginx\non:\n  schedule: '@daily'\n"


@pytest.fixture(scope="module")
def lint():
    from cfnlint.api import lint as run
    return lambda body: [(m.rule.id, m.linenumber, m.message) for m in run(body, regions=["us-east-1"])
                         if m.rule.severity == "error"]


def render(tmp_path, text, env="test", **kw):
    p = tmp_path / "svc" / "manifest.yml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    m = manifest.load_workload(p, "demo", env, "svc")
    t, params = workload.render(workload.RenderInput(m, "demo", env, IMAGE, **kw))
    assert set(t["Parameters"]) == set(params)
    return t, params


def ok(tmp_path, lint, text, **kw):
    t, params = render(tmp_path, text, **kw)
    assert lint(templates.dump(t)) == []
    return t, params


def res(t, logical):
    return t["Resources"][logical]["Properties"]


def containers(t):
    return {c["Name"]: c for c in res(t, "TaskDefinition")["ContainerDefinitions"]}


def test_security_groups_from_cfn_and_deny_default(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS + textwrap.dedent("""\
        network:
          vpc:
            placement: {subnets: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]}
            security_groups:
              groups: [sg-0123456789abcdef0, {from_cfn: shared-db-sg}]
              deny_default: true
        """))
    net = res(t, "Service")["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert net["SecurityGroups"] == ["sg-0123456789abcdef0", {"Fn::ImportValue": "shared-db-sg"}]
    assert net["Subnets"] == ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]


def test_http_false_has_no_listener_rule(tmp_path, lint):
    t, params = ok(tmp_path, lint, LBWS.replace("http:\n  path: /\n", "http: false\n"))
    assert not any(r["Type"].endswith("ListenerRule") for r in t["Resources"].values())


def test_additional_rules_aliases_source_ips_and_grpc(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS + textwrap.indent(textwrap.dedent("""\
          alias: [a.example.com, {name: b.example.com, hosted_zone: Z0123456789ABCDEFGHIJ}]
          allowed_source_ips: [10.0.0.0/16]
          version: grpc
          additional_rules:
            - path: admin
              target_port: 8081
              healthcheck: /admin
        """), "  "))
    rule = res(t, "HTTPListenerRule")
    fields = [c["Field"] for c in rule["Conditions"]]
    assert fields == ["path-pattern", "host-header", "source-ip"]
    assert res(t, "TargetGroup")["ProtocolVersion"] == "GRPC"
    assert res(t, "TargetGroup1")["Port"] == 8081
    assert res(t, "HTTPListenerRule1")["Priority"] != rule["Priority"]
    assert {"ContainerPort": 8081, "Protocol": "tcp"} in containers(t)["svc"]["PortMappings"]
    records = res(t, "LoadBalancerDNSAliasZ0123456789ABCDEFGHIJ")["RecordSets"]
    assert [r["Name"] for r in records] == ["b.example.com"]


def test_https_listener_and_redirect(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS, https=True)
    assert res(t, "HTTPSListenerRule")["ListenerArn"] == templates.import_env("HTTPSListenerArn")
    assert res(t, "HTTPListenerRedirectRule")["Actions"][0]["Type"] == "redirect"
    t, _ = ok(tmp_path, lint, LBWS + "  redirect_to_https: false\n", https=True)
    assert res(t, "HTTPListenerRule")["Actions"][0]["Type"] == "forward"


def test_imported_alb(tmp_path, lint):
    alb = {"listener_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/x/1/2",
           "dns_name": "x.elb.amazonaws.com", "hosted_zone_id": "Z35SXDOTRQ7X7K", "full_name": "app/x/1"}
    t, params = ok(tmp_path, lint, LBWS + "  alb: arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/x/1\n",
                   imported_alb=alb)
    assert params["ImportedALBListenerArn"] == alb["listener_arn"]
    assert "TargetGroupForImportedALB" in t["Resources"]
    with pytest.raises(UserError, match="field 'http.alb': the imported load balancer's listeners were not looked up"):
        render(tmp_path, LBWS + "  alb: my-alb\n")


def test_nlb_udp_and_tcp_listeners(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS + "nlb:\n  port: 8080/udp\n  healthcheck: {port: 80}\n"
              "  additional_listeners:\n    - port: 9090/tcp\n")
    assert res(t, "NLBListener")["Protocol"] == "UDP" and res(t, "NLBListener1")["Protocol"] == "TCP"
    assert {"ContainerPort": 8080, "Protocol": "udp"} in containers(t)["svc"]["PortMappings"]
    assert len(res(t, "Service")["LoadBalancers"]) == 3


def test_service_connect_server_and_alias(tmp_path, lint):
    t, _ = ok(tmp_path, lint, BACKEND + "network:\n  connect:\n    alias: api\n")
    sc = res(t, "Service")["ServiceConnectConfiguration"]
    assert sc["Services"][0]["ClientAliases"][0]["DnsName"] == "api"
    assert containers(t)["svc"]["PortMappings"][0]["Name"] == "target"
    t, _ = ok(tmp_path, lint, WORKER + "network:\n  connect: true\n")
    assert "Services" not in res(t, "Service")["ServiceConnectConfiguration"]


@pytest.mark.parametrize("count,policies", [
    ("{range: 1-10, cpu_percentage: 50, memory_percentage: {value: 60, cooldown: {in: 30s, out: 10s}}}",
     ["AutoScalingPolicyCPU", "AutoScalingPolicyMemory"]),
    ("{range: 1-10, requests: 100, response_time: 2s, cooldown: {in: 1m, out: 1m}}",
     ["AutoScalingPolicyRequests", "AutoScalingPolicyResponseTime"]),
])
def test_autoscaling(tmp_path, lint, count, policies):
    t, _ = ok(tmp_path, lint, LBWS + f"count: {count}\n")
    assert [k for k in t["Resources"] if k.startswith("AutoScalingPolicy")] == policies


def test_spot(tmp_path, lint):
    t, params = ok(tmp_path, lint, LBWS + "count: {spot: 3}\n")
    assert params["TaskCount"] == "3"
    assert res(t, "Service")["CapacityProviderStrategy"] == [{"CapacityProvider": "FARGATE_SPOT", "Weight": 1}]
    assert "LaunchType" not in res(t, "Service")
    t, _ = ok(tmp_path, lint, LBWS + "count: {range: {min: 1, max: 10, spot_from: 3}, cpu_percentage: 70}\n")
    assert res(t, "Service")["CapacityProviderStrategy"][1] == {"CapacityProvider": "FARGATE", "Weight": 0, "Base": 2}


def test_worker_queue_delay_fifo_filter_policy(tmp_path, lint):
    t, _ = ok(tmp_path, lint, textwrap.dedent("""\
        name: svc
        type: Worker Service
        image: {location: nginx}
        count:
          range: 1-5
          queue_delay: {acceptable_latency: 10m, msg_processing_time: 2s}
        subscribe:
          queue: {fifo: {content_based_deduplication: true}, dead_letter: {tries: 3}}
          topics:
            - name: orders
              service: api
              filter_policy: {store: [example_corp]}
            - name: events
              service: api
              queue: {timeout: 30s}
        publish:
          topics:
            - {name: out, fifo: true}
        """))
    assert res(t, "EventsQueue")["FifoQueue"] is True and res(t, "DeadLetterQueue")["FifoQueue"] is True
    assert res(t, "ApiOrdersSubscription")["FilterPolicy"] == {"store": ["example_corp"]}
    assert res(t, "ApiOrdersSubscription")["TopicArn"]["Fn::Sub"].endswith("api-orders.fifo")
    assert "ApiEventsEventsQueue" in t["Resources"]
    target = res(t, "AutoScalingPolicyEventsQueue")["TargetTrackingScalingPolicyConfiguration"]
    assert target["TargetValue"] == 300
    assert res(t, "OutfifoSNSTopic")["FifoTopic"] is True


def test_rollback_alarms(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS + "deployment:\n  rollback_alarms: {cpu_utilization: 70, memory_utilization: 50}\n")
    assert len(res(t, "Service")["DeploymentConfiguration"]["Alarms"]["AlarmNames"]) == 2
    t, _ = ok(tmp_path, lint, LBWS + "deployment:\n  rollback_alarms: [my-alarm]\n")
    assert res(t, "Service")["DeploymentConfiguration"]["Alarms"]["AlarmNames"] == ["my-alarm"]


def test_image_depends_on_credentials_readonly_fs(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS.replace("  port: 80\n", "  port: 80\n  depends_on: {proxy: healthy}\n"
                                           "  credentials: arn:aws:secretsmanager:us-east-1:123456789012:secret:c\n")
              + "storage: {readonly_fs: true}\n"
              "sidecars:\n  proxy:\n    image: envoy\n    healthcheck: {command: [CMD, /bin/true]}\n")
    c = containers(t)["svc"]
    assert c["DependsOn"] == [{"Condition": "HEALTHY", "ContainerName": "proxy"}]
    assert c["ReadonlyRootFilesystem"] is True and "CredentialsParameter" in c["RepositoryCredentials"]


def test_volumes_efs_managed_and_bind(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS + textwrap.dedent("""\
        storage:
          volumes:
            data: {path: /data, read_only: false, efs: true}
            shared:
              path: /shared
              efs: {id: fs-0123456789abcdef0, auth: {iam: true, access_point_id: fsap-0123456789abcdef0}}
            scratch: {path: /scratch, read_only: false}
        sidecars:
          side:
            image: busybox
            mount_points: [{source_volume: scratch, path: /s, read_only: false}]
        """))
    vols = {v["Name"]: v for v in res(t, "TaskDefinition")["Volumes"]}
    assert vols["scratch"] == {"Name": "scratch"}
    assert vols["data"]["EFSVolumeConfiguration"]["AuthorizationConfig"]["AccessPointId"] == {"Ref": "AccessPoint"}
    assert "AccessPoint" in t["Resources"]
    assert containers(t)["side"]["MountPoints"][0]["SourceVolume"] == "scratch"


def test_firelens_logging(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS + textwrap.dedent("""\
        logging:
          destination: {Name: cloudwatch, region: us-east-1, log_group_name: /x}
          enableMetadata: false
          secretOptions: {TOKEN: /tok}
        """))
    c = containers(t)
    assert c["svc"]["LogConfiguration"]["LogDriver"] == "awsfirelens"
    assert c["firelens_log_router"]["FirelensConfiguration"]["Options"]["enable-ecs-log-metadata"] == "false"


def test_tracing_platform_and_overrides(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS + textwrap.dedent("""\
        observability: {tracing: awsxray}
        platform: linux/arm64
        taskdef_overrides:
          - path: ContainerDefinitions[0].Ulimits[-]
            value: {Name: nofile, SoftLimit: 1024, HardLimit: 2048}
          - path: PidMode
            value: task
        """))
    assert "aws-otel-collector" in containers(t)
    assert res(t, "TaskDefinition")["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    assert containers(t)["svc"]["Ulimits"] == [{"Name": "nofile", "SoftLimit": 1024, "HardLimit": 2048}]
    assert res(t, "TaskDefinition")["PidMode"] == "task"


def test_windows_platform(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS + "platform: windows/x86_64\ncpu: 1024\nmemory: 2048\n")
    assert res(t, "TaskDefinition")["RuntimePlatform"]["OperatingSystemFamily"] == "WINDOWS_SERVER_2019_CORE"
    with pytest.raises(UserError, match="Windows tasks need at least cpu 1024"):
        render(tmp_path, LBWS + "platform: windows/x86_64\n")


def test_secrets_and_variables_from_cfn(tmp_path, lint):
    t, _ = ok(tmp_path, lint, LBWS + "secrets:\n  A: {from_cfn: exp-a}\nvariables:\n  B: {from_cfn: exp-b}\n")
    c = containers(t)["svc"]
    assert {"Name": "A", "ValueFrom": {"Fn::ImportValue": "exp-a"}} in c["Secrets"]
    assert {"Name": "B", "Value": {"Fn::ImportValue": "exp-b"}} in c["Environment"]


@pytest.mark.parametrize("schedule,expr", [
    ("'0 12 * * MON'", "cron(0 12 ? * MON *)"), ("'@every 30m'", "rate(30 minutes)"),
    ("'rate(1 hour)'", "rate(1 hour)"), ("none", "none")])
def test_job_schedules(tmp_path, lint, schedule, expr):
    t, params = ok(tmp_path, lint, JOB.replace("'@daily'", schedule))
    assert params["Schedule"] == expr
    assert ("Rule" in t["Resources"]) == (expr != "none")


def test_bad_override_path_names_field(tmp_path):
    with pytest.raises(UserError, match="taskdef_overrides"):
        render(tmp_path, LBWS + "taskdef_overrides:\n  - path: ContainerDefinitions[9].Ulimits\n    value: 1\n")


# --- environment ---------------------------------------------------------------------------------------
def env_ok(lint, data, **kw):
    t, params = env_t.render("demo", "test", data, **kw)
    assert lint(templates.dump(t)) == []
    assert set(t["Outputs"]) <= set(env_t.EXPORTS)
    return t, params


def test_env_flow_logs_security_group_nat_efs_endpoints(lint):
    data = yaml.safe_load(textwrap.dedent("""\
        network:
          vpc:
            flow_logs: {retention: 30}
            security_group:
              ingress: [{ip_protocol: tcp, ports: 80, cidr: 10.0.0.0/16}]
              egress: [{ip_protocol: tcp, ports: 0-65535, cidr: 0.0.0.0/0}]
        """))
    t, _ = env_ok(lint, data, nat_gateways=True, managed_efs=True, vpc_endpoints=["s3", "ecr.api", "logs"])
    r = t["Resources"]
    assert {"NatGateway1", "NatGateway2", "PrivateRoute1", "VpcFlowLog", "FileSystem", "MountTarget2",
            "S3VpcEndpoint", "EcrApiVpcEndpoint"} <= set(r)
    assert r["EnvironmentSecurityGroup"]["Properties"]["SecurityGroupIngress"][0]["FromPort"] == 80
    assert "ManagedFileSystemID" in t["Outputs"]


def test_env_https_access_logs_source_ips_private(lint):
    data = yaml.safe_load(textwrap.dedent("""\
        http:
          public:
            certificates: [arn:aws:acm:us-east-1:123456789012:certificate/a, arn:aws:acm:us-east-1:123456789012:certificate/b]
            ssl_policy: ELBSecurityPolicy-TLS13-1-2-2021-06
            access_logs: {prefix: logs}
            ingress: {source_ips: [10.1.0.0/16]}
          private:
            certificates: [arn:aws:acm:us-east-1:123456789012:certificate/c]
            ingress: {vpc: true}
        """))
    t, _ = env_ok(lint, data)
    r = t["Resources"]
    assert r["HTTPSListener"]["Properties"]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert "HTTPSImportCertificate" in r and "InternalHTTPSListener" in r and "ELBAccessLogsBucket" in r
    assert {i["CidrIp"] for i in r["PublicLoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]} == {"10.1.0.0/16"}
    assert {"HTTPSListenerArn", "InternalHTTPSListenerArn"} <= set(t["Outputs"])


def test_env_cdn(lint):
    t, params = env_ok(lint, {"cdn": {"terminate_tls": True}, "http": {"public": {"ingress": {"cdn": True}}}},
                       cloudfront_prefix_list="pl-3b927c52")
    assert "CloudFrontDistribution" in t["Resources"] and params["CloudFrontPrefixListId"] == "pl-3b927c52"


def test_env_needs_and_https():
    assert env_t.needs([{"network": {"vpc": {"placement": "private"}}}]) == {"nat_gateways": True, "managed_efs": False}
    assert env_t.https({"http": {"private": {"certificates": ["c"]}}}, manifest.BACKEND)
    assert not env_t.https({"http": {"private": {"certificates": ["c"]}}}, manifest.LBWS)
