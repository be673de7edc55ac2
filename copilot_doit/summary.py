"""The summary after a deploy: one row per workload × environment with what ran, how long it took, and
where to go next — the URL of a Load Balanced Web Service, the endpoint of a Backend Service, the next
run of a Scheduled Job — as Copilot's `svc show` derives them (internal/pkg/describe/uri.go).

Pure functions over the resolved manifest dict and the environment stack's outputs; nothing is called.
"""
from __future__ import annotations

import calendar
import math
import re
from datetime import datetime, timedelta, timezone

from .manifest import BACKEND, JOB, LBWS, WORKER, schedule_expression
from .values import value


@value(frozen=True)
class Row:
    name: str               # the workload
    env: str
    ran: str                # e.g. "build, push, deploy" or "up to date"
    seconds: float | None   # time taken (None: not measured)
    url: str                # what url_for said


# --- URLs and endpoints -----------------------------------------------------------------------------------
def _rule_path(path) -> str:
    """Copilot's RulePath: "/" for the root, else the path without its slashes ("/api/" -> "api")."""
    path = str(path if path is not None else "/")
    return "/" if path.strip("/") == "" else path.strip("/")


def _suffix(path) -> str:
    """The URL's path as Copilot prints it (uri.go accessURI.strings): none for "/", else "/<path>"."""
    rp = _rule_path(path)
    return "" if rp == "/" else f"/{rp}"


def _first_alias(alias) -> str | None:
    """The first name of any alias form: a string, a list of strings, a list of {name, hosted_zone}."""
    if not alias:
        return None
    if isinstance(alias, str):
        return alias
    first = alias[0]
    return first if isinstance(first, str) else first.get("name")


def _port(manifest: dict) -> int | None:
    return (manifest.get("image") or {}).get("port")


def _http(manifest: dict) -> dict | None:
    """`http` as a mapping (None when off or absent); `http: true` is the root path."""
    http = manifest.get("http")
    if http is True:
        return {"path": "/"}
    return http if isinstance(http, dict) else None


def _alb_url(name: str, http: dict, env_outputs: dict, *, internal: bool, alb_dns: str | None) -> str | None:
    """`http(s)://<host><path>` for a service behind the env's public (or internal) ALB or an imported one.

    host: the first `http.alias`; else, for a public service on HTTPS in an environment with the
    application's domain, Copilot's default name `<svc>.<env>.<app>.<domain>`; else the environment's
    CloudFront domain (it fronts the ALB); else the ALB's DNS name. https: the alias (Copilot requires a
    certificate for one) or an HTTPS listener on that ALB."""
    prefix = "Internal" if internal else ""
    alias = _first_alias(http.get("alias"))
    https = bool(alias) or bool(env_outputs.get(f"{prefix}HTTPSListenerArn"))
    if alias:
        host = alias
    elif http.get("alb"):
        host = alb_dns
        if not host:
            return None
    elif not internal and https and env_outputs.get("EnvironmentSubdomain"):
        host = f"{name}.{env_outputs['EnvironmentSubdomain']}"
    elif not internal and env_outputs.get("CloudFrontDomainName"):
        host = env_outputs["CloudFrontDomainName"]
    else:
        host = (env_outputs.get(f"{prefix}LoadBalancerDNSName") or env_outputs.get(f"{prefix}LoadBalancerDNS")
                if internal else
                env_outputs.get("PublicLoadBalancerDNSName") or env_outputs.get("PublicLoadBalancerDNS"))
        if not host:
            return None
    return f"{'https' if https else 'http'}://{host}{_suffix(http.get('path'))}"


def _nlb_endpoint(manifest: dict, workload_outputs: dict) -> str | None:
    """`<alias or NLB DNS name>:<listener port>` of `nlb` (its DNS name is a workload stack output)."""
    nlb = manifest.get("nlb")
    if not isinstance(nlb, dict) or not nlb.get("port"):
        return None
    port = str(nlb["port"]).split("/")[0]
    host = _first_alias(nlb.get("alias")) or workload_outputs.get("PublicNetworkLoadBalancerDNSName")
    return f"{host}:{port}" if host else f"the network load balancer's port {port} (no DNS name known yet)"


def _backend_endpoint(name: str, manifest: dict, app: str, env: str) -> str:
    """Service Connect `<alias or svc>:<port>` when `network.connect` is on, else service discovery
    `<svc>.<env>.<app>.local:<port>` (Copilot's describe/uri.go); "no endpoint" without `image.port`."""
    port = _port(manifest)
    if not port:
        return "no endpoint (no image.port)"
    connect = (manifest.get("network") or {}).get("connect")
    if connect:
        alias = connect.get("alias") if isinstance(connect, dict) else None
        return f"{alias or name}:{port}"
    return f"{name}.{env}.{app}.local:{port}"


