"""Questions on a terminal, asked as Copilot's selectors ask them: numbered choices on stdin/stdout.

Standard library only (nothing heavy on the no-op path). Asked only when stdin and stdout are both
terminals (`interactive()`); without one the caller refuses or takes a documented default instead.
"""
from __future__ import annotations

import sys


class Cancelled(Exception):
    """No answer: end of input (Ctrl-D) or Ctrl-C at a question."""

    def __init__(self, why: str, interrupted: bool = False):
        super().__init__(why)
        self.interrupted = interrupted


def interactive() -> bool:
    """Whether a person can answer: stdin and stdout are terminals."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _ask(question: str) -> str:
    try:
        return input(question).strip()
    except EOFError:
        print()
        raise Cancelled("no answer (end of input)") from None
    except KeyboardInterrupt:
        print()
        raise Cancelled("interrupted", interrupted=True) from None


def _menu(message: str, choices: list[tuple[str, str]], first: int = 1) -> None:
    width = max(len(value) for value, _ in choices)
    print(message)
    for i, (value, hint) in enumerate(choices, start=first):
        print(f"  {i}) {value:<{width}}  {hint}".rstrip())


def select_one(message: str, choices: list[tuple[str, str]], what: str) -> str:
    """One of `choices` ((value, hint) pairs), by number or by value; asked again until it is one."""
    _menu(message, choices)
    values = [v for v, _ in choices]
    while True:
        answer = _ask(f"{what} [1-{len(values)} or a name]: ")
        if answer.isdigit() and 1 <= int(answer) <= len(values):
            return values[int(answer) - 1]
        if answer in values:
            return answer
        print(f"  '{answer}' is not one of the choices: a number from 1 to {len(values)}, or one of "
              f"{', '.join(values)}")


def select_many(message: str, choices: list[tuple[str, str]], what: str, all_label: str = "all") -> list[str]:
    """One or more of `choices`: numbers or values separated by commas or spaces, or `0`/`all_label` for
    every one (returned in the order of `choices`); asked again until the answer names at least one."""
    _menu(message, [(all_label, f"every one of the {len(choices)} below"), *choices], first=0)
    values = [v for v, _ in choices]
    while True:
        answer = _ask(f"{what} [numbers or names, comma-separated; 0 or '{all_label}' for every one]: ")
        words = [w for w in answer.replace(",", " ").split() if w]
        if not words:
            print("  choose at least one")
            continue
        if any(w in ("0", all_label) for w in words):
            return list(values)
        chosen, bad = set(), []
        for w in words:
            if w.isdigit() and 1 <= int(w) <= len(values):
                chosen.add(values[int(w) - 1])
            elif w in values:
                chosen.add(w)
            else:
                bad.append(w)
        if bad:
            print(f"  not a choice: {', '.join(bad)} (a number from 0 to {len(values)}, or one of "
                  f"{all_label}, {', '.join(values)})")
            continue
        return [v for v in values if v in chosen]


def confirm(question: str) -> bool:
    """`question [y/N]`: yes only for y/yes; Enter (and anything else) is no."""
    return _ask(f"{question} [y/N] ").lower() in ("y", "yes")
