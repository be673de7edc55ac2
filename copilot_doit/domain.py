"""The application domain (`copilot-doit.yml`: `application: {domain: example.com}`): which aliases a
workload may have, and in which hosted zone each one lives.

Copilot keeps the domain in SSM (`copilot app init --domain`), owns the zones `<app>.<domain>` (created by
`app init`) and `<env>.<app>.<domain>` (created by the env stack), and checks aliases before a deploy
(internal/pkg/cli/deploy/lbws.go `validateRuntimeRoutingRule`, `validateNLBRuntime`; svc.go
`validateAliases`). Copilot's regular expressions are unanchored at the end and leave dots unescaped; here
the same patterns are exact.
"""
from __future__ import annotations

import re

from .manifest import LBWS, Manifest

ENV, APP, ROOT = "env", "app", "root"


def zone_names(app: str, env: str, domain: str) -> dict[str, str]:
    """The three hosted zones an alias may live in: the env's, the app's, the domain's own."""
    return {ENV: f"{env}.{app}.{domain}", APP: f"{app}.{domain}", ROOT: domain}


def zone_of(alias: str, app: str, env: str, domain: str) -> str | None:
    """ENV, APP or ROOT: the most specific zone whose name is the alias or its parent; None otherwise.
    (`<app>.<domain>` is the app zone's apex, `<env>.<app>.<domain>` the env zone's.)"""
    for kind, zone in zone_names(app, env, domain).items():
        if re.fullmatch(r"(?:[^.]+\.)?" + re.escape(zone), alias):
            return kind
    return None


def allowed_patterns(app: str, env: str, domain: str) -> str:
    """Copilot's list (errInvalidAlias.RecommmendActions)."""
    return ", ".join([f"<name>.{env}.{app}.{domain}", f"{env}.{app}.{domain}", f"<name>.{app}.{domain}",
                      f"{app}.{domain}", f"<name>.{domain}", domain])


def alias_entries(alias) -> list[tuple[str, str | None]]:
    """[(name, hosted_zone | None)] of any manifest alias form (a string, a list of strings or mappings)."""
    if not alias:
        return []
    if isinstance(alias, str):
        return [(alias, None)]
    return [(a, None) if isinstance(a, str) else (a["name"], a.get("hosted_zone")) for a in alias]


def http_rules(data: dict) -> list[tuple[tuple, dict]]:
    """[(manifest path of the rule, rule)]: `http` and each `http.additional_rules[i]`."""
    http = data.get("http")
    if not isinstance(http, dict):
        return []
    return [(("http",), http)] + [(("http", "additional_rules", i), r)
                                  for i, r in enumerate(http.get("additional_rules") or [])]


def rule_hosted_zone(data: dict, rule: dict) -> str | None:
    """A rule's `hosted_zone`; additional rules inherit `http.hosted_zone` (as templates.alb renders them)."""
    return rule.get("hosted_zone") or (data.get("http") or {}).get("hosted_zone")


def public_certificates(env_data: dict) -> list:
    return list(((env_data.get("http") or {}).get("public") or {}).get("certificates") or [])


def has_imported_certs(env_data: dict) -> bool:
    """Copilot's hasImportedCerts: the public ALB's certificates or the CDN's."""
    cdn = env_data.get("cdn")
    return bool(public_certificates(env_data) or (isinstance(cdn, dict) and cdn.get("certificate")))


