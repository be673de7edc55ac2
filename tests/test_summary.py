"""copilot_doit/summary.py: the URL or endpoint per workload type (Copilot's describe/uri.go rules), the next
run of every schedule form from a fixed now, and the table's layout."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from copilot_doit.summary import Row, next_cron_run, next_run_text, table, url_for, Unsupported

LBWS, BACKEND, WORKER, JOB = "Load Balanced Web Service", "Backend Service", "Worker Service", "Scheduled Job"
ALB = "demo-t-Publi-1AbCdEfGhIjK-123456789.us-east-1.elb.amazonaws.com"
INTERNAL = "internal-demo-t-Inter-9ZyXwV-987654321.us-east-1.elb.amazonaws.com"
ENV = {"PublicLoadBalancerDNSName": ALB, "HTTPListenerArn": "arn:aws:elasticloadbalancing:…:listener/app/x/1/2",
       "InternalLoadBalancerDNSName": INTERNAL, "ClusterId": "demo-test-Cluster"}
HTTPS_ENV = {**ENV, "HTTPSListenerArn": "arn:aws:elasticloadbalancing:…:listener/app/x/1/3"}
# 2024-02-28 13:37:12 UTC is a Wednesday in a leap year.
NOW = datetime(2024, 2, 28, 13, 37, 12, tzinfo=timezone.utc)


def web(path="/", **http):
    return {"name": "front", "type": LBWS, "image": {"port": 8080}, "http": {"path": path, **http}}


# --- Load Balanced Web Service -----------------------------------------------------------------------------
@pytest.mark.parametrize("path,suffix", [("/", ""), ("", ""), ("api", "/api"), ("/api", "/api"), ("/api/", "/api"),
                                         ("api/v1", "/api/v1")])
def test_web_service_url_joins_the_path_as_copilot(path, suffix):
    assert url_for(LBWS, web(path), ENV, "demo", "test") == f"http://{ALB}{suffix}"


def test_web_service_on_https_uses_https():
    assert url_for(LBWS, web("api"), HTTPS_ENV, "demo", "test") == f"https://{ALB}/api"


def test_web_service_alias_is_the_host_and_means_https():
    assert url_for(LBWS, web("/", alias="shop.example.com"), ENV, "demo", "test") == "https://shop.example.com"
    listed = web("api", alias=[{"name": "a.example.com", "hosted_zone": "Z1"}, {"name": "b.example.com"}])
    assert url_for(LBWS, listed, HTTPS_ENV, "demo", "test") == "https://a.example.com/api"
    assert url_for(LBWS, web("/", alias=["x.example.com", "y.example.com"]), ENV, "demo", "test") == "https://x.example.com"


def test_web_service_with_the_app_domain_gets_copilots_default_name():
    outputs = {**HTTPS_ENV, "EnvironmentSubdomain": "test.demo.example.com"}
    assert url_for(LBWS, web("/"), outputs, "demo", "test") == "https://front.test.demo.example.com"
    assert url_for(LBWS, web("/", alias="www.example.com"), outputs, "demo", "test") == "https://www.example.com"


def test_web_service_behind_cloudfront_uses_its_domain():
    outputs = {**ENV, "CloudFrontDomainName": "d111111abcdef8.cloudfront.net"}
    assert url_for(LBWS, web("api"), outputs, "demo", "test") == "http://d111111abcdef8.cloudfront.net/api"


def test_web_service_in_a_copilot_made_environment_reads_its_output_names():
    assert url_for(LBWS, web("/"), {"PublicLoadBalancerDNS": ALB}, "demo", "test") == f"http://{ALB}"


def test_web_service_behind_an_imported_alb():
    m = web("api", alb="arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/theirs/abc")
    assert url_for(LBWS, m, ENV, "demo", "test", alb_dns="theirs-1.elb.amazonaws.com") == \
        "http://theirs-1.elb.amazonaws.com/api"
    assert url_for(LBWS, m, ENV, "demo", "test") == \
        "behind the imported ALB arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/theirs/abc at /api"


def test_web_service_with_only_an_nlb():
    m = {"name": "tcp", "type": LBWS, "http": False, "nlb": {"port": "443/tcp"}}
    assert url_for(LBWS, m, ENV, "demo", "test",
                   workload_outputs={"PublicNetworkLoadBalancerDNSName": "tcp-nlb.elb.amazonaws.com"}) == \
        "tcp-nlb.elb.amazonaws.com:443"
    assert url_for(LBWS, {**m, "nlb": {"port": 53, "alias": "dns.example.com"}}, ENV, "demo", "test") == \
        "dns.example.com:53"


def test_web_service_in_an_environment_without_a_public_alb():
    assert url_for(LBWS, web("/"), {"ClusterId": "c"}, "demo", "test") == \
        "no endpoint (the environment has no public load balancer)"


# --- Backend Service ---------------------------------------------------------------------------------------
def test_backend_service_discovery_endpoint():
    m = {"name": "orders", "image": {"port": 3000}}
    assert url_for(BACKEND, m, ENV, "demo", "test") == "orders.test.demo.local:3000"


def test_backend_service_connect_endpoint():
    m = {"name": "orders", "image": {"port": 3000}, "network": {"connect": True}}
    assert url_for(BACKEND, m, ENV, "demo", "test") == "orders:3000"
    m["network"]["connect"] = {"alias": "orders-api"}
    assert url_for(BACKEND, m, ENV, "demo", "test") == "orders-api:3000"


def test_backend_service_without_a_port_has_no_endpoint():
    assert url_for(BACKEND, {"name": "cron-ish", "image": {}}, ENV, "demo", "test") == "no endpoint (no image.port)"
    assert url_for(BACKEND, {"name": "x", "network": {"connect": True}}, ENV, "demo", "test") == \
        "no endpoint (no image.port)"


def test_backend_service_behind_the_internal_alb():
    m = {"name": "orders", "image": {"port": 3000}, "http": {"path": "orders"}}
    assert url_for(BACKEND, m, ENV, "demo", "test") == f"http://{INTERNAL}/orders"
    https = {**ENV, "InternalHTTPSListenerArn": "arn:…"}
    assert url_for(BACKEND, m, https, "demo", "test") == f"https://{INTERNAL}/orders"
    # the internal ALB's listener, not the public one, decides https
    assert url_for(BACKEND, m, HTTPS_ENV, "demo", "test") == f"http://{INTERNAL}/orders"


# --- Worker Service ----------------------------------------------------------------------------------------
def test_worker_service_names_its_topics():
    m = {"name": "w", "subscribe": {"topics": [{"name": "orders", "service": "api"},
                                               {"name": "events", "service": "front"}]}}
    assert url_for(WORKER, m, ENV, "demo", "test") == "no endpoint (subscribes to topics api/orders, front/events)"
    one = {"name": "w", "subscribe": {"topics": [{"name": "orders", "service": "api"}]}}
    assert url_for(WORKER, one, ENV, "demo", "test") == "no endpoint (subscribes to topic api/orders)"
    assert url_for(WORKER, {"name": "w"}, ENV, "demo", "test") == "no endpoint (subscribes to no topics)"


# --- Scheduled Job -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule,expected", [
    ("@hourly", "next run 2024-02-28 14:00 UTC (@hourly)"),
    ("@daily", "next run 2024-02-29 00:00 UTC (@daily)"),
    ("@midnight", "next run 2024-02-29 00:00 UTC (@midnight)"),
    ("@weekly", "next run 2024-03-03 00:00 UTC (@weekly)"),          # Sunday
    ("@monthly", "next run 2024-03-01 00:00 UTC (@monthly)"),
    ("@yearly", "next run 2025-01-01 00:00 UTC (@yearly)"),
    ("@annually", "next run 2025-01-01 00:00 UTC (@annually)"),
    # a rate counts from when EventBridge created the rule: the next run is at the latest one period away
    ("@every 2h", "next run by 2024-02-28 15:38 UTC (@every 2h)"),
    ("@every 30m", "next run by 2024-02-28 14:08 UTC (@every 30m)"),
    ("rate(5 minutes)", "next run by 2024-02-28 13:43 UTC (rate(5 minutes))"),
    ("rate(1 hour)", "next run by 2024-02-28 14:38 UTC (rate(1 hour))"),
    ("rate(1 day)", "next run by 2024-02-29 13:38 UTC (rate(1 day))"),
    ("cron(0 12 * * ? *)", "next run 2024-02-29 12:00 UTC (cron(0 12 * * ? *))"),
    ("cron(45 13 * * ? *)", "next run 2024-02-28 13:45 UTC (cron(45 13 * * ? *))"),
    ("cron(0/20 * * * ? *)", "next run 2024-02-28 13:40 UTC (cron(0/20 * * * ? *))"),
    ("cron(0 9 ? * MON-FRI *)", "next run 2024-02-29 09:00 UTC (cron(0 9 ? * MON-FRI *))"),
    ("cron(0 9 ? * 2,5 *)", "next run 2024-02-29 09:00 UTC (cron(0 9 ? * 2,5 *))"),   # MON, THU (AWS: 1=SUN)
    ("cron(0 9 ? * 2,4 *)", "next run 2024-03-04 09:00 UTC (cron(0 9 ? * 2,4 *))"),   # MON, WED: today's is past
    ("cron(0 0 1 JAN,JUL ? *)", "next run 2024-07-01 00:00 UTC (cron(0 0 1 JAN,JUL ? *))"),
    ("cron(0 0 1 1 ? 2027)", "next run 2027-01-01 00:00 UTC (cron(0 0 1 1 ? 2027))"),
    ("cron(0 0 L * ? *)", "next run 2024-02-29 00:00 UTC (cron(0 0 L * ? *))"),        # leap day
    ("cron(0 0 LW * ? *)", "next run 2024-02-29 00:00 UTC (cron(0 0 LW * ? *))"),
    ("cron(0 0 1W * ? *)", "next run 2024-03-01 00:00 UTC (cron(0 0 1W * ? *))"),      # a Friday
    ("cron(0 0 16W * ? *)", "next run 2024-03-15 00:00 UTC (cron(0 0 16W * ? *))"),    # Sat 16th -> Fri 15th
    ("cron(0 0 ? * 6L *)", "next run 2024-03-29 00:00 UTC (cron(0 0 ? * 6L *))"),      # last Friday
    ("cron(0 8 ? * 6#3 *)", "next run 2024-03-15 08:00 UTC (cron(0 8 ? * 6#3 *))"),    # third Friday
    # standard 5-field cron: Copilot turns it into EventBridge's (day of week 0=Sunday becomes 1)
    ("*/15 * * * *", "next run 2024-02-28 13:45 UTC (*/15 * * * *)"),
    ("0 9 * * 1-5", "next run 2024-02-29 09:00 UTC (0 9 * * 1-5)"),
    ("30 2 * * 0", "next run 2024-03-03 02:30 UTC (30 2 * * 0)"),
    ("0 0 29 2 *", "next run 2024-02-29 00:00 UTC (0 0 29 2 *)"),
    ("none", "none (schedule: none)"),
    # refused rather than guessed
    ("cron(0 0 ? * FRI-MON *)", "see schedule: cron(0 0 ? * FRI-MON *)"),
    ("cron(0 0 * * * *)", "see schedule: cron(0 0 * * * *)"),            # EventBridge wants one '?'
    ("cron(0 0 30 2 ? *)", "see schedule: cron(0 0 30 2 ? *)"),          # never fires
    ("cron(0 0 1 1 ? 2020)", "see schedule: cron(0 0 1 1 ? 2020)"),      # only in the past
    ("cron(61 * * * ? *)", "see schedule: cron(61 * * * ? *)"),
    ("@every 90s", "see schedule: @every 90s"),
])
def test_scheduled_job_next_run(schedule, expected):
    m = {"name": "report", "on": {"schedule": schedule}}
    assert url_for(JOB, m, ENV, "demo", "test", now=NOW) == expected


def test_next_run_is_strictly_after_now_and_a_naive_now_is_utc():
    on_the_hour = datetime(2024, 2, 28, 14, 0, 0, tzinfo=timezone.utc)
    assert next_cron_run("cron(0 * * * ? *)", on_the_hour) == on_the_hour + timedelta(hours=1)
    assert next_run_text("@hourly", datetime(2024, 2, 28, 13, 37)) == "next run 2024-02-28 14:00 UTC (@hourly)"
    other_zone = datetime(2024, 2, 28, 15, 37, tzinfo=timezone(timedelta(hours=2)))  # 13:37 UTC
    assert next_run_text("@hourly", other_zone) == "next run 2024-02-28 14:00 UTC (@hourly)"


def test_next_cron_run_over_a_year_end_and_refusals():
    eve = datetime(2024, 12, 31, 23, 59, 30, tzinfo=timezone.utc)
    assert next_cron_run("cron(* * * * ? *)", eve) == datetime(2025, 1, 1, 0, 0, tzinfo=timezone.utc)
    assert next_cron_run("cron(0 0 ? * 1 *)", eve) == datetime(2025, 1, 5, tzinfo=timezone.utc)   # a Sunday
    with pytest.raises(Unsupported):
        next_cron_run("cron(0 0 * * ?)", eve)   # five fields


# --- the table ----------------------------------------------------------------------------------------------
def test_table_layout():
    rows = [Row("front", "test", "build, push, deploy", 42.14, f"http://{ALB}"),
            Row("orders", "prod", "up to date", 0.4, "orders.prod.demo.local:3000"),
            Row("report", "test", "deploy", 125, "next run 2024-02-29 00:00 UTC (@daily)"),
            Row("w", "test", "deploy", None, "no endpoint (subscribes to topics api/orders)")]
    assert table(rows) == (
        "WORKLOAD  ENV   RAN                  TIME   URL\n"
        f"front     test  build, push, deploy  42.1s  http://{ALB}\n"
        "orders    prod  up to date            0.4s  orders.prod.demo.local:3000\n"
        "report    test  deploy               2m05s  next run 2024-02-29 00:00 UTC (@daily)\n"
        "w         test  deploy                   -  no endpoint (subscribes to topics api/orders)\n")
    assert all(line == line.rstrip() for line in table(rows).splitlines())


def test_table_of_no_rows_is_its_header_and_long_runs_show_hours():
    assert table([]) == "WORKLOAD  ENV  RAN  TIME  URL\n"
    assert "1h02m" in table([Row("a", "b", "deploy", 3725, "")])
