"""``pytest_agentsim`` is the one place users import from: a lazy facade over the layers.

Importing it (pytest does, whenever the plugin is installed) must stay light; every public
name must resolve to the object its module defines; and the three lists that describe the
facade (``_EXPORTS`` for the runtime, ``__all__`` for star imports and linters, the
``TYPE_CHECKING`` imports for type checkers) must agree, or one audience sees a different
API than another.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_agentsim

FACADE = Path(pytest_agentsim.__file__)

#: Top-level packages a plain ``pytest`` run must not pay for (DESIGN.md, bench/startup.py).
HEAVY = ("pydantic", "yaml", "deepdiff", "litellm")


def loaded_after(statement: str) -> list[str]:
    """Heavy and pytest_agentsim modules loaded by ``statement`` in a fresh interpreter."""
    code = (
        f"import json, sys\n{statement}\n"
        f"print(json.dumps(sorted(m for m in sys.modules "
        f"if m.split('.')[0] in {(*HEAVY, 'pytest_agentsim')!r})))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: list[str] = json.loads(run.stdout)
    return loaded


def test_importing_the_package_loads_nothing_else() -> None:
    assert loaded_after("import pytest_agentsim") == ["pytest_agentsim"]


def test_importing_the_plugin_loads_nothing_heavy() -> None:
    loaded = loaded_after("import pytest_agentsim.plugin")
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []
    assert "pytest_agentsim.core.models" not in loaded


def test_a_conftest_typing_its_agent_stays_light() -> None:
    """The quickstart's conftest imports ``Agent``: a plain ``pytest`` run must not pay."""
    loaded = loaded_after("from pytest_agentsim import Agent, AgentReply")
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []


def test_a_public_name_is_imported_on_first_use_only() -> None:
    loaded = loaded_after("from pytest_agentsim import tool_call")
    assert "pytest_agentsim.simulation.runner" in loaded
    assert "litellm" not in loaded


@pytest.mark.parametrize("name", pytest_agentsim.__all__)
def test_every_public_name_resolves_to_its_modules_object(name: str) -> None:
    value = getattr(pytest_agentsim, name)
    if name == "__version__":
        assert value == importlib.metadata.version("pytest-agentsim")
        return
    module = importlib.import_module(pytest_agentsim._EXPORTS[name])
    assert value is getattr(module, name)


def test_all_names_exactly_the_exports() -> None:
    assert sorted(pytest_agentsim.__all__) == sorted([*pytest_agentsim._EXPORTS, "__version__"])
    assert len(set(pytest_agentsim.__all__)) == len(pytest_agentsim.__all__)


def test_type_checkers_see_the_same_names_from_the_same_modules() -> None:
    tree = ast.parse(FACADE.read_text(encoding="utf-8"))
    guarded = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    seen = {}
    for node in guarded.body:
        assert isinstance(node, ast.ImportFrom), ast.unparse(node)
        for alias in node.names:
            # ``import X as X`` is the explicit re-export form mypy and pyright honour.
            assert alias.asname == alias.name, ast.unparse(node)
            seen[alias.name] = node.module
    assert seen == pytest_agentsim._EXPORTS


def test_dir_lists_every_public_name() -> None:
    assert set(pytest_agentsim.__all__) <= set(dir(pytest_agentsim))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'pytest_agentsim' has no attribute 'Nope'"):
        # mypy must report the typo (the runtime ``__getattr__`` is hidden from it): were
        # it not, this ignore would be unused, itself an error under ``strict``.
        _ = pytest_agentsim.Nope  # type: ignore[attr-defined]
    assert not hasattr(pytest_agentsim, "_not_public")


def test_star_import_gives_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from pytest_agentsim import *", namespace)
    assert set(pytest_agentsim.__all__) <= set(namespace)


ROOT = FACADE.parent.parent


def internal_imports(source: str) -> list[str]:
    """The imports of ``source`` that reach past the facade into the package's modules."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [name for name in names if name.startswith("pytest_agentsim.")]
    return found


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [block.split("\n```", 1)[0] for block in text.split("```python\n")[1:]]


@pytest.mark.parametrize(
    "path",
    sorted([*(ROOT / "example_tests").glob("*.py"), *(ROOT / "bench").glob("*.py")]),
    ids=lambda path: f"{path.parent.name}/{path.name}",
)
def test_the_example_and_the_benchmarks_import_only_the_public_api(path: Path) -> None:
    # They are what users copy: an internal path there becomes one in a product repo.
    assert internal_imports(path.read_text(encoding="utf-8")) == []


def test_the_readme_examples_import_only_the_public_api() -> None:
    blocks = readme_python_blocks()
    assert blocks and any("from pytest_agentsim import" in block for block in blocks)
    assert [internal_imports(block) for block in blocks] == [[] for _ in blocks]
