"""The documentation site: the API reference covers the public API, and the site builds.

- Every name in ``trio_h3.__all__`` and ``trio_h3.testing.__all__`` has its own
  ``::: trio_h3.NAME`` entry in docs/reference/, and no entry names anything else: the
  reference is rendered from the docstrings by mkdocstrings, so with this test it cannot
  drift from the code (a name added, renamed or removed fails here first).
- ``mkdocs build --strict`` passes (slow): a broken link or anchor, a page left out of
  the nav, a stale ``:class:`` reference or a public name without a docstring is a
  warning (scripts/docs_griffe.py), and so a failure.
- The ``docs`` extra is also in ``test``, so CI's one install can build the site.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import trio_h3
import trio_h3.testing

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
INDEX = REFERENCE / "index.md"
ENTRY = re.compile(r"^::: (\S+)\s*$", re.M)
PUBLIC = {f"trio_h3.{name}" for name in trio_h3.__all__} | {
    f"trio_h3.testing.{name}" for name in trio_h3.testing.__all__
}


def entries() -> list[str]:
    found: list[str] = []
    for page in sorted(REFERENCE.glob("*.md")):
        found += ENTRY.findall(page.read_text(encoding="utf-8"))
    return found


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_has_a_reference_entry(name: str) -> None:
    assert name in entries(), f"add '::: {name}' to a page of docs/reference/"


def test_the_reference_documents_the_public_api_only_and_once() -> None:
    found = entries()
    assert sorted(set(found)) == sorted(found), "a name documented twice"
    assert not set(found) - PUBLIC, f"not public: {sorted(set(found) - PUBLIC)}"


def test_the_reference_index_lists_each_page_with_its_names() -> None:
    rows = re.findall(r"^\| \[[^]]+\]\(([\w-]+\.md)\) \| (.+) \|$", INDEX.read_text(), re.M)
    listed = {
        page: set(re.findall(r"`(?:trio_h3\.testing`: `)?([\w.]+)`", names)) for page, names in rows
    }
    for page in sorted(REFERENCE.glob("*.md")):
        if page.name == "index.md":
            continue
        assert page.name in listed, f"reference/index.md does not list {page.name}"
        names = {entry.rpartition(".")[2] for entry in ENTRY.findall(page.read_text())}
        assert listed[page.name] - {"trio_h3.testing"} == names, f"reference/index.md: {page.name}"


def test_the_docs_extra_is_part_of_the_test_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(extras["docs"]) <= set(extras["test"])


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    # Not a skip: CI installs the test extra, which has the docs tools.
    assert importlib.util.find_spec("mkdocs"), "pip install -e '.[test]' (it includes [docs])"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert result.returncode == 0, "\n".join(warnings) or result.stderr[-4000:]
    assert (tmp_path / "reference" / "app" / "index.html").is_file()
