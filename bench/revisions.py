"""No-op time of two (or more) revisions of copilot-doit, side by side in one run (a change's before/after).

    python3 bench/revisions.py REV_A REV_B [REV_C ...] [--runs 10] [--no-append]
    python3 bench/revisions.py HEAD WORKTREE          # HEAD against the uncommitted working tree

Each revision is checked out into its own worktree (`WORKTREE`, or any folder holding `copilot_doit/` and
`dodo.py`, is used as it is); each gets its own copy of the sample workspace, its own cache and local
target, and is deployed once. Then, interleaved (machine noise hits all alike, in a rotating order),
`doit deploy name=frontend env=test` and `doit deploy env=test` are timed as a user runs them (a new
process each; .pyc kept; the workspace is a clean git repository, as a user's after a commit). Prints
median/min/max wall time per case, the median CPU time (user + sys of the process, steadier than wall
time on a shared machine) and the ratio of medians, and appends the table to bench/results.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
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


STOP_SERVICES = ("try:\n    from copilot_doit.targets.local import services\n"
                 "except ImportError:  # revisions before the targets/ layout\n    from copilot_doit.local import services\n"
                 "services.stop('x')")


def sh(cmd, cwd, env):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def label(rev: str) -> str:
    return Path(rev).name if os.sep in rev else rev


def source_tree(rev: str, base: Path) -> tuple[Path, bool]:
    """(folder holding copilot_doit/ and dodo.py, whether it is a worktree this script added)."""
    if rev == "WORKTREE":
        return REPO, False
    if os.path.isdir(rev) and (Path(rev) / "copilot_doit").is_dir():
        return Path(rev).resolve(), False
    tree = base / f"tree-{rev}"
    sh(["git", "worktree", "add", "--detach", "-f", str(tree), rev], REPO, dict(os.environ))
    return tree, True


def prepare(rev: str, base: Path, tree: Path) -> tuple[Path, dict]:
    """A workspace copy deployed once with the source in `tree`; (workspace root, env)."""
    rev = label(rev)
    root = base / f"ws-{rev}"
    shutil.copytree(tree / "manifests", root / "manifests", ignore=shutil.ignore_patterns("busybox"))
    shutil.copy(tree / "dodo.py", root / "dodo.py")
    # __pycache__/: doit writes dodo.py's bytecode there; unignored it makes the worktree dirty, and a
    # dirty worktree costs every run a pygit2 import and status scan (git.run_tag)
    (root / ".gitignore").write_text("/cache/\nbusybox\n__pycache__/\n")
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


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("revs", nargs="+", help="commits, WORKTREE, or folders holding copilot_doit/ and dodo.py")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--no-append", action="store_true", help="print the table only")
    a = ap.parse_args()
    if len(a.revs) < 2:
        ap.error("give at least two revisions")
    base = Path(tempfile.mkdtemp(prefix="copilot-doit-revs-"))
    revs = [label(r) for r in a.revs]
    if len(set(revs)) != len(revs):
        ap.error("two revisions with the same name")
    added, prepared = [], {}
    for rev in a.revs:
        tree, is_new = source_tree(rev, base)
        if is_new:
            added.append(tree)
        prepared[label(rev)] = prepare(rev, base, tree)
    cases = {"one": ["name=frontend", "env=test"], "all": ["env=test"]}
    samples = {(rev, c): [] for rev in revs for c in cases}
    cpu = {(rev, c): [] for rev in revs for c in cases}
    started = time.time()
    for i in range(a.runs):
        order = revs[i % len(revs):] + revs[:i % len(revs)]  # who goes first rotates
        for c, words in cases.items():
            for rev in order:
                root, env = prepared[rev]
                c0, t0 = children_cpu(), time.perf_counter()
                sh([PY, "-m", "doit", "deploy", *words], root, env)
                samples[(rev, c)].append(time.perf_counter() - t0)
                cpu[(rev, c)].append(children_cpu() - c0)
    took = time.time() - started
    load = os.getloadavg()[0]
    for rev in revs:
        root, env = prepared[rev]
        sh([PY, "-c", STOP_SERVICES], root, env)
    for tree in added:
        sh(["git", "worktree", "remove", "--force", str(tree)], REPO, dict(os.environ))
    shutil.rmtree(base, ignore_errors=True)
    rows = [f"| {c} | `{rev}` | {len(v)} | {statistics.median(v) * 1000:.0f} | {min(v) * 1000:.0f} | "
            f"{max(v) * 1000:.0f} | {statistics.median(cpu[(rev, c)]) * 1000:.0f} |"
            for c in cases for rev in revs for v in [samples[(rev, c)]]]
    ratios = [f"{c}: {rev} / {revs[0]} = "
              f"{statistics.median(samples[(rev, c)]) / statistics.median(samples[(revs[0], c)]):.2f} "
              f"(CPU {statistics.median(cpu[(rev, c)]) / statistics.median(cpu[(revs[0], c)]):.2f})"
              for c in cases for rev in revs[1:]]
    text = "\n".join([
        f"### no-op by revision, {time.strftime('%Y-%m-%d %H:%M')} — {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}", "",
        "`one` = `doit deploy name=frontend env=test`, `all` = `doit deploy env=test` (4 workloads), interleaved "
        f"(`python3 bench/revisions.py {' '.join(a.revs)} --runs {a.runs}`; took {took / 60:.1f} min, load average "
        f"at the end {load:.2f}).", "",
        "| case | revision | runs | median ms | min ms | max ms | median CPU ms |", "|---|---|---|---|---|---|---|",
        *rows, "",
        "Ratios of medians: " + "; ".join(ratios), ""])
    print(text)
    if not a.no_append:
        with open(REPO / "bench" / "results.md", "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
