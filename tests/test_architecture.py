"""The package's shape, checked: layers, no import cycles, a docstring on every module.

The layer map is `reconciler/__init__.py`'s docstring ("Layers"); this test holds the same
map as data. Every import counts: top-level, function-local and under TYPE_CHECKING, since a
cycle through a local import is still a cycle for whoever reads the code.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"

#: Module (or subpackage) -> layer. A module may import only its own layer's modules or lower
#: layers'; the first matching prefix wins (a subpackage's modules share its layer).
LAYERS: dict[str, int] = {
    "reconciler.errors": 0,
    "reconciler.jsontext": 0,
    "reconciler.redact": 0,
    "reconciler.wording": 0,
    "reconciler.limits": 0,
    "reconciler.model": 1,
    "reconciler.endpoints": 2,
    "reconciler.httpcall": 2,
    "reconciler.planner": 3,
    "reconciler.rules": 3,
    "reconciler.approvals": 3,
    "reconciler.states": 3,
    "reconciler.journal": 3,
    "reconciler.spike": 3,
    "reconciler.github": 3,
    "reconciler.config": 3,
    "reconciler.planfile": 4,
    "reconciler.applier": 4,
    "reconciler.sandbox": 4,
    "reconciler.usecases": 5,
    "reconciler.render": 6,
    "reconciler.cli": 7,
    "reconciler": 8,
}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for file in sorted(PACKAGE.rglob("*.py")):
        rel = file.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = file
    return out


def _imports(name: str, file: Path, known: set[str]) -> set[str]:
    """The package modules `name` imports, anywhere in its body.

    `from . import x` imports the submodule x when there is one, else a name of the package's
    `__init__`: then the edge goes to the package itself. Every edge counts, a package's
    `__init__` importing its own submodules too: a submodule that imports its package's
    `__init__` back closes a cycle (as journal and pgjournal once did).
    """
    is_package = file.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                targets.append(sub if sub in known else module)
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            if target in known and target != name:
                found.add(target)
    return found


def _layer(module: str) -> int:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        # The package itself matches only its own __init__: a new module is in no layer
        # until LAYERS names it (not silently in the top one).
        if module == prefix or (prefix != "reconciler" and module.startswith(prefix + ".")):
            return LAYERS[prefix]
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and the package docstring")


MODULES = _modules()
GRAPH = {name: _imports(name, file, set(MODULES)) for name, file in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_what_it_owns(module: str) -> None:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring and len(docstring.split()) >= 5, f"{module} has no docstring"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_it(module: str) -> None:
    above = sorted(t for t in GRAPH[module] if _layer(t) > _layer(module))
    assert not above, f"{module} (layer {_layer(module)}) imports a layer above it: {above}"


def test_errors_import_nothing_from_the_package() -> None:
    assert GRAPH["reconciler.errors"] == set()


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_only_the_spike_client_and_github_speak_http() -> None:
    users = sorted(name for name, file in MODULES.items() if "httpx" in _imported_roots(file))
    assert users, "no module imports httpx: the check would pass vacuously"
    # httpcall holds the request bounds and the retry loop both clients share.
    speakers = ("reconciler.spike", "reconciler.github", "reconciler.httpcall")
    assert all(u.startswith(speakers) for u in users), users


def _imported_roots(file: Path) -> set[str]:
    """The top-level names of every module `file` imports (absolute imports only)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_only_the_cli_imports_click() -> None:
    # Parsed, not searched: a docstring saying "no click here" is no import.
    users = sorted(name for name, file in MODULES.items() if "click" in _imported_roots(file))
    assert users and all(name.startswith("reconciler.cli.") for name in users), users


def test_every_test_folder_is_a_package() -> None:
    # `mypy tests` names a module by its packages: a folder without __init__.py would turn
    # its files into top-level modules that pyproject's `tests.*` override does not cover
    # (and two test files of one name in two such folders would clash).
    tests = Path(__file__).resolve().parent
    folders = {p.parent for p in tests.rglob("*.py")}
    bare = sorted(
        str(f.relative_to(tests.parent)) for f in folders if not (f / "__init__.py").exists()
    )
    assert folders and not bare, f"add an __init__.py to: {bare}"


def test_the_shared_helpers_are_excluded_from_the_crawl_and_relaxed() -> None:
    # The modules beside conftest.py are imported by bare name (`from helpers import ...`,
    # pytest's `pythonpath`): mypy must find them only as such, through mypy_path, and check
    # them with the tests' relaxed settings.
    tests = Path(__file__).resolve().parent
    text = (tests.parent / "pyproject.toml").read_text(encoding="utf-8")
    helpers = sorted(
        p.stem
        for p in tests.glob("*.py")
        if p.stem not in {"__init__", "conftest"} and not p.stem.startswith("test_")
    )
    exclude = re.search(r"^exclude = \['(.+)'\]$", text, flags=re.M)
    relaxed = re.search(r"^module = \[(.+)\]$", text, flags=re.M)
    assert helpers and exclude and relaxed, "pyproject.toml's [tool.mypy] changed shape"
    assert '"tests.*"' in relaxed.group(1)
    missing = [h for h in helpers if not re.match(exclude.group(1), f"tests/{h}.py")]
    assert not missing, f"add to [tool.mypy] exclude in pyproject.toml: {missing}"
    unrelaxed = [h for h in helpers if f'"{h}"' not in relaxed.group(1)]
    assert not unrelaxed, f"add to [[tool.mypy.overrides]] in pyproject.toml: {unrelaxed}"


def test_the_planner_is_pure() -> None:
    """desired x recorded -> plan with no I/O, no clock, no randomness: the same layer's
    journal, spike or github are as out of reach as anything above it."""
    assert GRAPH["reconciler.planner"] <= {
        "reconciler.errors",
        "reconciler.model",
        "reconciler.endpoints",
        "reconciler.approvals",  # pure as well: it imports only the model
    }, GRAPH["reconciler.planner"]
    assert GRAPH["reconciler.approvals"] <= {"reconciler.model"}, GRAPH["reconciler.approvals"]
    tree = ast.parse(MODULES["reconciler.planner"].read_text(encoding="utf-8"))
    stdlib = {
        (alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0)
        for alias in node.names
    }
    impure = {"os", "io", "pathlib", "socket", "asyncio", "time", "random", "datetime", "httpx"}
    assert not stdlib & impure, stdlib & impure


def test_the_architecture_page_lists_every_module() -> None:
    """docs/architecture.md's layout names each module of the package, and no other."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`(reconciler/[\w/]+\.py)`", page))
    actual = {str(f.relative_to(PACKAGE.parent)) for f in PACKAGE.rglob("*.py")}
    assert listed == actual, (sorted(actual - listed), sorted(listed - actual))
