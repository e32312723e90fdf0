"""Every code block of README.md and docs/ runs (or, for shell, is checked) here.

The rules are tests/docs_blocks.py's docstring. In short: a ``python`` block that
defines tests runs under pytest-trio in one inner pytest run (tests/docs_plugin.py
records it), each test within a few seconds of wall-clock time; a server block runs
until it listens and is stopped with SIGINT (exit status 0); any other Python block is
imported; a shell block's ``trio-h3`` commands are parsed by the CLI's parser, its
``pip install`` extras and ``examples/`` scripts must exist. So a snippet that raises,
hangs or sleeps 31 s on the real clock cannot ship.

Kept from the per-page runners this replaces (test_requests_docs, test_browser_docs,
test_testing_docs): those pages keep at least their number of blocks, and their blocks
are test modules (browser.md's first, the overview, excepted).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import docs_blocks as db
import pytest

from trio_h3.cli.flags import given_options, options_for
from trio_h3.cli.main import build_parser

ROOT = db.ROOT
BLOCKS = [block for page in db.PAGES for block in db.blocks(page)]
PROGRAMS = [program for page in db.PAGES for program in db.programs(db.blocks(page))]
INNER = {block.where: source for block, source in PROGRAMS if db.kind(source) != "server"}
SERVERS = {block.where: source for block, source in PROGRAMS if db.kind(source) == "server"}
SHELL = [block for block in BLOCKS if block.lang in db.SHELL | {"ini"}]
PAGE_NAMES = [str(page.relative_to(ROOT)) for page in db.PAGES]
#: Pages that are test suites: at least this many blocks, and how many Python blocks
#: may be something else than a test module.
SUITES = {"docs/requests.md": (8, 0), "docs/testing.md": (10, 0), "docs/browser.md": (7, 1)}
EXTRAS = set(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
)


def file_name(where: str) -> str:
    return "test_" + re.sub(r"\W", "_", where) + ".py"


def env() -> dict[str, str]:
    paths = [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


# -- the pages --------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGE_NAMES)
def test_every_fence_opens_a_block_that_names_a_known_language(page: str) -> None:
    found = db.blocks(ROOT / page)
    assert db.fence_count(ROOT / page) == 2 * len(found), f"{page}: a fence was missed"
    for block in found:
        assert block.lang in db.LANGUAGES, (
            f"{block.where}: a block in {block.lang or 'no language'!r}; "
            f"use one of {sorted(db.LANGUAGES)} (or give the new kind a rule in docs_blocks.py)"
        )


@pytest.mark.parametrize("page", sorted(SUITES))
def test_the_pages_that_are_test_suites_stay_so(page: str) -> None:
    at_least, others = SUITES[page]
    python = db.programs(db.blocks(ROOT / page))
    assert len(python) >= at_least
    assert sum(db.kind(source) != "tests" for _, source in python) <= others
    assert all(block.lang == "python" for block in db.blocks(ROOT / page) if block.lang != "text")


@pytest.mark.parametrize("where", [block.where for block in BLOCKS if block.foreign])
def test_another_frameworks_block_compiles(where: str) -> None:
    block = next(block for block in BLOCKS if block.where == where)
    assert block.page in db.FOREIGN_PAGES, (
        f"{where}: other frameworks' code belongs on {db.FOREIGN_PAGES}"
    )
    assert block.lang == "python"
    compile(block.code, where, "exec")


def test_the_readme_test_command_is_the_last_line_of_ci() -> None:
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    readme = [line for block in db.blocks(ROOT / "README.md") for line in block.code.splitlines()]
    assert ci[-1] in readme, f".ci/run ends with {ci[-1]!r}, which the README does not show"


def test_getting_started_shows_the_readmes_two_commands() -> None:
    def venv_commands(page: str) -> list[str]:
        return [
            line
            for block in db.blocks(ROOT / page)
            if block.lang in db.SHELL
            for line in block.code.splitlines()
            if line.startswith("python3 -m venv .venv && ")
        ]

    two = venv_commands("README.md")
    assert len(two) == 2, "the README shows two commands, each making its venv"
    assert venv_commands("docs/getting-started.md") == two


def test_the_block_parser_itself() -> None:
    assert db.commands("$ trio-h3 run a:app --port 1 && echo hi\nout put\n") == [
        ["trio-h3", "run", "a:app", "--port", "1"],
        ["echo", "hi"],
    ]
    assert db.trio_h3_argv(["python3", "-m", "trio_h3", "run", "x:y"]) == ["run", "x:y"]
    assert db.pip_extras(["python", "-m", "pip", "install", "-e", ".[test,docs]"]) == [
        "test",
        "docs",
    ]
    assert db.kind("async def test_x(): pass\n") == "tests"
    assert db.kind('if __name__ == "__main__":\n    pass\n') == "server"


# -- Python blocks that are test modules or scripts: one inner pytest run ------------------


@pytest.fixture(scope="module")
def inner(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Run every non-server Python block under pytest-trio; the records per file."""
    folder = tmp_path_factory.mktemp("docs_blocks")
    for where, source in INNER.items():
        (folder / file_name(where)).write_text(source, encoding="utf-8")
    (folder / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n", encoding="utf-8")
    results = folder / "results.jsonl"
    results.touch()
    subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "docs_plugin"),
            *("-p", "no:cacheprovider", "--import-mode=importlib", "-c", "pytest.ini"),
            "--continue-on-collection-errors",
            *("--rootdir", str(folder), str(folder)),
        ],
        cwd=folder,
        env={**env(), "TRIO_H3_DOCS_RESULTS": str(results), "TRIO_H3_DOCS_HANG": "60"},
        capture_output=True,
        timeout=900,
        check=False,
    )
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in results.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        records[entry["file"]].append(entry)
    return records


