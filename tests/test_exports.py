"""The public API is declared once, and this test holds it there.

- ``trio_h3.__all__`` is the API (with ``trio_h3.testing.__all__`` for the test kit and
  ``trio_h3.cli.main`` for the command): every name imports from ``trio_h3`` and has a
  docstring; the lazy export map and the type checkers' view (the ``TYPE_CHECKING``
  imports) list exactly the same names.
- A module's own ``__all__`` lists only public names: internal names one module shares
  with another are imported by name, never advertised (private ``_modules`` excepted).
- The pure core imports with Trio and h11 absent, and ``import trio_h3`` loads neither.
- The docs and examples import from ``trio_h3`` (and ``trio_h3.testing``) only.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import trio_h3
import trio_h3.testing

ROOT = Path(__file__).resolve().parent.parent
PURE = [
    "trio_h3.router",
    "trio_h3.paths",
    "trio_h3.response",
    "trio_h3.errors",
    "trio_h3.datastructures",
    "trio_h3.types",
    "trio_h3.middleware",
    "trio_h3.event",
    "trio_h3.app",
    "trio_h3.sse.encoding",
    "trio_h3.sse.parser",
    "trio_h3.sse.response",
    "trio_h3.websocket.handshake",
    "trio_h3.validation",
    "trio_h3.utils.auth",
    "trio_h3.utils.proxy",
]
BLOCK = (
    "import sys\n"
    "for name in ('trio', 'h11', 'trio_websocket', 'wsproto'): sys.modules[name] = None\n"
)
PUBLIC = set(trio_h3.__all__) | set(trio_h3.testing.__all__) | {"main"}
NOT_DOCUMENTED = {"__version__"}


def modules() -> list[str]:
    names = ["trio_h3"]
    for info in pkgutil.walk_packages(trio_h3.__path__, "trio_h3."):
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", sorted(trio_h3.__all__))
def test_every_public_name_imports_from_trio_h3_with_a_docstring(name: str) -> None:
    value = getattr(trio_h3, name)
    if name in NOT_DOCUMENTED or not (inspect.isclass(value) or inspect.isfunction(value)):
        return
    assert inspect.getdoc(value), f"trio_h3.{name} has no docstring"
    if inspect.isclass(value):
        for attr, member in vars(value).items():
            if attr.startswith("_") or not (
                inspect.isfunction(member) or isinstance(member, property)
            ):
                continue
            assert inspect.getdoc(member), f"trio_h3.{name}.{attr} has no docstring"


def test_the_lazy_map_and_the_type_checkers_view_agree_with_all() -> None:
    tree = ast.parse((ROOT / "trio_h3" / "__init__.py").read_text())
    checked: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom):
                    checked |= {alias.asname or alias.name for alias in sub.names}
    assert checked == set(trio_h3.__all__) - {"__version__"}
    assert set(dir(trio_h3)) >= set(trio_h3.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        trio_h3.nope  # noqa: B018


@pytest.mark.parametrize("module", modules())
def test_module_all_lists_only_public_names(module: str) -> None:
    if any(part.startswith("_") for part in module.split(".")[1:]):
        return  # a private module's names are internal by its own name
    mod = importlib.import_module(module)
    declared = getattr(mod, "__all__", None)
    assert declared is not None, f"{module} declares no __all__"
    internal = set(declared) - PUBLIC
    assert not internal, f"{module}.__all__ advertises internal names: {sorted(internal)}"
    for name in declared:
        assert hasattr(mod, name), f"{module}.__all__ names {name!r}, which it does not have"


def run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, cwd=ROOT, check=False
    )


@pytest.mark.slow
def test_the_pure_core_imports_without_trio_or_h11() -> None:
    result = run_blocked("\n".join(f"import {module}" for module in PURE))
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_import_trio_h3_loads_neither_trio_nor_h11() -> None:
    code = "import sys, trio_h3\nprint('trio' in sys.modules, 'h11' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.split() == ["False", "False"], result.stderr


IMPORT = re.compile(r"^\s*(?:from|import)\s+(trio_h3[\w.]*)", re.M)
ALLOWED = {"trio_h3", "trio_h3.testing"}


@pytest.mark.parametrize(
    "path",
    sorted(
        str(p.relative_to(ROOT))
        for p in [*ROOT.glob("docs/**/*.md"), ROOT / "README.md", *ROOT.glob("examples/**/*.py")]
    ),
)
def test_docs_and_examples_import_from_trio_h3_only(path: str) -> None:
    deep = {m for m in IMPORT.findall((ROOT / path).read_text()) if m not in ALLOWED}
    assert not deep, f"{path} imports from {sorted(deep)}; use 'from trio_h3 import ...'"
