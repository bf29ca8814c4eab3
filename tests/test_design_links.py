"""Every `docs/design.md#<heading>` cited in the code and docs names a heading that exists there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
CITING = ("src", "tests", "tests_lmms", "tests_vllm", "benchmarks", "docs", "README.md", "CONTRIBUTING.md")
LINK = re.compile(r"design\.md#([A-Za-z0-9_-]+)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def _anchors() -> set[str]:
    text = DESIGN.read_text(encoding="utf-8")
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def _files() -> list[Path]:
    found = []
    for name in CITING:
        path = ROOT / name
        found += (
            [path] if path.is_file() else [p for p in path.rglob("*") if p.suffix in {".py", ".md", ".sh"}]
        )
    return [p for p in found if p != Path(__file__).resolve()]


def test_every_design_link_resolves() -> None:
    anchors = _anchors()
    broken, cited = [], 0
    for path in _files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for anchor in LINK.findall(line):
                cited += 1
                if anchor not in anchors:
                    broken.append(f"{path.relative_to(ROOT)}:{number} #{anchor}")
    assert cited >= 27, cited
    assert not broken, f"links to missing headings of docs/design.md: {broken}; headings: {sorted(anchors)}"


def test_no_citation_of_a_document_outside_the_repository() -> None:
    stale = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bSPEC \d", line) or "tests/reference.py" in line
    ]
    assert not stale, f"cite docs/design.md headings instead: {stale}"


def test_slug_follows_github() -> None:
    assert _slug(" Qwen2.5-Omni") == "qwen25-omni"
    assert _slug("The selector and its checkpoint") == "the-selector-and-its-checkpoint"
