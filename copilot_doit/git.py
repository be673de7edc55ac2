"""The image tag from git, as Copilot does it (research/copilot.md §1.3).

`git describe --always` (an annotated tag description, else the abbreviated sha) when the worktree is
clean; a dirty worktree (untracked files included) or no repository gives no tag at all.
"""
from __future__ import annotations

from pathlib import Path


def describe_tag(path: Path) -> str | None:
    import pygit2
    found = pygit2.discover_repository(str(path))
    if not found:
        return None
    repo = pygit2.Repository(found)
    if repo.head_is_unborn:
        return None
    if repo.status(untracked_files="normal", ignored=False):
        return None
    try:
        return repo.describe("HEAD", show_commit_oid_as_fallback=True, abbreviated_size=7)
    except (pygit2.GitError, KeyError):
        return str(repo.head.target)[:7]
