"""Autobahn|Testsuite (all 517 fuzzingclient cases, via kosoku) against the echo example.

Needs ``kosoku`` (a test dependency). The protocol cases (1.x-10.x) take a few seconds;
the 216 permessage-deflate cases (12.x, 13.x), which run since trio-h3 negotiates the
extension, take minutes: each sends 1000 compressed messages of up to 128 KiB, some in
256-byte fragments, and the single-process server spends its time in wsproto's frame
parser and zlib (about 2-4 minutes on a shared 2-core machine).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUNNER = Path(__file__).parent / "autobahn" / "run.py"


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("autobahn_run", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kosoku_is_found_beside_the_interpreter_when_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unactivated venv: venv/bin/python runs pytest, venv/bin is not on PATH.
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    kosoku = bin_dir / "kosoku"
    kosoku.write_text("#!/bin/sh\n")
    kosoku.chmod(0o755)
    on_path = tmp_path / "elsewhere"
    on_path.mkdir()
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", str(on_path))
    runner = load_runner()
    assert runner.find_kosoku() == str(kosoku)
    # Nothing beside the interpreter: PATH is still searched.
    kosoku.unlink()
    (on_path / "kosoku").write_text("#!/bin/sh\n")
    (on_path / "kosoku").chmod(0o755)
    assert runner.find_kosoku() == str(on_path / "kosoku")


@pytest.mark.slow
def test_autobahn_cases_have_no_failures(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(RUNNER), "--outdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts = dict(re.findall(r"([A-Za-z-]+)=(\d+)", result.stdout))
    assert counts["FAILED"] == "0" and counts["ERROR"] == "0", result.stdout
    assert counts["UNIMPLEMENTED"] == "0", result.stdout
    assert int(counts["OK"]) >= 500, result.stdout
    assert int(counts["total"]) == 517
    # Every compression case ran and passed (OK or NON-STRICT), none was skipped.
    index = json.loads((tmp_path / "index.json").read_text())
    compression = {
        case: outcome["behavior"]
        for cases in index.values()
        for case, outcome in cases.items()
        if case.split(".")[0] in ("12", "13")
    }
    assert len(compression) == 216
    assert set(compression.values()) <= {"OK", "NON-STRICT"}, compression
