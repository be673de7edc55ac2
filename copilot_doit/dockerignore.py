"""`.dockerignore` as the engine applies it: what a `docker build` of a context really sends.

Written from moby's Go sources, at the versions the product's build path runs: the Docker CLI 20.10
(`DOCKER_BUILDKIT=1 docker build`, `copilot_doit.docker_build.find_builder()`) streams the context to
BuildKit through its vendored `tonistiigi/fsutil` walker, which filters with
`github.com/docker/docker/pkg/fileutils.PatternMatcher` (the code now in `moby/patternmatcher`); the
patterns are read by `builder/dockerignore.ReadAll`. The facts used here:

Reading (`ReadAll`): lines split on `\\n` (a trailing `\\r` dropped), a UTF-8 BOM dropped from the first
line; a line *starting* with `#` is a comment (before trimming: ` #x` is the pattern `#x`); then Go's
`TrimSpace`; blank lines skipped; `!` then optional spaces marks an exception; the rest goes through Go's
`filepath.Clean` and loses one leading `/`.

Matching (`PatternMatcher`): each pattern is `Clean`ed again, checked with Go's `filepath.Match` syntax
(a malformed class or a trailing `\\` fails the build), and compiled to a regexp anchored at both ends:
`*` = `[^/]*`, `?` = `[^/]`, `**` (with the `/` after it eaten) = `(.*/)?`, or `.*` at the end;
`.+()|{}$` are escaped, `\\x` escapes `x`, everything else — `[`, `]`, `^` included — goes to the regexp
as written, so `[a-c]` and `[^a]` are regexp classes (RE2 syntax; `[!a]` means `!` or `a`). A path is
excluded when the last pattern that matches it (or, for a pattern of N path components, the path's
first N parent components) is not an exception. Case-sensitive.

Walking (fsutil's `Walk` of that era): a lexical walk of the context; a matched file is not sent; a
matched directory is skipped with everything below it, unless some exception pattern (as written, plus
`/`) starts with the directory's path plus `/`: then the directory itself IS sent (even when nothing
below it is) and walked into, each entry judged on its own. The Dockerfile and `.dockerignore` get no
special treatment: a pattern that matches them keeps them out of `COPY . /dst` (they reach the
frontend by other means).

Known differences from docker-py's matcher (`docker.utils.build.exclude_paths`, which the product used
before; all checked against the engine by `tests/test_dockerignore.py`):
  1. docker-py always re-includes the Dockerfile and `.dockerignore` (it appends `!Dockerfile`,
     `!.dockerignore`); moby leaves them out when a pattern matches (`*`, `Dockerfile`, `.*`).
  2. docker-py lower-cases paths and patterns (`*.md` excludes `README.MD`); moby is case-sensitive.
  3. `[!a]` is a negated class for docker-py (fnmatch), a class of `!` and `a` for moby; `[^a]` is
     negated for moby, a class of `^` and `a` for docker-py.
  4. `\\` escapes the next character for moby; docker-py takes it literally.
  5. A line whose first non-blank character is `#` after leading spaces (` #x`) is a pattern for moby, a
     comment for docker-py (the product's reader before this module).
  6. `..` components: moby's `Clean` keeps a leading `..` (`../a` matches nothing); docker-py drops it
     (`../a` excludes `a`).
  7. An excluded directory walked into because an exception starts with it (`a` + `!a/keep`): moby sends
     the directory itself (`a/` arrives even when `a/keep` does not exist); docker-py sends only what is
     re-included below it. And docker-py's test is plain text without the `/`: with `a*` + `!a*/x` it
     walks into `a` (the text `a*/x` starts with `a`) and sends `a/x`; moby skips `a` (`a*/x/` does not
     start with `a/`) and sends nothing of it. docker/docker-py#2065 is of this family.
  8. A malformed pattern (`[a`, `[]`, `[z-a]`, trailing `\\`, a lone `!`) fails the build for moby;
     docker-py matches most of them as literal text (`[a` excludes a file named `[a`) and raises
     `re.error` on a reversed range. Here each raises `DockerignoreError` (a UserError naming the file).
On the product's fallback path without any Docker CLI (the docker SDK's legacy builder), docker-py builds
the tar itself, so its matcher decides what that build is sent; the key follows moby regardless (a
context where the two differ is still keyed on what a CLI build sends).
"""
from __future__ import annotations

