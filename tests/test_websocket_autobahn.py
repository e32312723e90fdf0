"""Autobahn|Testsuite (all 517 fuzzingclient cases, via kosoku) against the echo example.

About ten seconds with eight cases in parallel, so it runs with the normal suite.
Needs ``kosoku`` (a test dependency). permessage-deflate (12.x, 13.x) is reported
UNIMPLEMENTED: trio-websocket does not negotiate it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).parent / "autobahn" / "run.py"


def test_autobahn_cases_have_no_failures(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(RUNNER), "--outdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts = dict(re.findall(r"([A-Za-z-]+)=(\d+)", result.stdout))
    assert counts["FAILED"] == "0" and counts["ERROR"] == "0"
    assert int(counts["OK"]) >= 280, result.stdout
    assert int(counts["total"]) == 517
