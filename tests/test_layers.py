"""The package's layers import only downwards, and no module imports itself in a circle.

DESIGN.md ("Layers"): core <- packs, llm <- generation, judging <- simulation <- reporting
<- the pytest glue (the top-level modules). Lazy imports inside functions and imports under
``TYPE_CHECKING`` count like any other: a layering fault hidden in a function is still one.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_agentsim"

#: Rank of each subpackage; a module may import from strictly lower ranks (and from its own
#: subpackage). Siblings of one rank (packs and llm; generation and judging) may not import
#: each other. Top-level modules are the pytest glue, above everything.
RANKS = {
    "core": 0,
    "packs": 1,
    "llm": 1,
    "generation": 2,
    "judging": 2,
    "simulation": 3,
    "reporting": 4,
}
GLUE = 5


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (anywhere in its code)."""
    modules = {module_name(root, path): path for path in root.rglob("*.py")}
    found: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                if target in modules and target != name:
                    found[name].add(target)
                    break
        found[name].discard(root.name)  # the facade is imported by everything's parent
    return found


def rank(root: Path, module: str) -> tuple[int, str]:
    """(rank, layer) of a module: its subpackage's, or the glue's for top-level modules."""
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in RANKS:
        return RANKS[parts[1]], parts[1]
    if len(parts) == 2 and (root / parts[1]).is_dir():  # a subpackage's __init__
        return RANKS[parts[1]], parts[1]
    return GLUE, "glue"


def upward_imports(root: Path) -> list[str]:
    problems = []
    for module, targets in sorted(imports(root).items()):
        mine, layer = rank(root, module)
        for target in sorted(targets):
            theirs, their_layer = rank(root, target)
            if their_layer == layer:
                continue
            if theirs >= mine:
                problems.append(f"{module} ({layer}) imports {target} ({their_layer})")
    return problems


def cycle(root: Path) -> list[str]:
    """One import cycle among the package's modules, or [] if there is none."""
    graph = imports(root)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_module_imports_from_a_layer_above_it() -> None:
    assert upward_imports(PACKAGE) == []


def test_no_import_cycle() -> None:
    assert cycle(PACKAGE) == []


def test_every_layer_says_what_it_owns_and_may_import() -> None:
    for layer in RANKS:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc and "import" in doc, layer


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_the_check_finds_a_lazy_upward_import_and_a_sibling_import(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "core/models.py": "def f():\n    from pkg.reporting.text import g\n",
            "packs/__init__.py": "from pkg.llm import gateway\n",
            "llm/__init__.py": "",
            "llm/gateway.py": "from pkg.core.models import f\n",
            "reporting/__init__.py": "",
            "reporting/text.py": "from ..core import models\n",
            "plugin.py": "from pkg.reporting.text import g\n",
        },
    )
    assert upward_imports(root) == [
        "pkg.core.models (core) imports pkg.reporting.text (reporting)",
        "pkg.packs (packs) imports pkg.llm.gateway (llm)",
    ]
    assert cycle(root) == ["pkg.core.models", "pkg.reporting.text", "pkg.core.models"]


def test_the_check_passes_a_package_that_only_imports_downwards(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "core/__init__.py": "",
            "core/models.py": "import json\n",
            "simulation/__init__.py": "",
            "simulation/runner.py": "from pkg.core import models\nfrom . import users\n",
            "simulation/users.py": "if True:\n    from pkg.core.models import json\n",
            "plugin.py": "import pkg.simulation.runner\n",
        },
    )
    assert upward_imports(root) == []
    assert cycle(root) == []