def _topics(manifest: dict) -> str:
    topics = ((manifest.get("subscribe") or {}).get("topics")) or []
    if not topics:
        return "no endpoint (subscribes to no topics)"
    names = ", ".join(f"{t.get('service')}/{t.get('name')}" for t in topics)
    return f"no endpoint (subscribes to {'topic' if len(topics) == 1 else 'topics'} {names})"


def url_for(workload_type: str, manifest: dict, env_outputs: dict, app: str, env: str, now: datetime | None = None,
            *, workload_outputs: dict | None = None, alb_dns: str | None = None) -> str:
    """Where to go after deploying one workload to one environment, in one short string.

    `manifest` is the resolved manifest dict (Manifest.data), `env_outputs` the environment stack's
    outputs (OutputKey -> OutputValue). `now` (UTC; default: the clock) is for a Scheduled Job's next run.
    `workload_outputs` (the workload stack's outputs) gives an NLB's DNS name; `alb_dns` the DNS name of an
    imported ALB (`http.alb`)."""
    name = manifest.get("name") or ""
    env_outputs = env_outputs or {}
    if workload_type == LBWS:
        http = _http(manifest)
        if http is not None:
            url = _alb_url(name, http, env_outputs, internal=False, alb_dns=alb_dns)
            if url:
                return url
            if http.get("alb"):
                return f"behind the imported ALB {http['alb']} at {_suffix(http.get('path')) or '/'}"
        nlb = _nlb_endpoint(manifest, workload_outputs or {})
        if nlb:
            return nlb
        return "no endpoint (the environment has no public load balancer)" if http is not None else "no endpoint"
    if workload_type == BACKEND:
        http = _http(manifest)
        if http is not None:
            url = _alb_url(name, http, env_outputs, internal=True, alb_dns=alb_dns)
            if url:
                return url
        return _backend_endpoint(name, manifest, app, env)
    if workload_type == WORKER:
        return _topics(manifest)
    if workload_type == JOB:
        schedule = str(((manifest.get("on") or {}).get("schedule")) or "none")
        return next_run_text(schedule, now)
    return "no endpoint"


# --- schedules --------------------------------------------------------------------------------------------
MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}        # JAN=1 .. DEC=12
WEEKDAYS = {d: i + 1 for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}  # AWS: SUN=1
LAST_YEAR = 2199  # EventBridge's cron years are 1970-2199
RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


class Unsupported(ValueError):
    """A schedule this calculator does not evaluate: the summary says "see schedule" rather than guess."""


def next_run_text(schedule: str, now: datetime | None = None) -> str:
    """`next run 2024-05-01 00:00 UTC (@daily)`; for a rate, the latest the next run can be
    (`next run by …`: EventBridge counts a rate from when the rule was created, which is not known here);
    `none (schedule: none)`; `see schedule: <schedule>` for a form not evaluated here."""
    now = _utc_now(now)
    s = schedule.strip()
    if s == "none":
        return "none (schedule: none)"
    try:
        expr = schedule_expression(s)
        if expr.startswith("rate("):
            by = now + timedelta(seconds=rate_seconds(expr))
            if by.second or by.microsecond:
                by = by.replace(second=0, microsecond=0) + timedelta(minutes=1)
            return f"next run by {by:%Y-%m-%d %H:%M} UTC ({s})"
        return f"next run {next_cron_run(expr, now):%Y-%m-%d %H:%M} UTC ({s})"
    except ValueError:  # Unsupported, or a schedule the manifest check would have refused
        return f"see schedule: {s}"


def _utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    return now.astimezone(timezone.utc) if now.tzinfo else now.replace(tzinfo=timezone.utc)


def rate_seconds(expr: str) -> int:
    """`rate(5 minutes)` -> 300."""
    m = re.fullmatch(r"rate\(\s*(\d+)\s+([a-z]+)\s*\)", expr.strip())
    if not m or m.group(2) not in RATE_UNITS or int(m.group(1)) < 1:
        raise Unsupported(expr)
    return int(m.group(1)) * RATE_UNITS[m.group(2)]


def _number(text: str, lo: int, hi: int, names: dict | None) -> int:
    value = names.get(text.upper()) if names and not text.isdigit() else None
    if value is None:
        if not text.isdigit():
            raise Unsupported(text)
        value = int(text)
    if not lo <= value <= hi:
        raise Unsupported(text)
    return value


def _values(field: str, lo: int, hi: int, names: dict | None = None) -> set[int]:
    """A cron field of `*`, numbers or names, `a-b` ranges, `/step` and `,` lists, as a set of values."""
    out: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise Unsupported(part)
            step = int(step_text)
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, lo, hi, names), _number(b, lo, hi, names)
            if first > last:  # a wrap-around range (FRI-MON): not guessed
                raise Unsupported(part)
        else:
            first = _number(base, lo, hi, names)
            last = hi if step_text else first
        out.update(range(first, last + 1, step))
    return out