def check_workload(m: Manifest, env_data: dict, app: str, domain: str | None) -> None:
    """A Load Balanced Web Service's aliases and HTTPS redirect against the app domain and the env's
    imported certificates, as Copilot checks them before a deploy. Errors name file, field and line."""
    if m.type != LBWS:
        return
    certs = has_imported_certs(env_data)
    env = m.env
    for path, rule in http_rules(m.data) if m.data.get("http") is not False else []:
        if rule.get("redirect_to_https") is not None and not domain and not certs:
            m.fail(path + ("redirect_to_https",), f"cannot configure http to https redirect without having a domain "
                   f"associated with the app \"{app}\" or importing any certificates in env \"{env}\"",
                   allowed="application: {domain: ...} in copilot-doit.yml, or http.public.certificates in the "
                           "environment manifest")
        entries = alias_entries(rule.get("alias"))
        if not entries:
            continue
        zone = rule_hosted_zone(m.data, rule)
        zones = [z for _, z in entries if z] + ([zone] if zone else [])
        if zones and not certs:
            m.fail(path + ("alias",) if any(z for _, z in entries) else
                   path + ("hosted_zone",) if rule.get("hosted_zone") else ("http", "hosted_zone"),
                   f"cannot specify alias hosted zones {zones} when no certificates are imported in environment "
                   f"\"{env}\"", allowed="http.public.certificates in the environment manifest, or aliases in the "
                                         "hosted zones of the application domain without hosted_zone")
        if certs:
            continue  # the imported certificates decide (Copilot checks them against ACM)
        if not domain:
            m.fail(path + ("alias",), f"cannot specify \"alias\" when application is not associated with a domain "
                   f"and env {env} doesn't import one or more certificates",
                   allowed="application: {domain: example.com} in copilot-doit.yml (Copilot: copilot app init "
                           "--domain example.com), or http.public.certificates in the environment manifest")
        _check_names(m, path + ("alias",), entries, app, env, domain)
    nlb = m.data.get("nlb")
    entries = alias_entries(nlb.get("alias")) if isinstance(nlb, dict) else []
    if entries:
        where = ("nlb", "alias")
        if public_certificates(env_data):
            m.fail(where, f"cannot specify nlb.alias when env {env} imports one or more certificates")
        if not domain:
            m.fail(where, "cannot specify nlb.alias when application is not associated with a domain",
                   allowed="application: {domain: example.com} in copilot-doit.yml (Copilot: copilot app init "
                           "--domain example.com)")
        _check_names(m, where, entries, app, env, domain)


def wants_domain(m: Manifest) -> bool:
    """Whether `check_workload` would look at the application domain for this manifest (an alias or an
    HTTPS redirect of a Load Balanced Web Service): only then must the session find the domain before
    anything runs (`app_domain`, which may read Copilot's SSM entry)."""
    if m.type != LBWS:
        return False
    nlb = m.data.get("nlb")
    rules = http_rules(m.data) if m.data.get("http") is not False else []
    return (any(r.get("alias") or r.get("redirect_to_https") is not None for _, r in rules)
            or bool(isinstance(nlb, dict) and nlb.get("alias")))


def _check_names(m: Manifest, path: tuple, entries: list, app: str, env: str, domain: str) -> None:
    written = m.data
    for p in path:  # the alias as written: a list points at its item's line
        written = written.get(p) if isinstance(written, dict) else written[p]
    for i, (name, _) in enumerate(entries):
        if zone_of(name, app, env, domain) is None:
            m.fail(path + (i,) if isinstance(written, list) else path,
                   f"alias \"{name}\" is not supported in hosted zones managed by Copilot",
                   allowed=allowed_patterns(app, env, domain))


def lbws_aliases(manifests: list[Manifest]) -> list[str]:
    """Every `http` alias of the Load Balanced Web Services (main rule and additional rules), in order,
    once each: the names the env stack certifies and points at its public load balancer (Copilot's env
    `Aliases` parameter). Aliases in a hosted zone of the user's (`hosted_zone`) are the service's own."""
    out: list[str] = []
    for m in manifests:
        if m.type != LBWS:
            continue
        for path, rule in http_rules(m.data):
            if rule_hosted_zone(m.data, rule):
                continue
            for name, zone in alias_entries(rule.get("alias")):
                if zone is None and name not in out:
                    out.append(name)
    return out


def nlb_aliases(manifests: list[Manifest]) -> list[str]:
    """Every `nlb.alias` of the Load Balanced Web Services (their records live in the workload stack)."""
    out: list[str] = []
    for m in manifests:
        nlb = m.data.get("nlb") if m.type == LBWS else None
        for name, _ in alias_entries(nlb.get("alias")) if isinstance(nlb, dict) else []:
            if name not in out:
                out.append(name)
    return out


