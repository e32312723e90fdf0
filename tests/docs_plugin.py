"""A pytest plugin for the inner run of the docs' test modules (tests/test_docs.py).

The docs' Python blocks are written to files and run by a pytest of their own, with
pytest-trio in trio mode, exactly as a reader's copy would run. This plugin records, as
one JSON line per event in ``$TRIO_H3_DOCS_RESULTS``, how each module's import and each
test went and how long each took; a module or test still running after
``$TRIO_H3_DOCS_HANG`` seconds is recorded as hung and the run ends there (the outer
test then says which block hung, rather than timing out as a whole).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

RESULTS = os.environ.get("TRIO_H3_DOCS_RESULTS", "")
HANG = float(os.environ.get("TRIO_H3_DOCS_HANG", "60"))


def record(**entry: Any) -> None:
    with open(RESULTS, "a", encoding="utf-8") as results:
        results.write(json.dumps(entry) + "\n")


@contextmanager
def watchdog(file: str, name: str) -> Iterator[None]:
    def hung() -> None:
        record(event="hung", file=file, name=name, seconds=HANG)
        os._exit(3)

    timer = threading.Timer(HANG, hung)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    if not isinstance(collector, pytest.Module):
        yield
        return
    start = time.perf_counter()
    with watchdog(collector.path.name, "(import)"):
        outcome = yield
    report = outcome.get_result()
    record(
        event="import",
        file=collector.path.name,
        outcome=report.outcome,
        seconds=time.perf_counter() - start,
        text=str(report.longrepr) if report.failed else "",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, Any, None]:
    with watchdog(item.path.name, item.name):
        yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record(
        event="test",
        file=report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1],
        name=report.nodeid.split("::", 1)[-1],
        when=report.when,
        outcome=report.outcome,
        seconds=report.duration,
        text=str(report.longrepr) if report.failed else "",
    )
