"""No-op deploy benchmark: copilot-doit against the naive script, side by side in one run.

    python3 bench/noop.py [--runs 10]

Setup: a copy of the sample workspace in a fresh git repo (own app name), deployed once to the local
target, so every later run is a no-op. Then, interleaved, N times each:

  doit-one     `python -m doit deploy name=frontend env=test`           (one workload, its env)
  doit-all     `python -m doit deploy`                                   (every workload x every env)
  naive-one    `docker build` + `docker push` + a `cloudformation deploy --no-fail-on-empty-changeset`
               equivalent (bench/naive_cfn_deploy.py: create change set, wait, "no changes" -> exit 0)

Wall time per run of the whole process, as a user sees it. Prints median / min / max and the ratio of
medians, and appends the table to bench/results.md with the machine and date.
"""
from __future__ import annotations

import argparse
import json
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


def sh(cmd, cwd, env, check=True):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def setup(base: Path) -> tuple[Path, dict, str]:
    root = base / "repo"
    shutil.copytree(REPO / "manifests", root / "manifests", ignore=shutil.ignore_patterns("busybox"))
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    (root / ".gitignore").write_text("/cache/\nbusybox\n")
    bb = shutil.which("busybox")
    for ctx in (root / "manifests").glob("*/src"):
        if "COPY busybox" in (ctx / "Dockerfile").read_text():
            shutil.copy(bb, ctx / "busybox")
    app = "b" + uuid.uuid4().hex[:8]
    (root / "manifests" / ".workspace").write_text(f"application: {app}\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # This machine sets PYTHONDONTWRITEBYTECODE=1, which makes every run re-compile every module (~60 ms
    # for copilot-doit alone). A user's machine keeps .pyc files: measure that, for both sides alike.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("COPILOT_DOIT_LOCAL_DIR", str(base / "local"))
    sh(["git", "init", "-q"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "bench"], root, env)
    sh([PY, "-m", "doit", "deploy", "env=all"], root, env)                  # first deploy: everything runs
    out = sh([PY, "-m", "doit", "deploy", "env=all"], root, env).stdout     # must now be a no-op
    assert all(line.startswith("--") for line in out.splitlines() if line[:2] in ("--", ". ")), out
    return root, env, app


def naive_setup(root: Path, env: dict, app: str) -> list[list[str]]:
    """The naive script's three commands, against the same local registry and moto server."""
    sys.path.insert(0, str(REPO))
    os.environ.update({k: v for k, v in env.items() if k.startswith("COPILOT_DOIT")})
    from copilot_doit.targets.local import services
    e = services.ensure_running(root / "cache")
    # The deployed (compat-adapted) template and parameters of the frontend stack, fetched once.
    import boto3
    cfn = boto3.client("cloudformation", endpoint_url=e.moto_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    stack = f"{app}-test-frontend"
    body = cfn.get_template(StackName=stack)["TemplateBody"]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in cfn.describe_stacks(StackName=stack)["Stacks"][0]["Parameters"]}
    tags = {t["Key"]: t["Value"] for t in cfn.describe_stacks(StackName=stack)["Stacks"][0]["Tags"]}
    work = root / "naive"
    work.mkdir()
    (work / "template.yml").write_text(body if isinstance(body, str) else json.dumps(body))
    (work / "params.json").write_text(json.dumps(params))
    (work / "tags.json").write_text(json.dumps(tags))
    image = f"{e.registry}/{app}/frontend:naive"
    ctx = root / "manifests" / "frontend" / "src"
    return [["docker", "build", "-q", "-t", image, str(ctx)],
            ["docker", "push", "-q", image],
            [PY, str(REPO / "bench" / "naive_cfn_deploy.py"), e.moto_url, stack, str(work / "template.yml"),
             str(work / "params.json"), str(work / "tags.json")]]


def timed(cmds: list[list[str]], cwd, env) -> float:
    t0 = time.perf_counter()
    for c in cmds:
        sh(c, cwd, env)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="copilot-doit-bench-") as tmp:
        base = Path(tmp)
        root, env, app = setup(base)
        naive = naive_setup(root, env, app)
        timed(naive, root, env)  # warm the naive path once too (first push uploads layers)
        cases = {
            "doit-one": [[PY, "-m", "doit", "deploy", "name=frontend", "env=test"]],
            "doit-all": [[PY, "-m", "doit", "deploy", "env=all"]],
            "naive-one": naive,
        }
        samples: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for name, cmds in cases.items():  # interleaved: machine noise hits all cases alike
                samples[name].append(timed(cmds, root, env))
        if "COPILOT_DOIT_LOCAL_DIR" not in os.environ or os.environ["COPILOT_DOIT_LOCAL_DIR"].startswith(tmp):
            from copilot_doit.targets.local import services
            services.stop(root / "cache")
    rows = []
    med = {k: statistics.median(v) for k, v in samples.items()}
    for k, v in samples.items():
        rows.append(f"| {k} | {len(v)} | {med[k] * 1000:.0f} | {min(v) * 1000:.0f} | {max(v) * 1000:.0f} |")
    ratio = med["naive-one"] / med["doit-one"]
    text = "\n".join([
        f"### no-op deploy, {time.strftime('%Y-%m-%d %H:%M')} — {platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "",
        "| case | runs | median ms | min ms | max ms |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"naive-one / doit-one (medians): **{ratio:.1f}x**; doit-all covers "
        f"{len(list((REPO / 'manifests').glob('*/manifest.yml'))) - 0} workloads x 2 environments.",
        "",
    ])
    print(text)
    with open(REPO / "bench" / "results.md", "a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
