"""The git tag: Copilot's rule via pygit2, and the plain-file HEAD signature that lets a no-op skip it."""
from __future__ import annotations

import subprocess

from copilot_doit import git


def sh(cwd, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_describe_rules_and_head_signature(tmp_path):
    assert git.describe(tmp_path) == (None, False) and git.head_signature(tmp_path) is None
    sh(tmp_path, "init", "-q")
    (tmp_path / "a").write_text("1")
    sh(tmp_path, "add", "-A")
    sh(tmp_path, "commit", "-qm", "one")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    text, dirty = git.describe(tmp_path)
    assert (text, dirty) == (sha[:7], False) and git.describe_tag(tmp_path) == sha[:7]
    sig1 = git.head_signature(tmp_path / "a")
    assert sig1.startswith(sha)
    (tmp_path / "untracked").write_text("x")                       # dirty: no tag at all (Copilot)
    assert git.describe_tag(tmp_path) is None
    assert git.head_signature(tmp_path) == sig1                     # the signature ignores the worktree
    sh(tmp_path, "tag", "-a", "v1.0", "-m", "release")               # a new tag changes describe ...
    assert git.describe(tmp_path)[0] == "v1.0"
    assert git.head_signature(tmp_path) != sig1                      # ... and the signature
    sh(tmp_path, "add", "-A")
    sh(tmp_path, "commit", "-qm", "two")
    assert git.head_signature(tmp_path).split("|")[0] != sha         # a new commit too
    sh(tmp_path, "pack-refs", "--all")                               # packed refs are read as well
    assert git.head_signature(tmp_path) is not None


def test_describe_memo(tmp_path):
    memo = git.DescribeMemo(tmp_path / "m.json")
    assert memo.get("sig") is None
    memo.put("sig", "abc1234")
    assert memo.get("sig") == "abc1234" and memo.get(None) is None


def test_a_describe_started_early_gives_the_same_answers(tmp_path, monkeypatch):
    """git.Describing starts Copilot's two git questions at once, in the background; its answer is the one
    describe() would give, and it is asked in the process that started it only (a forked worker asks again:
    the processes are not its children)."""
    assert git.Describing(tmp_path).result() is None                 # no repository: the command cannot say
    sh(tmp_path, "init", "-q")
    (tmp_path / "a").write_text("1")
    sh(tmp_path, "add", "-A")
    sh(tmp_path, "commit", "-qm", "one")
    started = git.Describing(tmp_path)
    (tmp_path / "later").write_text("x")     # dirtied after the start: the processes may or may not see it
    (tmp_path / "later").unlink()
    assert git.describe(tmp_path, started) == git.describe(tmp_path)
    (tmp_path / "untracked").write_text("x")
    assert git.describe(tmp_path, git.Describing(tmp_path)) == git.describe(tmp_path) and git.describe(tmp_path)[1]
    sh(tmp_path, "tag", "-a", "v2.0", "-m", "release")
    other = git.Describing(tmp_path)
    other.pid = -1                                                   # as a forked worker sees the parent's
    asked = []
    real = git._describe_cli
    monkeypatch.setattr(git, "_describe_cli", lambda path: asked.append(path) or real(path))
    assert git.describe(tmp_path, other) == ("v2.0", True) and asked == [tmp_path]
    assert other.result() is None                                     # never collected by another process
