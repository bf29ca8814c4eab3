"""The library's imports run downward only and form no circle (tests and benchmarks may import anything).

`LAYERS` is the layering, bottom first: a module may import modules of its own layer or below. Imports
inside functions count (they run); imports under `if TYPE_CHECKING:` do not.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatchcase
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "omnisift"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "_extras",
            "cli_errors",
            "ops",
            "measure",
            "media",
            "media_check",
            "textfiles",
            "weight_files",
            "output_paths",
            "testing",
            "testing.clips",
            "testing.hooks",
            "testing.tiny_configs",
        ),
    ),
    ("test processors", ("testing.processors",)),
    ("layout", ("layout", "testing.batches")),
    ("budget and selector", ("budget", "compress", "selector")),
    (
        "model facts",
        ("models", "models.base", "models.*.adapter", "models.qwen2_5_omni", "models.qwen3_omni_moe"),
    ),
    ("methods and the inner-LLM stage", ("methods", "methods.*", "inner", "inner.*")),
    ("settings", ("config",)),
    ("functional api and input road", ("api", "inputs", "protocols", "testing.reference")),
    ("model fixtures", ("models.*.fixtures", "models.*.synthetic")),
    ("transformers hooks and loading", ("attach", "loading", "keepmap")),
    (
        "engines",
        (
            "evaluation",
            "evaluation.*",
            "training",
            "training.*",
            "lmms_eval",
            "lmms_eval.*",
            "vllm",
            "vllm.*",
        ),
    ),
    ("benchmarks", ("benchmarking", "benchmarking.*")),
    ("front ends", ("", "demo", "gain", "picture", "visualize", "cli", "__main__")),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC / PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    return skipped


def _imports(path: Path, name: str) -> set[str]:
    """Dotted names (relative to the package) this module imports, including imported members."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = name.split(".") if _is_package(path) else name.split(".")[:-1]
    package = [p for p in package if p]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
                module = node.module[len(PACKAGE) + 1 :]
            else:
                continue
            found.add(module)
            found |= {f"{module}.{alias.name}".lstrip(".") for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name[len(PACKAGE) + 1 :] for a in node.names if a.name.startswith(PACKAGE + ".")}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}

    def resolve(target: str) -> str:
        while target not in files and target:
            target = target.rpartition(".")[0]
        return target

    graph = {}
    for name, path in files.items():
        targets = {resolve(t) for t in _imports(path, name)} - {name}
        # a module importing a member of its own package is importing a sibling, not the package
        graph[name] = {t for t in targets if not (t and name.startswith(t + "."))}
    return graph


def _layer(module: str) -> int:
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatchcase(module, pattern) for pattern in patterns):
            return index
    raise AssertionError(f"module {module!r} is in no layer of LAYERS: add it where it belongs")


def test_every_module_has_a_layer() -> None:
    for module in _graph():
        _layer(module)


def test_no_import_runs_upward() -> None:
    upward = [
        f"{module} ({LAYERS[_layer(module)][0]}) -> {target} ({LAYERS[_layer(target)][0]})"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward, "imports running upward:\n" + "\n".join(sorted(upward))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    assert not _cycles(_graph())


def test_the_checks_can_fail() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert _layer("layout") < _layer("models.qwen2_5_omni.adapter") < _layer("api") < _layer("vllm.thinker")
