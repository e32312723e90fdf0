"""The gates that keep the house in order, run with the suite (so CI runs them too).

- ruff (lint and format) over the package, tests, examples and benchmarks;
- mypy ``--strict`` over the package and the tests (config in pyproject.toml);
- no module over 600 lines; no import cycle between modules (runtime imports: an
  annotation-only import under ``if TYPE_CHECKING:`` does not count);
- no module reaching into another module's private names (ruff's SLF001, keeping the
  hits on names the module itself defines), except the one adapter to trio-websocket.

The coverage floor is pytest-cov's ``fail_under`` in pyproject.toml.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trio_h3"
MAX_LINES = 600
#: The one module allowed to touch trio-websocket's private API.
ADAPTER = "trio_h3/websocket/_adapter.py"


def tool(name: str) -> list[str]:
    """Run a tool from this interpreter's environment (a venv need not be activated)."""
    return [sys.executable, "-m", name]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=600)


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def test_ruff_lint_and_format_are_clean() -> None:
    targets = ["trio_h3", "tests", "examples", "bench"]
    lint = run([*tool("ruff"), "check", "--no-cache", *targets])
    assert lint.returncode == 0, lint.stdout + lint.stderr
    formatted = run([*tool("ruff"), "format", "--check", "--no-cache", *targets])
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_mypy_strict_is_clean() -> None:
    result = run([*tool("mypy")])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_module_is_over_600_lines(module: str) -> None:
    lines = modules()[module].read_text().count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it along its concepts"


def runtime_imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(inner) for sub in node.body for inner in ast.walk(sub)}
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            prefix = ".".join([*base, node.module] if node.module else base)
            names = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def test_no_import_cycles() -> None:
    known = modules()
    graph = {m: runtime_imports(m, p, known) for m, p in known.items()}
    # A package's __init__ that re-exports its children is their face, not a dependency:
    # edges from a submodule into its own package's __init__ are dropped.
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    cycles: list[list[str]] = []
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            cycles.append([*visiting[visiting.index(module) :], module])
            return
        visiting.append(module)
        for target in sorted(graph[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_reaches_into_anothers_private_names() -> None:
    result = run(
        [
            *tool("ruff"),
            "check",
            "--select",
            "SLF001",
            "--output-format",
            "concise",
            "--no-cache",
            "trio_h3",
        ]
    )
    hits = []
    for line in result.stdout.splitlines():
        match = re.match(r"(.+?):\d+:\d+: SLF001 Private member accessed: `(\w+)`", line)
        if not match:
            continue
        path, name = match.groups()
        own = (ROOT / path).read_text()
        # A private name this module defines itself (a sibling instance's attribute, a
        # slot, a method) is its own business; only reaching into another module counts.
        if re.search(
            rf"(self\.{name}\s*[:=]|def {name}\b|[\"']{name}[\"']|^\s*{name}\s*[:=])", own, re.M
        ):
            continue
        if path == ADAPTER:
            continue
        hits.append(line)
    assert not hits, "\n".join(hits)