@pytest.mark.parametrize("where", sorted(INNER))
def test_python_block(where: str, inner: dict[str, list[dict[str, Any]]]) -> None:
    records = inner.get(file_name(where), [])
    hung = [r for r in records if r["event"] == "hung"]
    assert not hung, f"{where}: {hung[0]['name']} still ran after {hung[0]['seconds']} s"
    imported = [r for r in records if r["event"] == "import"]
    if not imported:
        others = [r for rs in inner.values() for r in rs if r["event"] == "hung"]
        pytest.fail(f"{where}: did not run" + (f" ({others[0]['file']} hung)" if others else ""))
    assert imported[0]["outcome"] == "passed", f"{where}: {imported[0]['text']}"
    assert imported[0]["seconds"] < db.BUDGET, (
        f"{where}: importing took {imported[0]['seconds']:.1f} s"
    )
    seconds: dict[str, float] = defaultdict(float)
    for record in records:
        if record["event"] != "test":
            continue
        assert record["outcome"] != "failed", (
            f"{where}: {record['name']} ({record['when']}):\n{record['text']}"
        )
        assert record["outcome"] == "passed", f"{where}: {record['name']} was {record['outcome']}"
        seconds[record["name"]] += record["seconds"]
    if db.kind(INNER[where]) == "tests":
        assert seconds, f"{where}: pytest collected no test from it"
    for name, took in seconds.items():
        assert took < db.BUDGET, (
            f"{where}: {name} took {took:.1f} s of real time; a docs test asks for "
            "pytest-trio's autojump_clock fixture, so virtual time jumps"
        )


# -- Python blocks that are servers: listen, then stop on SIGINT ----------------------------


@pytest.mark.slow
@pytest.mark.parametrize("where", sorted(SERVERS))
def test_server_block(where: str, tmp_path: Path) -> None:
    program = tmp_path / "block.py"
    program.write_text(SERVERS[where], encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "docs_serve.py"), str(program)],
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        while port is None and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                line = process.stdout.readline()
                if not line:
                    break
                match = re.match(r"LISTENING (\d+)", line)
                port = int(match[1]) if match else None
        assert port is not None, f"{where}: never listened\n{process.communicate(timeout=10)[1]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        assert 200 <= status < 500, f"{where}: GET / answered {status}"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, f"{where}: exit status {process.returncode}\n{stderr}"
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# -- shell blocks and systemd units: the commands are checked ------------------------------


def check_trio_h3(where: str, argv: list[str]) -> None:
    parser, flags = build_parser()
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(argv)
    except SystemExit as exit:
        assert exit.code == 0, f"{where}: `trio-h3 {' '.join(argv)}`: {errors.getvalue()}"
        return
    options_for(None, given_options(args, flags))  # the values, as ServeOptions checks them
    module, _, attr = args.app.partition(":")
    if module.split(".")[0] == "examples":
        assert hasattr(importlib.import_module(module), attr), f"{where}: no {args.app}"


@pytest.mark.parametrize("where", [block.where for block in SHELL])
def test_shell_block(where: str) -> None:
    block = next(block for block in SHELL if block.where == where)
    commands = db.unit_commands(block.code) if block.lang == "ini" else db.commands(block.code)
    for command in commands:
        argv = db.trio_h3_argv(command)
        if argv is not None:
            check_trio_h3(where, argv)
        for extra in db.pip_extras(command):
            assert extra in EXTRAS, (
                f"{where}: pip install names an extra [{extra}] that is not in pyproject.toml"
            )
        for script in db.example_scripts(command):
            assert (ROOT / script).is_file(), f"{where}: {script} does not exist"


@pytest.mark.parametrize("where", [block.where for block in BLOCKS if block.lang == "json"])
def test_json_block(where: str) -> None:
    db.json_ok(next(block for block in BLOCKS if block.where == where).code)
