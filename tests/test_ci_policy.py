"""CI=true turns a missing engine/registry/emulator into a failure; without CI it is a visible skip."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_e2e_without_engine(ci: str | None, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-such-docker.sock",
               COPILOT_DOIT_TEST_LOCAL_DIR=str(tmp_path / "local"))
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_e2e_deploy.py::test_first_deploy_then_noop"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_missing_engine_fails_under_ci(tmp_path):
    p = run_e2e_without_engine("true", tmp_path)
    assert p.returncode == 1, p.stdout
    assert "1 error" in p.stdout or "1 failed" in p.stdout, p.stdout
    assert "CI=true: a missing dependency is a failure" in p.stdout, p.stdout


def test_missing_engine_is_a_visible_skip_without_ci(tmp_path):
    p = run_e2e_without_engine(None, tmp_path)
    assert p.returncode == 0 and "1 skipped" in p.stdout, p.stdout
