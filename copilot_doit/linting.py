"""cfn-lint on a rendered template, in-process, cached by template digest (the env and lint stages).

key:   template digest, cfn-lint version, regions. cfnlint (~1 s to import) is imported only here.
run:   lint the YAML text (so matches carry line numbers). Result: {"report", "errors", "warnings"};
       errors fail the stage with rule id, line and message; warnings are shown.
"""
from __future__ import annotations

import functools
import json
import os
import re
import signal
import threading

from pathlib import Path

from .cache import Cache
from .errors import StageFailed
from .hashing import Key

SALT = "lint/1"


@functools.lru_cache(maxsize=1)
def cfn_lint_version() -> str:
    """cfn-lint's version, read from its `version.py` without importing cfnlint (~1 s) or
    importlib.metadata (~25 ms of a no-op here: it scans every distribution's metadata)."""
    import importlib.util
    spec = importlib.util.find_spec("cfnlint")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", (Path(folder) / "version.py").read_text(),
                              re.MULTILINE)
        except OSError:
            continue
        if found:
            return found.group(1)
    import importlib.metadata
    return importlib.metadata.version("cfn-lint")


def key(template_digest: str, region: str) -> Key:
    return Key.of(SALT, {"template": template_digest, "cfn_lint": cfn_lint_version(), "regions": [region]})


# cfn-lint keeps module-level state (rule registry, caches) and is CPU-bound under the GIL: in this process
# one template is linted at a time. Parallel tasks (-j N) lint in worker processes instead (use_workers).
_LINT_LOCK = threading.Lock()
_POOL_LOCK = threading.Lock()
_workers = 0          # >1: lint in that many worker processes (set for parallel runs)
_pool = None


def use_workers(jobs: int) -> None:
    """Lint in up to `jobs` worker processes (at most one per CPU): cfn-lint holds the GIL for ~1 s per
    template, so threads lint one at a time while the machine's other cores wait (issue 12, P7)."""
    global _workers
    _workers = max(0, min(jobs, os.cpu_count() or 1))


def shutdown() -> None:
    """Stop the worker processes (the end of a run); without workers, nothing to do."""
    global _pool
    with _POOL_LOCK:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_init() -> None:
    # Ctrl-C is the main process's to handle (interrupt.py); a worker stops when the main process does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# What the fork server imports once, for every worker it forks: cfn-lint's modules (~1 s of imports a spawned
# worker paid on its own, each of them) and this module. Not `__main__` (the script that started the run).
WORKER_PRELOAD = ["copilot_doit.linting", "cfnlint.decode.decode", "cfnlint.config", "cfnlint.runner"]


def _worker_context():
    """Workers come from multiprocessing's fork server, not from this process: it runs threads (doit's
    workers, the checks) that a fork would copy mid-flight, locks held included. The server is a fresh,
    single-threaded process that imports cfn-lint once (WORKER_PRELOAD) and forks each worker from there,
    so the second worker does not import it again (a run with two workers: ~0.5 s less CPU, measured in
    the closing note of issue 12). `spawn` (each worker a fresh interpreter) where there is no fork server."""
    import multiprocessing
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)   # read when the server starts: the first pool of the process
    return context


def _get_pool():
    global _pool
    with _POOL_LOCK:
        if _pool is None:
            from concurrent.futures import ProcessPoolExecutor
            _pool = ProcessPoolExecutor(max_workers=_workers, mp_context=_worker_context(), initializer=_worker_init)
        return _pool


# A worker's answer to one template (queued behind the others' included): cfn-lint takes ~0.1-1 s per
# template; far past that the worker is stuck, and the run says so instead of waiting for ever.
WORKER_TIMEOUT = 600.0


def run(template_text: str, region: str) -> list[dict]:
    if _workers > 1:
        return _in_worker(template_text, region)
    with _LINT_LOCK:
        return lint_report(template_text, region)


def _forget(pool) -> None:
    """A pool found unusable is not handed out again: the next template starts new workers."""
    global _pool
    with _POOL_LOCK:
        if _pool is pool:
            _pool = None


def _in_worker(template_text: str, region: str) -> list[dict]:
    from concurrent.futures import TimeoutError as NoAnswer
    from concurrent.futures.process import BrokenProcessPool
    pool = _get_pool()
    future = pool.submit(lint_report, template_text, region)
    try:
        return future.result(timeout=WORKER_TIMEOUT)
    except BrokenProcessPool:
        _forget(pool)
        raise StageFailed("a cfn-lint worker process exited before it answered (killed, out of memory, or a "
                          "script that starts copilot-doit without `if __name__ == \"__main__\":`, which every "
                          "worker runs again as it starts)") from None
    except NoAnswer:
        _forget(pool)
        # Its workers stopped, not waited for: shutdown(wait=True) at the run's end would wait on the stuck one.
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise StageFailed(f"cfn-lint's worker process gave no answer within {WORKER_TIMEOUT:g} s") from None


@functools.lru_cache(maxsize=8)
def _runner(region: str):
    """cfn-lint's Runner for one region, made once per process. `cfnlint.api.lint` makes a new one per
    template, and making one loads every rule module again and the JSON schemas some rules read at
    construction: ~0.35 s of a ~0.5 s lint here. cfn-lint's own command line lints many templates with one
    Runner; its `validate_template` is what `api.lint` calls on the one it made."""
    from cfnlint.config import ConfigMixIn
    from cfnlint.runner import Runner
    return Runner(ConfigMixIn(regions=[region]))


def lint_report(template_text: str, region: str) -> list[dict]:
    """cfn-lint's matches as plain rows, sorted (what a worker process sends back): `cfnlint.api.lint`'s
    steps (decode, then the Runner's validation), with the Runner kept for the process's next template."""
    from cfnlint.decode.decode import decode_str  # lazy: 1 s of imports
    template, errors = decode_str(template_text)
    if errors:
        matches = errors
    elif template is None:
        matches = []
    else:
        matches = list(_runner(region).validate_template(template))
    # A decode error (text that does not parse) has no `path`.
    out = [{"rule": m.rule.id, "level": m.rule.severity, "line": m.linenumber, "column": m.columnnumber,
            "message": m.message, "path": [str(p) for p in (getattr(m, "path", None) or [])]} for m in matches]
    return sorted(out, key=lambda r: (r["line"] or 0, r["rule"], r["message"]))


def summary(report: list[dict]) -> dict:
    return {"errors": sum(r["level"] == "error" for r in report),
            "warnings": sum(r["level"] == "warning" for r in report)}


def format_report(report: list[dict], name: str) -> str:
    return "\n".join(f"  {name}:{r['line']}: {r['rule']} {r['level']}: {r['message']}" for r in report)


def to_bytes(report: list[dict]) -> bytes:
    return json.dumps(report, sort_keys=True).encode()


def lint_template(cache: Cache, body: str, region: str, name: str) -> dict:
    """Lint with the cache: a template linted once is never linted again (cfn-lint costs ~1 s).
    Prints the report; raises StageFailed on errors. Returns the summary record."""
    digest = cache.put_object(body.encode())
    k = key(digest, region)
    rec = cache.get_action("lint", k)
    if rec is None:
        report = run(body, region)
        result = {**summary(report), "report": cache.put_object(to_bytes(report))}
        cache.put_action("lint", k, result)
    else:
        result = rec["result"]
        report = json.loads(cache.get_object(result["report"]) or b"[]")
    if report:
        print(format_report(report, name))
    if result["errors"]:
        raise StageFailed(f"cfn-lint found {result['errors']} error(s) in {name}; nothing was deployed")
    return result
