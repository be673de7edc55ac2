"""Template parity with Copilot's golden stacks (shared/copilot-fixtures/stack-golden).

Every golden case is rendered from its manifest and compared with Copilot's template: resource types
(how many of each), parameters, outputs and export names. Copilot's custom-resource machinery is removed
first (the `replaced` list of tests/parity_allowlist.yml says what stands in for each). Every other
difference must be an entry of the allowlist (case, kind, name, what differs, why); an unlisted
difference fails, and so does an entry that no longer matches anything (stale).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from copilot_doit import manifest
from copilot_doit.templates import env as env_t
from copilot_doit.templates import workload

REPO = Path(__file__).resolve().parents[1]
FIXTURES = next((p for p in (REPO.parent / "shared" / "copilot-fixtures", REPO / "../shared/copilot-fixtures")
                 if p.is_dir()), None)
ALLOWLIST = Path(__file__).resolve().parent / "parity_allowlist.yml"
IMPORTED_ALB = {"listener_arn": "arn:aws:elasticloadbalancing:us-west-2:1234567890:listener/app/demo/1/2",
                "https_listener_arn": "arn:aws:elasticloadbalancing:us-west-2:1234567890:listener/app/demo/1/3",
                "dns_name": "mockDNSName", "hosted_zone_id": "mockHostedZoneID", "full_name": "mockImportALBName",
                "security_groups": ["mockImportALBSG1", "mockImportALBSG2"]}


@dataclass(frozen=True)
class Case:
    name: str          # the golden template's file name, without .yml
    golden: str        # path under stack-golden/
    source: str        # the manifest, under copilot-fixtures/
    app: str
    env: str
    params: str = ""   # Copilot's parameters file (HTTPSEnabled tells whether the env had HTTPS)


def _cases() -> list[Case]:
    out = [Case(f"svc-{e}", f"workloads/svc-{e}.stack.yml", "stack-testdata/workloads/svc-manifest.yml", "my-app", e,
                "" if e == "staging" else f"stack-testdata/workloads/svc-{e}.params.json")
           for e in ("test", "staging", "prod")]
    out += [Case("job-test", "workloads/job-test.stack.yml", "stack-testdata/workloads/job-manifest.yml", "my-app", "test"),
            Case("worker-test", "workloads/worker-test.stack.yml", "stack-testdata/workloads/worker-manifest.yml",
                 "my-app", "test")]
    for c, (m, t, p) in {
        "http-autoscaling": ("http-autoscaling-manifest", "http-autoscaling-template", "http-autoscaling-params"),
        "http-full-config": ("http-full-config-manifest", "http-full-config-template", "http-full-config-params"),
        "http-only-path": ("http-only-path-manifest", "http-only-path-template", "http-only-path-params"),
        "https-path-alias": ("https-path-alias-manifest", "https-path-alias-template", "https-path-alias-params"),
        "simple": ("simple-manifest", "simple-template", "simple-params"),
        "simple-without-port-config": ("simple-manifest-without-port-config", "simple-template-without-port-config",
                                       "simple-params-without-port-config"),
    }.items():
        out.append(Case(f"backend/{c}", f"workloads/backend/{t}.yml", f"stack-golden/workloads/backend/{m}.yml",
                        "my-app", "my-env", f"stack-golden/workloads/backend/{p}.json"))
    for e in ("template-with-basic-manifest", "template-with-imported-certs-sslpolicy-custom-empty-security-group"):
        out.append(Case(f"env/{e}", f"environments/{e}.yml", f"stack-golden/environments/{e}.input.yml", "demo", "test"))
    return out


CASES = _cases()
# Copilot's env golden renders the application domain's parts under `Condition: DelegateDNS`: this case is
# rendered with a domain (and no aliases), so those parts are compared too.
ENV_DOMAINS = {"env/template-with-basic-manifest": {"domain": "example.com", "zone_ids": {"app": "Z0PARITYAPPZONE0000"}}}


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = "Ref" if suffix == "Ref" else "Condition" if suffix == "Condition" else "Fn::" + suffix
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def load_golden(case: Case) -> dict:
    return yaml.load((FIXTURES / "stack-golden" / case.golden).read_text(), Loader=_Loader)


def render_ours(case: Case, tmp: Path) -> dict:
    path = FIXTURES / case.source
    if case.name.startswith("env/"):
        data = yaml.safe_load(path.read_text()) or {}
        # Copilot ignores unknown top-level keys; copilot-doit rejects them (allowlisted as `input`).
        data.pop("security_group", None)
        p = tmp / "manifest.yml"
        p.write_text(yaml.safe_dump(data))
        em = manifest.load_environment(p, case.app, case.env)
        t, _ = env_t.render(case.app, case.env, em.data, public_alb=True, internal_alb=True, nat_gateways=True,
                            managed_efs=True, **ENV_DOMAINS.get(case.name, {}))
        return t
    https = False
    if case.params:
        https = json.loads((FIXTURES / case.params).read_text())["Parameters"].get("HTTPSEnabled") == "true"
    elif case.name == "svc-staging":
        https = True  # the same application (with a domain) as svc-test and svc-prod
    m = manifest.load_workload(path, case.app, case.env)
    t, _ = workload.render(workload.RenderInput(m, case.app, case.env, "img", https=https, imported_alb=IMPORTED_ALB))
    return t


def _export_name(out: dict):
    name = (out.get("Export") or {}).get("Name")
    if isinstance(name, dict):
        name = name.get("Fn::Sub", name)
    if isinstance(name, list):
        name = name[0]
    return name if isinstance(name, str) else json.dumps(name, sort_keys=True)


def facts(t: dict, replaced: set) -> dict:
    res = {k: v for k, v in (t.get("Resources") or {}).items() if k not in replaced}
    return {
        "resource": Counter(v["Type"] for v in res.values()),
        "parameter": set(t.get("Parameters") or {}),
        "output": set(t.get("Outputs") or {}),
        "export": {_export_name(o) for o in (t.get("Outputs") or {}).values() if o.get("Export")},
    }


def allowlist() -> dict:
    return yaml.safe_load(ALLOWLIST.read_text())


def diff(case: Case, tmp: Path | None = None) -> list[dict]:
    """Every difference of the case as an allowlist-shaped dict (without `why`)."""
    import tempfile
    al = allowlist()
    replaced = {r["logical_id"] for r in al["replaced"]}
    with tempfile.TemporaryDirectory() as d:
        ours = facts(render_ours(case, Path(tmp or d)), set())
    theirs = facts(load_golden(case), replaced)
    out = []
    for rtype in sorted(set(ours["resource"]) | set(theirs["resource"])):
        a, b = theirs["resource"][rtype], ours["resource"][rtype]
        if a != b:
            out.append({"case": case.name, "kind": "resource", "name": rtype, "copilot": a, "ours": b})
    for kind in ("parameter", "output", "export"):
        for name in sorted(theirs[kind] - ours[kind]):
            out.append({"case": case.name, "kind": kind, "name": name, "copilot": 1, "ours": 0})
        for name in sorted(ours[kind] - theirs[kind]):
            out.append({"case": case.name, "kind": kind, "name": name, "copilot": 0, "ours": 1})
    return out


def _key(d: dict) -> tuple:
    return d["kind"], d["name"], d["copilot"], d["ours"]


@pytest.fixture(autouse=True)
def _fixtures_present():
    if FIXTURES is None or not (FIXTURES / "stack-golden").is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("shared/copilot-fixtures/stack-golden is missing (CI=true: a failure, not a skip)")
        pytest.skip("shared/copilot-fixtures/stack-golden is not beside the repo")


def test_every_golden_case_is_covered():
    root = FIXTURES / "stack-golden"
    goldens = {str(p.relative_to(root)) for p in root.rglob("*.yml")
               if p.name.endswith(".stack.yml") or "-template" in p.name
               or (p.parent.name == "environments" and not p.name.endswith(".input.yml"))}
    assert goldens == {c.golden for c in CASES}


def test_allowlist_entries_are_reasoned():
    al = allowlist()
    for r in al["replaced"]:
        assert r.get("logical_id") and r.get("by"), r
    for e in al["differences"]:
        assert set(e) == {"case", "kind", "name", "copilot", "ours", "why"}, e
        assert e["why"].strip(), e


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_parity_with_copilot(case, tmp_path, monkeypatch):
    monkeypatch.setenv("TAG", "fixture-tag")
    got = diff(case, tmp_path)
    entries = [e for e in allowlist()["differences"] if e["case"] in (case.name, "*")
               or (e["case"].endswith("/*") and case.name.startswith(e["case"][:-1]))]
    allowed = {_key(e) for e in entries}
    unlisted = [d for d in got if _key(d) not in allowed]
    assert unlisted == [], "differences from Copilot not in tests/parity_allowlist.yml:\n" + yaml.safe_dump(unlisted)
    stale = [e for e in entries if e["case"] == case.name and _key(e) not in {_key(d) for d in got}]
    assert stale == [], "stale allowlist entries:\n" + yaml.safe_dump(stale)


def test_wildcard_entries_are_not_stale(monkeypatch):
    monkeypatch.setenv("TAG", "fixture-tag")
    seen = {(c.name, _key(d)) for c in CASES for d in diff(c)}
    for e in allowlist()["differences"]:
        if e["case"] == "*" or e["case"].endswith("/*"):
            prefix = "" if e["case"] == "*" else e["case"][:-1]
            assert any(n.startswith(prefix) and k == _key(e) for n, k in seen), ("stale", e)


def test_replaced_custom_resources_exist_in_copilot():
    """Each `replaced` logical id is really in some golden template (no stale replacement entries)."""
    ids = set()
    for c in CASES:
        ids |= set(load_golden(c).get("Resources") or {})
    for r in allowlist()["replaced"]:
        assert r["logical_id"] in ids, r


DIFFERENCES_MD = Path(__file__).resolve().parent / "parity_differences.md"


def test_differences_page_is_written(monkeypatch):
    """tests/parity_differences.md: the README's "Differences from Copilot" generated from the allowlist,
    with the share of Copilot's resources (custom resources aside) that copilot-doit renders."""
    monkeypatch.setenv("TAG", "fixture-tag")
    al = allowlist()
    replaced = {r["logical_id"] for r in al["replaced"]}
    total = matched = 0
    for c in CASES:
        theirs = facts(load_golden(c), replaced)["resource"]
        with __import__("tempfile").TemporaryDirectory() as d:
            ours = facts(render_ours(c, Path(d)), set())["resource"]
        total += sum(theirs.values())
        matched += sum(min(n, ours[t]) for t, n in theirs.items())
    lines = [f"Copilot's golden stacks ({len(CASES)} cases): copilot-doit renders {matched} of {total} of Copilot's "
             f"resources by type ({100 * matched // total} %), custom resources aside.", "",
             "Custom resources replaced by plain CloudFormation:", ""]
    by = {}
    for r in al["replaced"]:
        if not r["by"].startswith("see "):
            by[r["logical_id"]] = r["by"]
    for lid, text in by.items():
        others = [r["logical_id"] for r in al["replaced"] if r["by"] == f"see {lid}"]
        lines.append(f"- `{lid}`" + (f" (+ {', '.join(f'`{o}`' for o in others)})" if others else "") + f": {text}")
    lines += ["", "Other differences (case: kind `name`, Copilot has / copilot-doit has: why):", ""]
    for e in al["differences"]:
        lines.append(f"- {e['case']}: {e['kind']} `{e['name']}` {e['copilot']}/{e['ours']}: {e['why']}")
    text = "\n".join(lines) + "\n"
    DIFFERENCES_MD.write_text(text)
    assert DIFFERENCES_MD.read_text() == text
