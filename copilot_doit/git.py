"""The image tag from git, as Copilot does it (research/copilot.md §1.3).

`git describe --always` (an annotated tag description, else the abbreviated sha) when the worktree is
clean; a dirty worktree (untracked files included) or no repository gives no tag at all.

pygit2 costs ~55 ms to import plus a status scan; the git command (two short processes) answers first
when it is installed, pygit2 only when it cannot. And a tag that is already on the image
needs no answer about dirtiness: clean, it is wanted and present; dirty, nothing is wanted. So the
describe result is remembered per `head_signature()` (HEAD's sha and the tag refs, read from plain
files), and pygit2 runs only when that tag is not yet on the image.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


class Describing:
    """Copilot's two questions to the git command (`git status --porcelain`, `git describe --always`),
    asked at once in two processes that run while the caller goes on; `result()` waits for the answers.
    Started as a build starts (start_run_tag) the answer is ready by the time the push after it
    needs its tag. Only the process that started them collects them: a forked worker asks again."""

    def __init__(self, path: Path):
        import shutil
        import subprocess
        self.pid = os.getpid()
        self._procs = None
        exe = shutil.which("git")
        if exe is None:
            return
        # The repository is found from `path` as pygit2 finds it, whatever the caller's GIT_DIR says.
        env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
        started = []
        try:
            for argv in ([exe, "--no-optional-locks", "status", "--porcelain", "--untracked-files=normal"],
                         [exe, "describe", "--always", "--abbrev=7", "HEAD"]):
                started.append(subprocess.Popen(argv, cwd=path, env=env, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        except OSError:
            for proc in started:
                proc.kill()
                proc.communicate()
            return
        self._procs = started

    def result(self) -> tuple[str | None, bool] | None:
        """(describe, dirty), or None when the command cannot answer (no git, not a repository, no commit
        yet, a refused repository, another process's handle): then pygit2 decides."""
        import subprocess
        procs, self._procs = self._procs, None
        if procs is None or self.pid != os.getpid():
            return None
        outs = []
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                    p.communicate()
                return None
            outs.append((proc.returncode, out))
        (status_rc, status), (text_rc, text) = outs
        if status_rc != 0 or text_rc != 0:
            return None
        return (text.decode("utf-8", "replace").strip() or None), bool(status.strip())


def _describe_cli(path: Path) -> tuple[str | None, bool] | None:
    """(describe, dirty) through the git command, as Copilot itself asks: two short processes instead of
    pygit2's import and scan (~60-100 ms of a run in a dirty worktree). None when the command cannot
    answer: then pygit2 decides, as before."""
    return Describing(path).result()


def describe(path: Path, started: Describing | None = None) -> tuple[str | None, bool]:
    """(describe of HEAD or None without a repository/commit, worktree dirty) — via the git command (the
    answer of `started` when given), else pygit2."""
    mine = started is not None and started.pid == os.getpid()
    found = started.result() if mine else _describe_cli(path)
    if found is not None and found[0] is not None:
        return found
    import pygit2
    found = pygit2.discover_repository(str(path))
    if not found:
        return None, False
    repo = pygit2.Repository(found)
    if repo.head_is_unborn:
        return None, False
    dirty = bool(repo.status(untracked_files="normal", ignored=False))
    try:
        text = repo.describe("HEAD", show_commit_oid_as_fallback=True, abbreviated_size=7)
    except (pygit2.GitError, KeyError):
        text = str(repo.head.target)[:7]
    return text, dirty


def describe_tag(path: Path) -> str | None:
    text, dirty = describe(path)
    return None if dirty else text


def _git_dir(start: Path) -> Path | None:
    cur = start.resolve()
    while True:
        dot = cur / ".git"
        if dot.is_dir():
            return dot
        if dot.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot.read_text().strip()
            if text.startswith("gitdir:"):
                return (cur / text.split(":", 1)[1].strip()).resolve()
            return None
        if cur.parent == cur:
            return None
        cur = cur.parent


def head_signature(start: Path) -> str | None:
    """HEAD's commit and the state of the tag refs, from plain file reads (no pygit2), or None when the
    layout is not one this reader knows (then the caller asks pygit2)."""
    try:
        gd = _git_dir(start)
        if gd is None:
            return None
        common = gd
        if (gd / "commondir").is_file():  # linked worktree: refs live in the main repository
            common = (gd / (gd / "commondir").read_text().strip()).resolve()
        head = (gd / "HEAD").read_text().strip()
        if head.startswith("ref:"):
            ref = head.split(":", 1)[1].strip()
            ref_file = common / ref
            if ref_file.is_file():
                sha = ref_file.read_text().strip()
            else:
                sha = next((line.split()[0] for line in (common / "packed-refs").read_text().splitlines()
                            if line.endswith(" " + ref)), None)
        else:
            sha = head
        if not sha or len(sha) < 40:
            return None
        stamps = []
        for p in (common / "packed-refs", common / "refs" / "tags"):
            try:
                st = os.stat(p)
                stamps.append(f"{st.st_mtime_ns}:{st.st_size}")
            except FileNotFoundError:
                stamps.append("-")
        return f"{sha}|{'|'.join(stamps)}"
    except (OSError, StopIteration, ValueError):
        return None


class DescribeMemo:
    """head signature -> describe text, in a small JSON file of the cache (written atomically)."""

    def __init__(self, path: Path):
        self.path = path

    def get(self, signature: str | None) -> str | None:
        if signature is None:
            return None
        try:
            return json.loads(self.path.read_text()).get(signature)
        except (OSError, ValueError):
            return None

    def put(self, signature: str | None, text: str | None) -> None:
        if signature is None or text is None:
            return
        from .cache import atomic_write
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get(signature) == text:
            return
        data = dict(list(data.items())[-50:])  # keep it small: recent commits only
        data[signature] = text
        atomic_write(self.path, json.dumps(data, sort_keys=True).encode())


def run_tag(s, already: set | frozenset = frozenset()) -> str | None:
    """The tag of a run's images (`s`: the run's Session): `tag=`, else the git describe of a clean worktree
    (Copilot). When the describe text of this HEAD is remembered and already among `already` (the tags on
    the image), dirty or clean makes no difference to what must be done, so git is not asked at all."""
    if s.opts.tag:
        return s.opts.tag

    def remembered():  # HEAD and the memo file are read once per run, not per workload and environment
        memo = DescribeMemo(s.cache_root / "git-describe.json")
        signature = head_signature(s.ws.root)
        return memo, signature, memo.get(signature)
    memo, signature, known = s.once("git-head", remembered)
    if "git-tag" not in s.facts and known is not None and known in already:
        return known

    def ask():
        text, dirty = describe(s.ws.root, s.facts.pop("git-describing", None))
        memo.put(signature, text)
        return None if dirty else text
    return s.once("git-tag", ask)


def start_run_tag(s) -> None:
    """Start asking git for `run_tag` in the background, once per run: called by a build as it starts
    (stages/build.py's run), so the answer is in when that image's push asks for it (~35 ms of two git
    processes in a 10,000-file worktree, spent beside the build). Not by the checks: a plan or a deploy of
    up-to-date images needs no tag, and during the checks the two processes took CPU from them (issue #12's
    P3)."""
    if s.opts.tag or "git-tag" in s.facts or "git-describing" in s.facts:
        return
    # Held by run_tag while it asks (and takes what was started): then there is nothing to start. Parallel
    # builds (-j N) may each get here: one starts it.
    asking = s.once_lock("git-tag")
    if not asking.acquire(blocking=False):
        return
    try:
        if "git-tag" not in s.facts and "git-describing" not in s.facts:
            s.facts["git-describing"] = Describing(s.ws.root)
    finally:
        asking.release()
