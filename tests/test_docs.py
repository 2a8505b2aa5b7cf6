"""The README and the manual: every relative link resolves, and the README stays an entry."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def documents() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").rglob("*.md")),
        *sorted(ROOT.glob("services/*/README.md")),
        *sorted(ROOT.glob("bench/*/README.md")),
    ]


def test_every_relative_link_resolves() -> None:
    broken = []
    checked = 0
    for doc in documents():
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)  # code blocks hold no links
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            checked += 1
            if not (doc.parent / path).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert checked > 20
    assert not broken, broken


def test_readme_is_an_entry_not_the_manual() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, len(lines)
    text = "\n".join(lines)
    assert "make demo" in text and "make test" in text


def test_quickstart_is_read_as_a_person_reads_it() -> None:
    """tests/compose/test_readme.py runs these lines in CI; here only the parser is checked."""
    from tests.compose.test_readme import quickstart_lines

    lines = quickstart_lines((ROOT / "README.md").read_text())
    assert lines[0] == "make env"
    assert (
        lines.index("make images")
        < lines.index("make models")
        < lines.index("make run-core-services run-ai-services")
    )
    assert lines[-1].startswith("curl ") and "#" not in lines[-1]