def _aws_weekday(d: datetime) -> int:
    return (d.weekday() + 1) % 7 + 1  # Python: Monday=0 .. Sunday=6; AWS: Sunday=1 .. Saturday=7


def _day_matcher(dom: str, dow: str):
    """A predicate on a date for the day-of-month / day-of-week pair (one of them is `?`), with `L`
    (last day; `5L` the last Thursday), `W` (nearest weekday; `LW`) and `#` (`6#3` the third Friday)."""
    if (dom == "?") == (dow == "?"):
        raise Unsupported("exactly one of day-of-month and day-of-week must be ?")
    if dow == "?":
        if dom == "L":
            return lambda d, last: d.day == last
        if dom == "LW":
            return lambda d, last: d.day == _nearest_weekday(d, last, last)
        if dom.endswith("W"):
            target = _number(dom[:-1], 1, 31, None)
            return lambda d, last: target <= last and d.day == _nearest_weekday(d, target, last)
        days = _values(dom, 1, 31)
        return lambda d, last: d.day in days
    if "#" in dow:
        day_text, _, nth_text = dow.partition("#")
        wd, nth = _number(day_text, 1, 7, WEEKDAYS), _number(nth_text, 1, 5, None)
        return lambda d, last: _aws_weekday(d) == wd and (d.day - 1) // 7 + 1 == nth
    if dow.upper().endswith("L") and dow.upper() not in WEEKDAYS:
        wd = _number(dow[:-1], 1, 7, WEEKDAYS) if len(dow) > 1 else 7  # a lone L is Saturday (Quartz)
        return lambda d, last: _aws_weekday(d) == wd and d.day + 7 > last
    days = _values(dow, 1, 7, WEEKDAYS)
    return lambda d, last: _aws_weekday(d) in days


def _nearest_weekday(d: datetime, day: int, last: int) -> int:
    """The day of d's month that is the weekday nearest to `day`, never leaving the month (Quartz's W)."""
    wd = datetime(d.year, d.month, day).weekday()  # Monday=0
    if wd == 5:   # Saturday: Friday before, or Monday after when the 1st
        return day - 1 if day > 1 else day + 2
    if wd == 6:   # Sunday: Monday after, or Friday before when the last day
        return day + 1 if day < last else day - 2
    return day


def next_cron_run(expr: str, now: datetime) -> datetime:
    """The first minute strictly after `now` (UTC) that an EventBridge `cron(min hour dom month dow year)`
    expression fires at. Raises Unsupported for a form it does not evaluate or a schedule that never fires."""
    m = re.fullmatch(r"cron\((.*)\)", expr.strip())
    fields = m.group(1).split() if m else []
    if len(fields) != 6:
        raise Unsupported(expr)
    minute, hour, dom, month, dow, year = fields
    minutes = sorted(_values(minute, 0, 59))
    hours = sorted(_values(hour, 0, 23))
    months = sorted(_values(month, 1, 12, MONTHS))
    years = sorted(_values(year, 1970, LAST_YEAR))
    day_ok = _day_matcher(dom, dow)
    now = _utc_now(now)
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for y in (y for y in years if y >= start.year):
        for mo in months:
            if (y, mo) < (start.year, start.month):
                continue
            last = calendar.monthrange(y, mo)[1]
            first_day = start.day if (y, mo) == (start.year, start.month) else 1
            for day in range(first_day, last + 1):
                d = datetime(y, mo, day, tzinfo=timezone.utc)
                if not day_ok(d, last):
                    continue
                for h in hours:
                    for mi in minutes:
                        at = d.replace(hour=h, minute=mi)
                        if at >= start:
                            return at
    raise Unsupported(f"{expr} never fires after {now:%Y-%m-%d %H:%M}")


# --- the table --------------------------------------------------------------------------------------------
HEADER = ("WORKLOAD", "ENV", "RAN", "TIME", "URL")


def duration(seconds: float | None) -> str:
    """`0.4s`, `12.3s`, `2m05s`, `1h02m`; `-` when not measured."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(math.floor(seconds + 0.5))
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def table(rows: list[Row]) -> str:
    """A plain aligned text table, one line per row, columns separated by two spaces, no trailing spaces;
    the time right-aligned. Ends with a newline."""
    cells = [HEADER] + [(r.name, r.env, r.ran, duration(r.seconds), r.url) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    out = []
    for c in cells:
        parts = [c[i].rjust(widths[i]) if i == 3 and c is not cells[0] else c[i].ljust(widths[i])
                 for i in range(len(HEADER))]
        out.append("  ".join(parts).rstrip())
    return "\n".join(out) + "\n"
