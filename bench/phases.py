"""Where a no-op's time goes, phase by phase, for one or more revisions side by side (interleaved).

    python3 bench/phases.py HEAD WORKTREE [--runs 15] [--case one|all]

Revisions are prepared as bench/revisions.py prepares them (a worktree or a folder, a deployed copy of
the sample workspace each). Each run is `doit deploy` in a new process, wrapped so that it notes the
clock at doit's own seams: after `import doit`, when the dodo file is about to be imported (doit's
argument and plugin handling before it), after the dodo import (copilot_doit's imports), after the task
creators (the session: workspace, manifests, the cache lock), then after each task's status check (the
stage's `uptodate`, plus doit's bookkeeping and the reporter line of the task before it), and at exit
(doit's dependency file, atexit). The interpreter's own start-up (before the first line of the wrapper)
is not in the table; `python3 -c pass` on the same machine is printed for it. Medians and minimums per
phase; the minimum is the steadier figure on a shared machine.
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import revisions  # noqa: E402  (bench/revisions.py: worktrees and deployed workspace copies)

WRAPPER = r'''
import atexit, os, sys, time
T = [("start", time.perf_counter())]
def mark(n): T.append((n, time.perf_counter()))
import doit.doit_cmd, doit.cmd_base, doit.dependency
mark("import doit")
_setup = doit.cmd_base.DodoTaskLoader.setup
def setup(self, opt_values):
    mark("doit args, plugins"); r = _setup(self, opt_values); mark("import dodo"); return r
doit.cmd_base.DodoTaskLoader.setup = setup
_load = doit.cmd_base.DodoTaskLoader.load_tasks
def load_tasks(self, *a, **k):
    r = _load(self, *a, **k); mark("task creators"); return r
doit.cmd_base.DodoTaskLoader.load_tasks = load_tasks
_status = doit.dependency.Dependency.get_status
def get_status(self, task, *a, **k):
    r = _status(self, task, *a, **k); mark("status " + task.name.split(":")[0]); return r
doit.dependency.Dependency.get_status = get_status
def report():
    mark("exit")
    agg = {}
    for (_, t0), (n, t) in zip(T, T[1:]):
        agg[n] = agg.get(n, 0.0) + (t - t0)
    with open(os.environ["PHASES_OUT"], "a") as f:
        f.write(repr(agg) + "\n")
atexit.register(report)
sys.exit(doit.doit_cmd.DoitMain(config_filenames=()).run(sys.argv[1:]))
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("revs", nargs="+")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--case", choices=("one", "all"), default="one")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="copilot-doit-phases-"))
    wrapper = base / "phases_wrapper.py"
    wrapper.write_text(WRAPPER)
    words = ["name=frontend", "env=test"] if a.case == "one" else ["env=test"]
    revs = [revisions.label(r) for r in a.revs]
    added, prepared = [], {}
    for rev in a.revs:
        tree, is_new = revisions.source_tree(rev, base)
        if is_new:
            added.append(tree)
        prepared[revisions.label(rev)] = revisions.prepare(rev, base, tree)
    out = {rev: base / f"phases-{rev}.txt" for rev in revs}
    start_up = []
    for i in range(a.runs):
        for rev in revs[i % len(revs):] + revs[:i % len(revs)]:
            root, env = prepared[rev]
            revisions.sh([revisions.PY, str(wrapper), "deploy", *words], root, dict(env, PHASES_OUT=str(out[rev])))
        t0 = time.perf_counter()
        subprocess.run([revisions.PY, "-c", "pass"], check=True)
        start_up.append(time.perf_counter() - t0)
    rows = {rev: [ast.literal_eval(line) for line in out[rev].read_text().splitlines()] for rev in revs}
    for rev in revs:
        root, env = prepared[rev]
        revisions.sh([revisions.PY, "-c", revisions.STOP_SERVICES], root, env)
    for tree in added:
        revisions.sh(["git", "worktree", "remove", "--force", str(tree)], revisions.REPO, dict(os.environ))
    shutil.rmtree(base, ignore_errors=True)
    phases = list(dict.fromkeys(k for rev in revs for r in rows[rev] for k in r))
    print(f"no-op phases, `doit deploy {' '.join(words)}`, {a.runs} interleaved runs per revision; "
          f"ms as median / min; `python3 -c pass` median {statistics.median(start_up) * 1000:.0f} ms "
          f"(not in the table); load average {os.getloadavg()[0]:.2f}\n")
    print("| phase | " + " | ".join(f"`{r}`" for r in revs) + " |")
    print("|---|" + "---|" * len(revs))
    for k in phases + ["total"]:
        cells = []
        for rev in revs:
            v = [sum(r.values()) if k == "total" else r.get(k, 0.0) for r in rows[rev]]
            cells.append(f"{statistics.median(v) * 1000:.1f} / {min(v) * 1000:.1f}")
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
