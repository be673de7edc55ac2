"""Builds as Copilot runs them (issue #9): BuildKit through the Docker CLI in the deploy pipeline, one
sentence for a Dockerfile the engine's frontend cannot read, and git tags in a real repository whose
cache folder keeps itself out of git."""
from __future__ import annotations

import subprocess

import pytest

from conftest import marks

pytestmark = pytest.mark.e2e


def test_buildkit_features_build_push_and_deploy(workspace):
    """The sample frontend is a multi-stage build (`COPY --from`) with a `RUN --mount=type=cache`."""
    ws = workspace
    dockerfile = (ws.manifests / "frontend" / "src" / "Dockerfile").read_text()
    assert "RUN --mount=type=cache" in dockerfile and "COPY --from=tools" in dockerfile
    out = ws.run("deploy", "name=frontend", "env=test").stdout
    assert marks(out)["build:frontend@test"] == "." and marks(out)["deploy:frontend@test"] == ".", out
    assert "[tools" in out, out            # BuildKit's plain progress names the stage of each step
    again = ws.run("deploy", "name=frontend", "env=test").stdout
    assert marks(again)["build:frontend@test"] == "--", again


def test_heredoc_dockerfile_fails_with_one_sentence(workspace):
    ws = workspace
    dockerfile = ws.manifests / "api" / "src" / "Dockerfile"
    lines = dockerfile.read_text().splitlines()
    lines.insert(3, "RUN <<EOF\necho hi > /hello\nEOF")
    dockerfile.write_text("\n".join(lines) + "\n")
    p = ws.run("deploy", "name=api", "env=test", check=False)
    assert p.returncode != 0
    errors = [line for line in p.stdout.splitlines() if line.startswith("ERROR: build:api@test")]
    assert len(errors) == 1, p.stdout
    assert "Dockerfile:4: heredocs (RUN <<EOF) need a newer Dockerfile frontend" in errors[0], errors
    assert "Traceback" not in p.stdout + p.stderr
    assert not any(s["StackName"] == f"{ws.app}-test-api" for s in ws.stacks())


def _git(ws, *args) -> str:
    return subprocess.run(["git", *args], cwd=ws.root, capture_output=True, text=True, check=True).stdout


def test_fresh_repository_stays_clean_and_images_get_the_git_tag(workspace):
    """No `/cache/` line in the repository's .gitignore: the cache folder ignores itself."""
    ws = workspace
    (ws.root / ".gitignore").write_text("busybox\napi.jsonl\n")
    ws.commit("no cache line")
    assert _git(ws, "status", "--porcelain") == ""
    ws.run("deploy", "name=frontend", "env=test")
    assert (ws.root / "cache" / ".gitignore").read_text().strip().endswith("*")
    assert _git(ws, "status", "--porcelain") == "", _git(ws, "status", "--porcelain")
    sha = _git(ws, "describe", "--always").strip()
    tags = ws.client("ecr").describe_images(repositoryName=f"{ws.app}/frontend")["imageDetails"]
    assert any(sha in (d.get("imageTags") or []) for d in tags), (sha, tags)
    ws.run("deploy", "name=frontend", "env=test")
    assert _git(ws, "status", "--porcelain") == ""
