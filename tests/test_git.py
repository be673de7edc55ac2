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
