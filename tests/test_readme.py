"""The README's generated parts match what the tests generate (the fixture table, the differences from
Copilot), and it starts with exactly the two commands of the brief."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _section(readme: str, name: str) -> str:
    m = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", readme, re.S)
    assert m, f"README has no {name} markers"
    return m.group(1)


def test_readme_fixture_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert _section(readme, "fixture-table").strip() == (ROOT / "tests" / "fixture_table.md").read_text().strip()


def test_readme_differences_are_the_generated_ones():
    readme = (ROOT / "README.md").read_text()
    assert _section(readme, "differences").strip() == (ROOT / "tests" / "parity_differences.md").read_text().strip()


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[:4] == ["```bash", ".ci/install && doit deploy name=frontend env=test",
                         ".ci/install && python3 -m pytest -q", "```"]


def sync() -> None:
    """`python3 tests/test_readme.py`: copy the generated parts into the README."""
    path = ROOT / "README.md"
    text = path.read_text()
    for name, source in (("fixture-table", "fixture_table.md"), ("differences", "parity_differences.md")):
        body = (ROOT / "tests" / source).read_text().strip() + "\n"
        text = re.sub(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", lambda m: m.group(1) + body + m.group(2),
                      text, flags=re.S)
    path.write_text(text)


if __name__ == "__main__":
    sync()