import os
import re
import warnings

from .errors import UserError

# Go's unicode.IsSpace (what strings.TrimSpace trims); Python's str.strip also trims \x1c-\x1f.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000"
_SHOULD_ESCAPE = set(".+()|{}$")
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}


class DockerignoreError(UserError):
    """A `.dockerignore` pattern the engine refuses (the build would fail on it)."""


def go_trim_space(s: str) -> str:
    return s.strip(_GO_SPACE)


def go_clean(path: str) -> str:
    """Go's path/filepath.Clean on a slash-separated path."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_patterns(data: bytes | str) -> list[str]:
    """The patterns of a `.dockerignore` file's content, as moby's `dockerignore.ReadAll` returns them."""
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # bufio.ScanLines: no empty token after a final newline
    out = []
    for i, line in enumerate(lines):
        if line.endswith("\r"):
            line = line[:-1]
        if i == 0 and line.startswith("\ufeff"):
            line = line[1:]
        if line.startswith("#"):
            continue
        pattern = go_trim_space(line)
        if not pattern:
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = go_trim_space(pattern[1:])
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def read_dockerignore(context: str) -> list[str]:
    """Patterns of `<context>/.dockerignore` (none when the file is absent)."""
    try:
        with open(os.path.join(context, ".dockerignore"), "rb") as f:
            return read_patterns(f.read())
    except FileNotFoundError:
        return []


def _check_syntax(p: str) -> None:
    """Raise where Go's filepath.Match(p, ".") reports ErrBadPattern (Go 1.16+: the whole pattern)."""
    n = len(p)

    def get_esc(i: int) -> int:
        if i >= n or p[i] in "-]":
            raise ValueError
        if p[i] == "\\":
            i += 1
            if i >= n:
                raise ValueError
        i += 1
        if i >= n:
            raise ValueError
        return i

    i = 0
    while i < n:
        c = p[i]
        if c == "[":
            i += 1
            if i < n and p[i] == "^":
                i += 1
            nrange = 0
            while True:
                if i < n and p[i] == "]" and nrange > 0:
                    i += 1
                    break
                i = get_esc(i)
                if p[i] == "-":
                    i = get_esc(i + 1)
                nrange += 1
        elif c == "\\":
            i += 2
            if i > n:
                raise ValueError
        else:
            i += 1