# Copilot applications found in SSM, by "<account>/<region>/<app>" -> {"domain": ... ("" for none), "account":
# the application's account}, under the cache root. Copilot fixes an application's domain when it creates it
# (`app init --domain` on an existing application with another domain is an error), so a found answer holds
# for the application's life; an absent application is not remembered (it may be created later) and is
# asked again next run.
APP_DOMAINS = "copilot-app-domains.json"


def app_domain(s, env: str) -> str | None:
    """The application domain `env` renders with: `application.domain` of copilot-doit.yml, else the
    domain of Copilot's application in SSM (`/copilot/applications/<app>`, `copilot app init --domain`)
    when the environment's target has Copilot's registry (real AWS; the local target has none and reads
    nothing). Once per run and environment; a found application is remembered in the cache folder, so
    a no-op costs no SSM call after the first run (only an app not in SSM is asked again: one
    GetParameter per environment and run)."""
    if s.ws.domain:
        return s.ws.domain
    return s.once(("copilot-app-domain", env), lambda: _registry_domain(s, env))


def _registry_domain(s, env: str) -> str | None:
    import json
    target = s.target(env)  # the local target: a constant account, no entry, copilot_app() None: no boto3
    account = target.account_id()
    where = f"{account}/{target.settings.region}/{s.ws.app}"
    path = s.cache_root / APP_DOMAINS
    try:
        known = json.loads(path.read_text()).get("apps") or {}
    except (OSError, ValueError, AttributeError):
        known = {}
    entry = known.get(where)
    if not (isinstance(entry, dict) and isinstance(entry.get("domain"), str)):
        app = target.copilot_app(s.ws.app)
        if app is None:
            return None
        from .cache import atomic_write
        entry = known[where] = {"domain": app.domain, "account": app.account}
        atomic_write(path, json.dumps({"version": 1, "apps": dict(sorted(known.items()))}, indent=1).encode())
    if entry["domain"] and entry.get("account") not in (None, "", account):
        # The zones <app>.<domain> and <domain> live in the application's account; copilot-doit renders
        # the domain's parts with the environment's credentials only (Copilot goes through its
        # AppDNSDelegationRole): leave them out rather than fail on a zone lookup in the wrong account.
        import sys
        print(f"warning: application {s.ws.app}'s domain {entry['domain']} (Copilot's SSM store) belongs to "
              f"account {entry['account']}, environment {env} is in {account}: copilot-doit renders the domain's "
              "parts only in the account that holds its zones; deploying without them", file=sys.stderr)
        return None
    return entry["domain"] or None


def facts(s, env: str, start: bool = True) -> dict | None:
    """The application domain as the stacks of `env` render it, or None without one (`s`: the run's
    Session): the domain, the aliases of the workspace's Load Balanced Web Services (all of them, not only
    the selected ones, as the env stage's `needs`) that the env certifies and points at its load balancer,
    and the ids of the zones outside the env stack it writes in (`<app>.<domain>`, and `<domain>` when an
    alias lives there), looked up once per run (`Target.hosted_zone_id`; `start=False` starts nothing).
    Part of the env stack's key (and so of every workload's package key). The domain: `app_domain`."""
    from .errors import UserError
    from .manifest import load_workload
    domain = app_domain(s, env)
    if not domain:
        return None
    manifests = []
    for name in s.ws.workloads:
        try:
            manifests.append(s.manifests.get((name, env)) or load_workload(s.ws.manifest_path(name), s.ws.app, env,
                                                                            name))
        except UserError:
            continue  # its own deploy reports it (and the env stage's `needs` warns)
    aliases = [] if has_imported_certs(s.env_manifests[env].data) else lbws_aliases(manifests)
    names = zone_names(s.ws.app, env, domain)
    wanted = [APP] + ([ROOT] if any(zone_of(a, s.ws.app, env, domain) == ROOT
                                    for a in aliases + nlb_aliases(manifests)) else [])
    target = s.target(env)
    zone_ids = {kind: s.memo(("hosted-zone", env, names[kind]),
                             lambda kind=kind: target.hosted_zone_id(names[kind], start)) for kind in wanted}
    return {"name": domain, "aliases": aliases, "zone_ids": zone_ids}
