"""Fairness between keep-alive connections: the schedule points of the request loop.

A saturated server finds each connection's next request already waiting. The loop
then yields before serving it (so the connections woken from epoll are not overtaken),
and, when that request came sooner after the connection's last response than the
server's running mean, once more, so that those waiting longer go first (the pacing in
trio_h3/server/connection.py). These tests count the connection task's steps between
two pipelined requests over a real socket, with a trio Instrument.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import trio
from helpers import RunServer, exchange, parse_responses, request_bytes

from trio_h3 import H3, H3Event, ServeOptions
from trio_h3.server.state import ServerState

# The socket tests run on both parser backends (conftest.py); the unit test once.
on_both_backends = pytest.mark.usefixtures("backend")

TIMEOUT = 10


class StepCounter(trio.abc.Instrument):
    """How many times each task has been stepped (resumed) by the scheduler."""

    def __init__(self) -> None:
        self.steps: Counter[trio.lowlevel.Task] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task] += 1


def recording_app(counter: StepCounter, seen: dict[str, int]) -> H3:
    """``GET /<name>`` records the serving task's step count under ``name``."""
    app = H3()

    @app.get("/:name")
    async def record(event: H3Event) -> str:
        seen[event.params["name"]] = counter.steps[trio.lowlevel.current_task()]
        return "ok"

    return app


async def steps_between_pipelined(running_server: RunServer, turnaround: float) -> int:
    """The connection task's steps from serving ``/a`` to serving the pipelined ``/b``,
    with the server's running mean of turnaround set to ``turnaround`` first."""
    counter = StepCounter()
    seen: dict[str, int] = {}
    trio.lowlevel.add_instrument(counter)
    try:
        with trio.fail_after(TIMEOUT):
            async with running_server(recording_app(counter, seen)) as server:
                server.server.state.turnaround = turnaround
                data = request_bytes("GET", "/a") + request_bytes(
                    "GET", "/b", [("connection", "close")]
                )
                responses, clean = parse_responses(
                    await exchange(server.port, data), ["GET", "GET"]
                )
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert [r.status for r in responses] == [200, 200]
    assert clean
    return seen["b"] - seen["a"]


@on_both_backends
async def test_a_waiting_request_is_served_after_a_schedule_point(
    running_server: RunServer,
) -> None:
    # Mean 0: no request is younger than it, so no pacing; the steps are the write's
    # schedule point and the one before serving a head that was already here.
    assert await steps_between_pipelined(running_server, 0.0) == 2


@on_both_backends
async def test_a_request_younger_than_the_mean_lets_older_ones_go_first(
    running_server: RunServer,
) -> None:
    # Any request is younger than an hour: exactly one schedule point more.
    baseline = await steps_between_pipelined(running_server, 0.0)
    assert await steps_between_pipelined(running_server, 3600.0) == baseline + 1


def test_pace_compares_with_the_running_mean_and_then_updates_it() -> None:
    state = ServerState(H3(), ServeOptions())
    assert state.turnaround == 0.0
    # Younger than the mean (0.0)? No; the mean moves towards the age.
    assert state.pace(0.010) is False
    first = state.turnaround
    assert 0.0 < first < 0.010
    # Younger than the mean now: yes.
    assert state.pace(first / 2) is True
    # Many equal ages: the mean converges on them (an exponential mean).
    for _ in range(1000):
        state.pace(0.002)
    assert math.isclose(state.turnaround, 0.002, rel_tol=1e-6)
    assert state.pace(0.001) is True
    assert state.pace(0.003) is False