def _translate(p: str) -> str:
    """moby's Pattern.compile, as a Python regexp (anchored with ^ and \\Z)."""
    out = ["^"]
    i, n = 0, len(p)
    in_class = False
    while i < n:
        ch = p[i]
        i += 1
        if ch == "*":
            if i < n and p[i] == "*":
                i += 1
                if i < n and p[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
                in_class = False
        elif ch == "?":
            out.append("[^/]")
            in_class = False  # inside a class, the first ] of [^/] closes it (in RE2 as in Python)
        elif ch in _SHOULD_ESCAPE:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                nxt = p[i]
                i += 1
                out.append("\\" + nxt if nxt.isascii() and nxt.isalnum() else re.escape(nxt))
            else:
                out.append("\\\\")
        else:
            if in_class and ch == "[" and p.startswith(":", i):
                end = p.find(":]", i + 1)
                name = p[i + 1:end] if end > 0 else ""
                if name in _POSIX_CLASSES:  # RE2's [[:alpha:]]; Python's re has no POSIX classes
                    out.append(_POSIX_CLASSES[name])
                    i = end + 2
                    continue
            if ch == "[" and not in_class:
                in_class = True
                out.append(ch)
                if i < n and p[i] == "^":
                    out.append("^")
                    i += 1
                if i < n and p[i] == "]":  # a leading ] is literal in both RE2 and Python
                    out.append("\\]")
                    i += 1
                continue
            if ch == "]" and in_class:
                in_class = False
            elif in_class and ch == "[":
                ch = "\\["  # literal in RE2's classes too; Python would warn about a nested set
            out.append(ch)
    out.append("\\Z")
    return "".join(out)


class Pattern:
    __slots__ = ("text", "exclusion", "cleaned", "ndirs", "regex")

    def __init__(self, text: str, exclusion: bool, cleaned: str):
        self.text = text
        self.exclusion = exclusion
        self.cleaned = cleaned
        self.ndirs = len(cleaned.split("/"))
        try:
            _check_syntax(cleaned)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.regex = re.compile(_translate(cleaned))
        except (ValueError, re.error):
            raise DockerignoreError(f".dockerignore pattern {text!r} is malformed: the engine refuses it "
                                    "(syntax error in pattern)",
                                    allowed="Go filepath.Match syntax: *, ?, **, [class], \\ escapes") from None

    def match(self, path: str) -> bool:
        return self.regex.match(path) is not None


class PatternMatcher:
    """moby's `fileutils.PatternMatcher` (20.10): `matches(path)` is its `Matches`."""

    def __init__(self, patterns: list[str]):
        self.patterns: list[Pattern] = []
        for text in patterns:
            p = go_trim_space(text)
            if not p:
                continue
            p = go_clean(p)
            exclusion = p[0] == "!"
            if exclusion:
                if len(p) == 1:
                    raise DockerignoreError('illegal exclusion pattern: "!" in .dockerignore')
                p = p[1:]
            self.patterns.append(Pattern(text, exclusion, p))
        self.exclusions = any(p.exclusion for p in self.patterns)
        self._exception_prefixes = [p.cleaned + "/" for p in self.patterns if p.exclusion]
        self._reversed = self.patterns[::-1]

    def matches(self, path: str) -> bool:
        """True when `path` (relative, `/`-separated) is excluded: the last pattern matching it, or the
        first N components of its parent for a pattern of N components, decides."""
        slash = path.rfind("/")
        parent_dirs = path[:slash].split("/") if slash > 0 else None
        for pat in self._reversed:
            if pat.regex.match(path) is not None:
                return not pat.exclusion
            if parent_dirs is not None and pat.ndirs <= len(parent_dirs):
                if pat.regex.match("/".join(parent_dirs[:pat.ndirs])) is not None:
                    return not pat.exclusion
        return False

    def excluded(self, path: str, is_dir: bool) -> bool:
        """Whether the walk leaves this entry out (a directory left out takes everything below it)."""
        if not self.matches(path):
            return False
        if not is_dir or not self.exclusions:
            return True
        prefix = path + "/"
        return not any(p.startswith(prefix) for p in self._exception_prefixes)


def matcher_for(patterns: list[str]) -> PatternMatcher | None:
    return PatternMatcher(patterns) if patterns else None


def scan_dir(abs_dir: str, rel_dir: str, matcher: PatternMatcher | None) -> list[tuple[str, bool]]:
    """The entries of one directory the engine is sent, sorted: (name, is_dir); every directory listed
    is sent and walked into."""
    out = []
    with os.scandir(abs_dir) as it:
        for entry in it:
            is_dir = entry.is_dir(follow_symlinks=False)
            if matcher is not None and matcher.excluded(rel_dir + entry.name if rel_dir else entry.name, is_dir):
                continue
            out.append((entry.name, is_dir))
    out.sort()
    return out


def sent_paths(root: str, patterns: list[str] | None = None) -> list[tuple[str, bool]]:
    """Every (relative path, is_dir) a build of `root` sends, `.dockerignore` applied (read from root
    when `patterns` is None). Uncached; `hashing.context_entries` is the cached form."""
    if patterns is None:
        patterns = read_dockerignore(root)
    matcher = matcher_for(patterns)
    out: list[tuple[str, bool]] = []

    def visit(abs_dir: str, rel_dir: str) -> None:
        for name, is_dir in scan_dir(abs_dir, rel_dir, matcher):
            rel = rel_dir + name
            out.append((rel, is_dir))
            if is_dir:
                visit(os.path.join(abs_dir, name), rel + "/")

    visit(root, "")
    return out
