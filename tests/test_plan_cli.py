"""`copilot-doit plan` for CI (issue #13 scope 3): exit 0 when nothing would change, 2 when something
would, 1 on error; `--format json` (stages, affected workloads, ordering edges) and `--format markdown`."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


def test_plan_exit_codes_and_formats(workspace):
    ws = workspace
    first = ws.run("plan", "-n", "worker", "-e", "test", "--format", "json", tool="cli", check=False)
    assert first.returncode == 2, first.stderr
    doc = json.loads(first.stdout)
    assert doc["changes"] is True and doc["environments"] == ["test"]
    assert ["env:test", "package:worker@test"] in doc["edges"]
    assert ws.mutating() == [], ws.mutating()                   # a plan changes nothing

    ws.run("deploy", "name=frontend,worker", "env=test")
    p = ws.run("plan", "-n", "frontend,worker", "-e", "test", tool="cli", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "skip  deploy:worker@test" in p.stdout

    manifest = ws.manifests / "worker" / "manifest.yml"
    manifest.write_text(manifest.read_text().replace("BATCH_SIZE: 10", "BATCH_SIZE: 20"))
    p = ws.run("plan", "-n", "frontend,worker", "-e", "test", "--format", "json", tool="cli", check=False)
    assert p.returncode == 2
    doc = json.loads(p.stdout)
    assert [a["name"] for a in doc["affected"]] == ["worker"]
    assert doc["affected"][0]["after"] == ["deploy:frontend@test"]    # the publisher of its topic
    md = ws.run("plan", "-n", "worker", "-e", "test", "--format", "markdown", tool="cli", check=False).stdout
    assert "| `deploy:worker@test` | **run** |" in md and "<details><summary><code>" in md and "BATCH_SIZE" in md

    bad = ws.run("plan", "-n", "nope", "-e", "test", tool="cli", check=False)
    assert bad.returncode == 1 and "no workload named 'nope'" in bad.stderr and "Traceback" not in bad.stderr
