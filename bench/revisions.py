"""No-op time of two revisions of copilot-doit, side by side in one run (for a refactor's before/after).

    python3 bench/revisions.py REV_A REV_B [--runs 10]

Each revision is checked out into its own worktree; each gets its own copy of the sample workspace, its
own cache and local target, and is deployed once. Then, interleaved (machine noise hits both alike),
`doit deploy name=frontend env=test` and `doit deploy env=test` are timed as a user runs them (a new
process each; .pyc kept). Prints median/min/max per case and the ratio of medians, and appends the table
to bench/results.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def sh(cmd, cwd, env):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def prepare(rev: str, base: Path) -> tuple[Path, dict]:
    """A worktree of `rev`, a workspace copy deployed once with it; (workspace root, env)."""
    tree = base / f"tree-{rev}"
    sh(["git", "worktree", "add", "--detach", "-f", str(tree), rev], REPO, dict(os.environ))
    root = base / f"ws-{rev}"
    shutil.copytree(tree / "manifests", root / "manifests", ignore=shutil.ignore_patterns("busybox"))
    shutil.copy(tree / "dodo.py", root / "dodo.py")
    (root / ".gitignore").write_text("/cache/\nbusybox\n")
    for ctx in (root / "manifests").glob("*/src"):
        if "COPY busybox" in (ctx / "Dockerfile").read_text():
            shutil.copy(shutil.which("busybox"), ctx / "busybox")
    (root / "manifests" / ".workspace").write_text(f"application: r{uuid.uuid4().hex[:8]}\n")
    env = dict(os.environ, PYTHONPATH=str(tree), COPILOT_DOIT_LOCAL_DIR=str(base / f"local-{rev}"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # a user's machine keeps .pyc files
    env.pop("COPILOT_DOIT_CACHE", None)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "b"]):
        sh(["git", *args], root, env)
    sh([PY, "-m", "doit", "deploy", "env=test"], root, env)
    out = sh([PY, "-m", "doit", "deploy", "env=test"], root, env).stdout
    assert all(line.startswith("--") for line in out.splitlines() if line[:2] in ("--", ". ")), out
    return root, env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("revs", nargs=2)
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="copilot-doit-revs-"))
    prepared = {rev: prepare(rev, base) for rev in a.revs}
    cases = {"one": ["name=frontend", "env=test"], "all": ["env=test"]}
    samples = {(rev, c): [] for rev in a.revs for c in cases}
    for _ in range(a.runs):
        for c, words in cases.items():
            for rev, (root, env) in prepared.items():
                t0 = time.perf_counter()
                sh([PY, "-m", "doit", "deploy", *words], root, env)
                samples[(rev, c)].append(time.perf_counter() - t0)
    for rev, (root, env) in prepared.items():
        stop = ("try:\n    from copilot_doit.targets.local import services\n"
                "except ImportError:  # revisions before the targets/ layout\n    from copilot_doit.local import services\n"
                "services.stop('x')")
        sh([PY, "-c", stop], root, env)
        sh(["git", "worktree", "remove", "--force", str(base / f"tree-{rev}")], REPO, dict(os.environ))
    shutil.rmtree(base, ignore_errors=True)
    rows = [f"| {c} | `{rev}` | {len(v)} | {statistics.median(v) * 1000:.0f} | {min(v) * 1000:.0f} | {max(v) * 1000:.0f} |"
            for (rev, c), v in samples.items()]
    ratios = [f"{c}: {a.revs[1]} / {a.revs[0]} = "
              f"{statistics.median(samples[(a.revs[1], c)]) / statistics.median(samples[(a.revs[0], c)]):.2f}"
              for c in cases]
    text = "\n".join([
        f"### no-op by revision, {time.strftime('%Y-%m-%d %H:%M')} — {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}", "",
        "`one` = `doit deploy name=frontend env=test`, `all` = `doit deploy env=test` (4 workloads), interleaved.", "",
        "| case | revision | runs | median ms | min ms | max ms |", "|---|---|---|---|---|---|", *rows, "",
        "Ratios of medians: " + "; ".join(ratios), ""])
    print(text)
    with open(REPO / "bench" / "results.md", "a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
