"""Every Python block of docs/requests.md is a complete test module: run each one's tests."""

from __future__ import annotations

import inspect
import re
import types
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

DOC = Path(__file__).resolve().parent.parent / "docs" / "requests.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```python\n(.*?)^```$", TEXT, re.S | re.M)


def test_the_doc_has_blocks_and_no_others() -> None:
    assert len(BLOCKS) >= 8
    # Every code block is Python and runs here.
    assert TEXT.count("```") == 2 * len(BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block(index: int) -> None:
    module = types.ModuleType(f"docs_requests_block_{index}")
    exec(compile(BLOCKS[index], f"{DOC}:block{index}", "exec"), module.__dict__)
    tests = [
        value
        for name, value in vars(module).items()
        if name.startswith("test_") and inspect.iscoroutinefunction(value)
    ]
    assert tests, f"block {index} defines no test"
    for test in tests:
        clock = MockClock(autojump_threshold=0)
        wanted: dict[str, Any] = {}
        if "autojump_clock" in inspect.signature(test).parameters:
            wanted["autojump_clock"] = clock
        trio.run(partial(test, **wanted), clock=clock)
