"""No two public classes of the library share a name (a reader should never have to ask "which one?")."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "omnisift"


def _public_classes(root: Path) -> dict[str, list[str]]:
    """Class name -> the modules that define it (re-exports are not definitions)."""
    defined: dict[str, list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                defined[node.name].append(str(path.relative_to(root.parent)))
    return defined


def test_no_two_public_classes_share_a_name() -> None:
    shared = {name: where for name, where in _public_classes(SRC).items() if len(where) > 1}
    assert not shared, f"public classes defined more than once: {shared}"


def test_the_scan_finds_duplicates(tmp_path) -> None:
    package = tmp_path / "pkg"
    (package / "a").mkdir(parents=True)
    (package / "one.py").write_text("class Thing:\n    pass\n\nclass _Private:\n    pass\n")
    (package / "a" / "two.py").write_text("class Thing:\n    pass\n\nclass _Private:\n    pass\n")
    found = _public_classes(package)
    assert sorted(found["Thing"]) == ["pkg/a/two.py", "pkg/one.py"] and "_Private" not in found
