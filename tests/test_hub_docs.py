"""Every Python block of docs/hub.md runs: a complete module, and its tests pass."""

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

DOC = Path(__file__).resolve().parent.parent / "docs" / "hub.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.S | re.M)


def test_the_doc_has_blocks() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block(index: int) -> None:
    module = types.ModuleType(f"docs_hub_block_{index}")
    exec(compile(BLOCKS[index], f"{DOC}:block{index}", "exec"), module.__dict__)
    tests = [
        value
        for name, value in vars(module).items()
        if name.startswith("test_") and inspect.iscoroutinefunction(value)
    ]
    for test in tests:  # a block without a test (Redis) must at least run as a module
        clock = MockClock(autojump_threshold=0)
        wanted: dict[str, Any] = {}
        if "autojump_clock" in inspect.signature(test).parameters:
            wanted["autojump_clock"] = clock
        trio.run(partial(test, **wanted), clock=clock)
