"""The SSE stream lifecycle (issue 3, points 1-9) through TestClient, under MockClock.

Every test here runs on ``autojump_clock``: sleeps and timeouts cost no real time, so
heartbeats, send timeouts and grace periods are checked at their exact virtual times.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import pytest
import trio
import trio.testing
from helpers import read_until_eof
from trio.testing import MockClock

from trio_h3 import (
    H3,
    CloseReason,
    H3Event,
    Next,
    Response,
    SSEEvent,
    SSEWriter,
    StreamClosed,
)
from trio_h3.testing import ServerSentEvent, SSEParser, SSEStream, TestClient

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


@dataclass
class Probe:
    """What a stream callback saw, recorded for the test to assert on."""

    writers: list[SSEWriter] = field(default_factory=list)
    started: trio.Event = field(default_factory=trio.Event)
    ended: trio.Event = field(default_factory=trio.Event)
    reasons: list[CloseReason | None] = field(default_factory=list)
    on_close_calls: int = 0
    cancelled: list[str] = field(default_factory=list)
    notes: list[Any] = field(default_factory=list)

    @property
    def writer(self) -> SSEWriter:
        return self.writers[0]

    def watch(self, writer: SSEWriter) -> None:
        """Record ``writer`` and register an on_close hook that sets ``ended``."""
        self.writers.append(writer)

        def closed() -> None:
            self.on_close_calls += 1
            self.reasons.append(writer.close_reason)
            self.ended.set()

        writer.on_close(closed)
        self.started.set()

    async def wait_ended(self, timeout: float = 120) -> CloseReason | None:
        with trio.fail_after(timeout):
            await self.ended.wait()
        return self.reasons[-1]


def sse_app(callback: Callable[..., Awaitable[None]], *args: Any, **sse_options: Any) -> H3:
    app = H3()

    @app.get("/events")
    async def events(event: H3Event) -> None:
        event.start_sse(**sse_options)
        event.set_stream_callback(callback, *args)

    return app


def inline_app(body: Callable[[SSEWriter], Awaitable[None]], **sse_options: Any) -> H3:
    app = H3()

    @app.get("/events")
    async def events(event: H3Event) -> None:
        async with event.sse(**sse_options) as writer:
            await body(writer)

    return app


def assert_clean_end(stream: SSEStream) -> None:
    """The body ended with its terminating chunk (h11 saw EndOfMessage)."""
    assert stream.ended
    assert stream.response.complete
    assert stream.raw.endswith(b"\n\n") or stream.raw == b""


# -- 1. errors, arguments, context passing ------------------------------------------------


def test_set_stream_callback_before_start_sse_is_an_error() -> None:
    event = H3Event("GET", b"/events", [])

    async def cb(writer: SSEWriter) -> None:
        pass

    with pytest.raises(RuntimeError, match="start_sse"):
        event.set_stream_callback(cb)


def test_start_sse_twice_is_an_error() -> None:
    event = H3Event("GET", b"/events", [])
    event.start_sse()
    with pytest.raises(RuntimeError, match="already"):
        event.start_sse()


def test_second_stream_callback_is_an_error() -> None:
    event = H3Event("GET", b"/events", [])
    event.start_sse()

    async def cb(writer: SSEWriter) -> None:
        pass

    event.set_stream_callback(cb)
    with pytest.raises(RuntimeError, match="already"):
        event.set_stream_callback(cb)


@pytest.mark.parametrize(
    "options",
    [{"ping_interval": 0}, {"ping_interval": -1}, {"send_timeout": 0}, {"retry": -5}],
)
def test_bad_sse_options_are_value_errors(options: dict[str, Any]) -> None:
    event = H3Event("GET", b"/events", [])
    name = next(iter(options))
    with pytest.raises(ValueError, match=name):
        event.start_sse(**options)


async def test_misuse_in_a_handler_is_a_500_not_a_crash(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    app = H3()

    async def cb(writer: SSEWriter) -> None:
        pass

    @app.get("/no-start")
    async def no_start(event: H3Event) -> None:
        event.set_stream_callback(cb)

    @app.get("/twice")
    async def twice(event: H3Event) -> None:
        event.start_sse()
        event.start_sse()

    async with TestClient(app) as client:
        for path in ("/no-start", "/twice"):
            response = await client.get(path)
            assert response.status == 500
            assert response.json()["status"] == 500
        assert (await client.get("/no-start")).status == 500


async def test_callback_gets_writer_and_args_and_the_request(autojump_clock: MockClock) -> None:
    probe = Probe()
    app = H3()
    marker = object()

    async def cb(writer: SSEWriter, number: int, obj: object) -> None:
        probe.watch(writer)
        event = writer.event
        probe.notes.append(
            (
                number,
                obj,
                event.params,
                event.query.get("q"),
                event.headers.get("x-token"),
                event.context.get("user"),
                writer.last_event_id,
            )
        )
        await writer.send("ok")

    async def auth(event: H3Event, next: Next) -> Any:
        event.context["user"] = "alice"
        return await next()

    app.use(auth)

    @app.get("/rooms/:room/events")
    async def events(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(cb, 42, marker)

    async with TestClient(app) as client:
        async with client.sse(
            "/rooms/lobby/events?q=hi",
            headers={"x-token": "t0k", "last-event-id": "17"},
        ) as stream:
            assert (await stream.next_event()).data == "ok"
        await probe.wait_ended()
    assert probe.notes == [(42, marker, {"room": "lobby"}, "hi", "t0k", "alice", "17")]


async def test_last_event_id_is_none_on_first_connect(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def cb(writer: SSEWriter) -> None:
        probe.notes.append(writer.last_event_id)

    async with TestClient(sse_app(cb)) as client:
        async with client.sse("/events") as stream:
            await stream.read_until_end()
    assert probe.notes == [None]


async def test_resume_from_last_event_id(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        start = int(writer.last_event_id or -1) + 1
        for i in range(start, 5):
            await writer.send(SSEEvent(data=f"item {i}", id=str(i)))

    async with TestClient(sse_app(cb)) as client:
        async with client.sse("/events") as stream:
            first = await stream.next_event()
            second = await stream.next_event()
            await stream.disconnect()
        assert [first.id, second.id] == ["0", "1"]
        assert stream.last_event_id == "1"
        async with client.sse("/events", headers={"last-event-id": "1"}) as stream:
            events = await stream.read_until_end()
    assert [e.id for e in events] == ["2", "3", "4"]


# -- 2. the head ----------------------------------------------------------------------------


async def test_head_is_sent_before_any_event(autojump_clock: MockClock) -> None:
    gate = trio.Event()

    async def cb(writer: SSEWriter) -> None:
        await gate.wait()
        await writer.send("first")

    async with TestClient(sse_app(cb)) as client:
        with trio.fail_after(10):
            async with client.sse("/events") as stream:
                # The head arrived although the callback has not written anything.
                assert stream.status == 200
                assert stream.raw == b""
                gate.set()
                assert (await stream.next_event()).data == "first"


async def test_sse_headers_exactly(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        await writer.send("x")

    async with TestClient(sse_app(cb), server_header=None) as client:
        async with client.sse("/events") as stream:
            headers = stream.headers
            await stream.read_until_end()
    assert stream.status == 200
    assert headers.get_all("content-type") == [SSE_CONTENT_TYPE]
    assert headers.get_all("cache-control") == ["no-cache"]
    assert headers.get_all("x-accel-buffering") == ["no"]
    assert "content-length" not in headers
    assert headers.get_all("transfer-encoding") == ["chunked"]
    # Nothing hop-by-hop from the SSE layer (forbidden on HTTP/2 behind a proxy).
    assert "connection" not in headers
    assert "keep-alive" not in headers
    assert sorted(headers.keys()) == sorted(
        ["content-type", "cache-control", "x-accel-buffering", "date", "transfer-encoding"]
    )


async def test_start_sse_headers_override_and_add(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        await writer.send("x")

    app = sse_app(cb, headers={"cache-control": "no-cache, no-transform", "x-extra": "1"})
    async with TestClient(app) as client:
        async with client.sse("/events") as stream:
            await stream.read_until_end()
    assert stream.headers.get_all("cache-control") == ["no-cache, no-transform"]
    assert stream.headers.get("x-extra") == "1"
    assert stream.headers.get("content-type") == SSE_CONTENT_TYPE


async def test_retry_option_is_sent_first(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        await writer.send("x")

    async with TestClient(sse_app(cb, retry=2500)) as client:
        async with client.sse("/events") as stream:
            event = await stream.next_event()
            assert stream.raw.startswith(b"retry: 2500\n\n")
    assert event.retry == 2500


async def test_http_1_0_stream_is_close_delimited(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        await writer.send("one")
        await writer.send("two")

    async with TestClient(sse_app(cb)) as client:
        raw = await client.open_stream()
        await raw.send_all(b"GET /events HTTP/1.0\r\n\r\n")
        with trio.fail_after(10):
            data = await read_until_eof(raw)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in head.lower()
    assert b"content-length" not in head.lower()
    # No chunk framing: the bytes are the events themselves, ended by the close.
    assert body == b"data: one\n\ndata: two\n\n"


async def test_middleware_and_on_response_see_the_sse_response(autojump_clock: MockClock) -> None:
    seen: list[Any] = []

    async def on_response(event: H3Event, response: Response) -> None:
        seen.append((response.status, response.headers.get("content-type")))
        response.headers.set("x-hook", "on_response")

    app = H3(on_response=on_response)

    async def middleware(event: H3Event, next: Next) -> Any:
        value = await next()
        seen.append(("middleware", event.sse_started, value))
        event.response_headers.set("x-middleware", "yes")
        return value

    app.use(middleware)

    async def cb(writer: SSEWriter) -> None:
        await writer.send("x")

    @app.get("/events")
    async def events(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(cb)

    async with TestClient(app) as client:
        async with client.sse("/events") as stream:
            assert [e.data for e in await stream.read_until_end()] == ["x"]
    assert seen == [("middleware", True, None), (200, SSE_CONTENT_TYPE)]
    assert stream.headers.get("x-hook") == "on_response"
    assert stream.headers.get("x-middleware") == "yes"


async def test_handler_may_return_an_error_response_instead_of_streaming(
    autojump_clock: MockClock,
) -> None:
    ran = []

    async def cb(writer: SSEWriter) -> None:
        ran.append(True)

    app = H3()

    @app.get("/events")
    async def events(event: H3Event) -> Response:
        event.start_sse()
        event.set_stream_callback(cb)
        return Response(b"no", 401)

    async with TestClient(app) as client:
        response = await client.get("/events")
    assert response.status == 401
    assert response.content == b"no"
    assert ran == []


# -- 3. disconnect cancels the callback and everything it started ------------------------------


async def test_disconnect_cancels_callback_and_its_tasks(autojump_clock: MockClock) -> None:
    probe = Probe()
    child_started = trio.Event()

    async def child() -> None:
        try:
            child_started.set()
            await trio.sleep_forever()
        finally:
            probe.cancelled.append("child")

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child)
                await writer.send("hello")
                await trio.sleep_forever()
        finally:
            probe.cancelled.append("callback")
            probe.notes.append(trio.current_time())

    async with TestClient(sse_app(cb, ping_interval=None)) as client:
        async with client.sse("/events") as stream:
            assert (await stream.next_event()).data == "hello"
            await child_started.wait()
            left_at = trio.current_time()
            await stream.disconnect()
            assert await probe.wait_ended() is CloseReason.CLIENT_DISCONNECTED
        assert sorted(probe.cancelled) == ["callback", "child"]
        # At once, not after some polling interval (MockClock: no time passed).
        assert probe.notes == [left_at]
        writer = probe.writer
        assert writer.closed
        assert writer.disconnected.is_set()
        assert probe.on_close_calls == 1
        await wait_no_streams(client)


async def test_disconnect_while_blocked_in_a_send(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        big = "x" * 4096
        while True:
            await writer.send(big)

    async with TestClient(sse_app(cb, ping_interval=None), buffer_size=8192) as client:
        async with client.sse("/events") as stream:
            await stream.next_event()
            await trio.testing.wait_all_tasks_blocked()
            await stream.disconnect()
            assert await probe.wait_ended(5) is CloseReason.CLIENT_DISCONNECTED
        assert probe.writer.disconnected.is_set()
        await wait_no_streams(client)


async def test_send_after_disconnect_raises_stream_closed(autojump_clock: MockClock) -> None:
    probe = Probe()
    errors: list[StreamClosed] = []

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.send("x")
        # Shield the callback so it outlives the disconnect and tries again.
        with trio.CancelScope(shield=True):
            await writer.disconnected.wait()
            try:
                await writer.send("late")
            except StreamClosed as exc:
                errors.append(exc)

    async with TestClient(sse_app(cb)) as client:
        async with client.sse("/events") as stream:
            await stream.next_event()
            await stream.disconnect()
        await probe.wait_ended()
    assert len(errors) == 1
    assert errors[0].reason == CloseReason.CLIENT_DISCONNECTED


# -- 4. callback ends: error, return, close() ----------------------------------------------------


async def test_callback_error_is_logged_and_stream_ends_cleanly(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    probe = Probe()

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.send("before")
        raise KeyError("boom in callback")

    caplog.set_level(logging.DEBUG, logger="trio_h3")
    async with TestClient(sse_app(cb)) as client:
        async with client.sse("/events") as stream:
            events = await stream.read_until_end()
        assert await probe.wait_ended() is CloseReason.CALLBACK_ERROR
    assert [e.data for e in events] == ["before"]
    assert_clean_end(stream)
    errors = [r for r in caplog.records if r.name == "trio_h3" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], KeyError)
    assert "boom in callback" in caplog.text
    assert "Traceback" in caplog.text


async def test_callback_error_leaves_other_streams_alone(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    app = H3()

    async def steady(writer: SSEWriter) -> None:
        for i in range(20):
            await writer.send(str(i))
            await trio.sleep(1)

    async def failing(writer: SSEWriter) -> None:
        await writer.send("about to fail")
        await trio.sleep(3.5)
        raise RuntimeError("only this stream fails")

    @app.get("/steady")
    async def steady_route(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(steady)

    @app.get("/failing")
    async def failing_route(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(failing)

    async with TestClient(app) as client:
        async with client.sse("/steady") as good, client.sse("/failing") as bad:
            assert (await bad.next_event()).data == "about to fail"
            assert await bad.read_until_end() == []
            assert_clean_end(bad)
            assert [e.data for e in await good.read_until_end()] == [str(i) for i in range(20)]
            assert_clean_end(good)
        # The server still serves new streams.
        async with client.sse("/steady") as again:
            assert (await again.next_event()).data == "0"
    assert "only this stream fails" in caplog.text


async def test_callback_returning_ends_cleanly(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.send("a")
        await writer.send_json({"b": [1, 2]}, event="json", id="2")
        await writer.comment("note")

    async with TestClient(sse_app(cb)) as client:
        async with client.sse("/events") as stream:
            events = await stream.read_until_end()
        assert await probe.wait_ended() is CloseReason.COMPLETED
    assert events == [
        ServerSentEvent(data="a"),
        ServerSentEvent(data='{"b":[1,2]}', event="json", id="2"),
    ]
    assert events[1].json() == {"b": [1, 2]}
    assert stream.comments == ["note"]
    assert_clean_end(stream)
    assert probe.writer.events_sent == 2
    assert not probe.writer.disconnected.is_set()


async def test_close_early_then_send_raises_stream_closed(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.send("last")
        await writer.close()
        probe.notes.append(writer.closed)
        with pytest.raises(StreamClosed) as info:
            await writer.send("never")
        probe.notes.append(info.value.reason)
        await writer.close()  # a second close is a no-op

    async with TestClient(sse_app(cb)) as client:
        async with client.sse("/events") as stream:
            events = await stream.read_until_end()
        assert await probe.wait_ended() is CloseReason.CLOSED_BY_APP
    assert [e.data for e in events] == ["last"]
    assert b"never" not in stream.raw
    assert_clean_end(stream)
    assert probe.notes == [True, CloseReason.CLOSED_BY_APP]
    assert probe.on_close_calls == 1


async def test_close_from_another_task_cancels_the_callback(autojump_clock: MockClock) -> None:
    probe = Probe()
    holder: list[SSEWriter] = []

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        holder.append(writer)
        try:
            await writer.send("x")
            await trio.sleep_forever()
        finally:
            probe.cancelled.append("callback")

    async with TestClient(sse_app(cb, ping_interval=None)) as client:
        async with client.sse("/events") as stream:
            await stream.next_event()
            await holder[0].close()
            assert await stream.read_until_end() == []
            assert_clean_end(stream)
        assert await probe.wait_ended() is CloseReason.CLOSED_BY_APP
    assert probe.cancelled == ["callback"]


async def test_bad_event_field_in_callback_is_a_callback_error(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    probe = Probe()

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.send("fine")
        await writer.send(SSEEvent(data="x", event="a\ndata: injected"))

    async with TestClient(sse_app(cb)) as client:
        async with client.sse("/events") as stream:
            events = await stream.read_until_end()
        assert await probe.wait_ended() is CloseReason.CALLBACK_ERROR
    assert [e.data for e in events] == ["fine"]
    assert b"injected" not in stream.raw
    assert "'event'" in caplog.text


# -- 5. close reasons and on_close -------------------------------------------------------------


async def test_on_close_runs_once_for_every_ending(autojump_clock: MockClock) -> None:
    """Drive every ending, and check its reason and a single on_close call."""
    results: dict[str, tuple[CloseReason | None, int]] = {}

    async def run(name: str, cb: Callable[[SSEWriter], Awaitable[None]], **kw: Any) -> None:
        probe = Probe()

        async def wrapped(writer: SSEWriter) -> None:
            probe.watch(writer)
            writer.on_close(lambda: probe.notes.append("second hook"))
            await cb(writer)

        client_kw = kw.pop("client", {})
        async with TestClient(sse_app(wrapped, **kw), **client_kw) as client:
            async with client.sse("/events") as stream:
                await probe.started.wait()
                if name == "client_disconnected":
                    await stream.disconnect()
                elif name == "server_shutdown":
                    await client.shutdown()
                elif name != "send_timeout":
                    await stream.read_until_end()
                await probe.wait_ended()
        assert probe.notes == ["second hook"]
        results[name] = (probe.reasons[0], probe.on_close_calls)

    async def returns(writer: SSEWriter) -> None:
        await writer.send("x")

    async def closes(writer: SSEWriter) -> None:
        await writer.close()

    async def waits(writer: SSEWriter) -> None:
        await trio.sleep_forever()

    async def raises(writer: SSEWriter) -> None:
        raise ValueError("x")

    async def floods(writer: SSEWriter) -> None:
        while True:
            await writer.send("x" * 1000)

    await run("completed", returns)
    await run("closed_by_app", closes)
    await run("client_disconnected", waits)
    await run("callback_error", raises)
    await run("send_timeout", floods, send_timeout=5, client={"buffer_size": 2048})
    await run("server_shutdown", waits)
    assert results == {name: (CloseReason(name), 1) for name in results}
    # "cancelled" (an enclosing scope) can only reach the inline form: its own test
    # (test_regressions_sse.py) drives it through a timeout middleware.
    assert set(results) | {"cancelled"} == {reason.value for reason in CloseReason}


async def test_on_close_is_shielded_and_async(autojump_clock: MockClock) -> None:
    probe = Probe()
    done: list[float] = []

    async def cleanup() -> None:
        start = trio.current_time()
        await trio.sleep(2)  # would raise Cancelled if the hook were not shielded
        done.append(trio.current_time() - start)

    async def cb(writer: SSEWriter) -> None:
        writer.on_close(cleanup)
        probe.watch(writer)
        await trio.sleep_forever()

    async with TestClient(sse_app(cb)) as client:
        async with client.sse("/events") as stream:
            await probe.started.wait()
            await stream.disconnect()
        await probe.wait_ended()
    assert done == [2]


async def test_on_close_hook_gets_args_and_sees_the_reason(autojump_clock: MockClock) -> None:
    seen: list[Any] = []

    async def hook(writer: SSEWriter, tag: str) -> None:
        seen.append((tag, writer.closed, writer.close_reason))

    async def cb(writer: SSEWriter) -> None:
        writer.on_close(hook, writer, "tag")
        await writer.send("x")

    async with TestClient(sse_app(cb)) as client:
        async with client.sse("/events") as stream:
            await stream.read_until_end()
    assert seen == [("tag", True, CloseReason.COMPLETED)]


async def test_hanging_on_close_is_bounded_by_its_deadline(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    probe = Probe()
    after: list[str] = []

    async def hangs() -> None:
        await trio.sleep_forever()

    def fails() -> None:
        raise RuntimeError("hook failed")

    async def cb(writer: SSEWriter) -> None:
        writer.on_close(hangs)
        writer.on_close(fails)
        writer.on_close(lambda: after.append("later hooks still run"))
        probe.watch(writer)
        await writer.send("x")

    async with TestClient(sse_app(cb), on_close_timeout=3) as client:
        start = trio.current_time()
        async with client.sse("/events") as stream:
            await stream.read_until_end()
        await probe.wait_ended()
        assert trio.current_time() - start == pytest.approx(3)
        await wait_no_streams(client)
    assert after == ["later hooks still run"]
    assert "deadline" in caplog.text
    assert "hook failed" in caplog.text


async def test_on_close_exactly_once_even_when_close_races_disconnect(
    autojump_clock: MockClock,
) -> None:
    probe = Probe()

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.send("x")
        await writer.disconnected.wait()
        await writer.close()

    async with TestClient(sse_app(cb)) as client:
        async with client.sse("/events") as stream:
            await stream.next_event()
            await stream.disconnect()
        await probe.wait_ended()
        await wait_no_streams(client)
    assert probe.on_close_calls == 1
    assert probe.reasons == [CloseReason.CLIENT_DISCONNECTED]


# -- 6. heartbeat ----------------------------------------------------------------------------


async def test_heartbeat_only_after_idle_and_reset_by_data(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        await writer.send("a")  # t=0
        await trio.sleep(4)
        await writer.send("b")  # t=4: the idle timer restarts here
        await trio.sleep_forever()

    async with TestClient(sse_app(cb, ping_interval=5)) as client:
        start = trio.current_time()
        async with client.sse("/events") as stream:
            assert (await stream.next_event()).data == "a"
            assert (await stream.next_event()).data == "b"
            assert trio.current_time() - start == pytest.approx(4)
            assert stream.comments == []
            assert await stream.wait_comment(1) == "ping"
            assert trio.current_time() - start == pytest.approx(9)
            await stream.wait_comment(2)
            assert trio.current_time() - start == pytest.approx(14)
            await stream.wait_comment(3)
            assert trio.current_time() - start == pytest.approx(19)
    assert b": ping\n\n" in stream.raw


async def test_busy_stream_sends_no_heartbeat(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        for i in range(60):
            await writer.send(str(i))
            await trio.sleep(1)

    async with TestClient(sse_app(cb, ping_interval=2)) as client:
        async with client.sse("/events") as stream:
            events = await stream.read_until_end()
    assert len(events) == 60
    assert stream.comments == []


async def test_heartbeat_default_interval_is_15s(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        await trio.sleep_forever()

    async with TestClient(sse_app(cb)) as client:
        start = trio.current_time()
        async with client.sse("/events") as stream:
            await stream.wait_comment()
            assert trio.current_time() - start == pytest.approx(15)


async def test_heartbeat_server_option(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        await trio.sleep_forever()

    async with TestClient(sse_app(cb), sse_ping_interval=3) as client:
        start = trio.current_time()
        async with client.sse("/events") as stream:
            await stream.wait_comment()
            assert trio.current_time() - start == pytest.approx(3)


@pytest.mark.parametrize("where", ["start_sse", "server"])
async def test_heartbeat_none_disables(where: str, autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        await trio.sleep_forever()

    if where == "start_sse":
        client = TestClient(sse_app(cb, ping_interval=None))
    else:
        client = TestClient(sse_app(cb), sse_ping_interval=None)
    async with client:
        async with client.sse("/events") as stream:
            with trio.move_on_after(3600):
                await stream.wait_comment()
            assert stream.comments == []
            assert stream.raw == b""


# -- 7. send timeout and slow clients ------------------------------------------------------------


async def test_client_that_stops_reading_is_dropped_with_send_timeout(
    autojump_clock: MockClock,
) -> None:
    probe = Probe()
    buffer = 4096

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        while True:
            await writer.send("x" * 500)
            probe.notes.append(writer.bytes_sent)

    app = sse_app(cb, ping_interval=None)
    async with TestClient(app, buffer_size=buffer, send_timeout=7) as client:
        async with client.sse("/events") as stream:
            await probe.started.wait()
            # Never read: the server's writes block once the buffer is full.
            await trio.testing.wait_all_tasks_blocked()
            blocked_at = trio.current_time()
            assert await probe.wait_ended() is CloseReason.SEND_TIMEOUT
            assert trio.current_time() - blocked_at == pytest.approx(7)
            writer = probe.writer
            # Memory stayed bounded: only what fits in the buffer was ever written.
            assert writer.bytes_sent <= buffer + 600
            assert stream.response._connection.stream._in.limit == buffer
            assert len(stream.response._connection.stream._in.buffer) <= buffer
            assert not writer.disconnected.is_set()
        await wait_no_streams(client)


async def test_send_timeout_also_bounds_heartbeats(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        await trio.sleep_forever()

    app = sse_app(cb, ping_interval=1, send_timeout=10)
    async with TestClient(app, buffer_size=64) as client:
        async with client.sse("/events") as stream:
            await probe.started.wait()
            # Never read: heartbeats fill the buffer, then one blocks.
            assert await probe.wait_ended(600) is CloseReason.SEND_TIMEOUT
            assert stream.response._connection.stream._in.buffer.count(b"ping") <= 8
        await wait_no_streams(client)


async def test_send_timeout_none_lets_a_slow_reader_catch_up(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        for i in range(50):
            await writer.send(f"{i}" * 100)

    app = sse_app(cb, ping_interval=None, send_timeout=None)
    async with TestClient(app, buffer_size=1024) as client:
        async with client.sse("/events") as stream:
            await trio.sleep(3600)  # a very slow reader
            events = await stream.read_until_end()
    assert len(events) == 50
    assert_clean_end(stream)


async def test_slow_reader_within_send_timeout_is_kept(autojump_clock: MockClock) -> None:
    async def cb(writer: SSEWriter) -> None:
        for i in range(20):
            await writer.send(str(i) * 400)

    app = sse_app(cb, ping_interval=None, send_timeout=5)
    async with TestClient(app, buffer_size=1024) as client:
        raw = await client.open_stream()
        await raw.send_all(b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n")
        reader = h11.Connection(h11.CLIENT)
        reader.send(h11.Request(method="GET", target="/events", headers=[("host", "t")]))
        reader.send(h11.EndOfMessage())
        body = b""
        while True:
            await trio.sleep(4)  # slow, but each blocked write completes within 5 s
            data = await raw.receive_some(65536)
            reader.receive_data(data)
            while (h11_event := reader.next_event()) is not h11.NEED_DATA:
                if isinstance(h11_event, h11.Data):
                    body += h11_event.data
                elif isinstance(h11_event, h11.EndOfMessage):
                    break
            if isinstance(h11_event, h11.EndOfMessage) or not data:
                break
    assert isinstance(h11_event, h11.EndOfMessage)
    events = SSEParser().feed(body)
    assert [e.data for e in events] == [str(i) * 400 for i in range(20)]


# -- 8. HEAD ----------------------------------------------------------------------------------


async def test_head_sends_headers_only_and_never_runs_callback(autojump_clock: MockClock) -> None:
    ran: list[bool] = []

    async def cb(writer: SSEWriter) -> None:
        ran.append(True)
        await trio.sleep_forever()

    app = H3()

    @app.on("HEAD", "/events")
    @app.get("/events")
    async def events(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(cb)

    async with TestClient(app) as client:
        with trio.fail_after(5):
            response = await client.head("/events")
        await trio.testing.wait_all_tasks_blocked()
        assert client.state.streams == set()
    assert response.status == 200
    assert response.content == b""
    assert response.headers.get("content-type") == SSE_CONTENT_TYPE
    assert "content-length" not in response.headers
    assert ran == []


# -- 9. graceful shutdown ----------------------------------------------------------------------


async def test_shutdown_farewell_then_cancel_after_grace(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.send("hello")
        await writer.shutting_down.wait()
        probe.notes.append(trio.current_time())
        await writer.send(SSEEvent(data="bye", event="shutdown", retry=5000))
        try:
            await trio.sleep_forever()
        finally:
            probe.cancelled.append("callback")

    async with TestClient(sse_app(cb), stream_shutdown_grace=2) as client:
        async with client.sse("/events") as stream:
            assert (await stream.next_event()).data == "hello"
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.shutdown)
                farewell = await stream.next_event()
                rest = await stream.read_until_end()
                assert trio.current_time() - start == pytest.approx(2)
                # A browser closes its end once the body ended; shutdown then completes.
                await stream.disconnect()
            assert trio.current_time() - start == pytest.approx(2)
        assert await probe.wait_ended() is CloseReason.SERVER_SHUTDOWN
    assert probe.notes == [start]
    assert farewell == ServerSentEvent(data="bye", event="shutdown", retry=5000)
    assert rest == []
    assert_clean_end(stream)
    assert probe.cancelled == ["callback"]


async def test_stream_that_finishes_within_grace_completes(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def cb(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.shutting_down.wait()
        await writer.send("bye")

    async with TestClient(sse_app(cb), stream_shutdown_grace=10) as client:
        async with client.sse("/events") as stream:
            await probe.started.wait()
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.shutdown)
                assert [e.data for e in await stream.read_until_end()] == ["bye"]
                await stream.disconnect()
            assert trio.current_time() == start  # not after the 10 s grace
        assert await probe.wait_ended() is CloseReason.COMPLETED
    assert_clean_end(stream)


async def test_shutdown_never_hangs_on_streams(autojump_clock: MockClock) -> None:
    """Many streams: some ignore shutting_down, one shields itself, one is stalled."""
    probes = [Probe() for _ in range(5)]

    async def ignores(writer: SSEWriter, probe: Probe) -> None:
        probe.watch(writer)
        await writer.send("x")
        await trio.sleep_forever()

    async def stalled(writer: SSEWriter, probe: Probe) -> None:
        probe.watch(writer)
        while True:
            await writer.send("y" * 1000)

    async def stubborn(writer: SSEWriter, probe: Probe) -> None:
        probe.watch(writer)
        with trio.CancelScope(shield=True):
            await trio.sleep(10_000)

    app = H3()

    @app.get("/events/:n")
    async def events(event: H3Event) -> None:
        n = int(event.params["n"])
        cb = stalled if n == 3 else stubborn if n == 4 else ignores
        event.start_sse(ping_interval=None)
        event.set_stream_callback(cb, probes[n])

    options: dict[str, Any] = {
        "stream_shutdown_grace": 1,
        "shutdown_timeout": 5,
        "send_timeout": 3600,
    }
    async with TestClient(app, buffer_size=4096, **options) as client:
        async with trio.open_nursery() as nursery:
            streams = []

            async def open_one(n: int) -> None:
                async with client.sse(f"/events/{n}") as stream:
                    streams.append(stream)
                    await trio.sleep_forever()

            for n in range(5):
                nursery.start_soon(open_one, n)
            for probe in probes:
                await probe.started.wait()
            await trio.testing.wait_all_tasks_blocked()
            start = trio.current_time()
            with trio.fail_after(30):
                await client.shutdown()
            assert trio.current_time() - start <= 5 + 0.01
            nursery.cancel_scope.cancel()
        for probe in probes[:4]:
            assert await probe.wait_ended(1) is CloseReason.SERVER_SHUTDOWN
        # Only the stream that shielded itself is still there: shutdown did not wait.
        (left,) = client.state.streams
        assert left.reason is probes[4].writer.close_reason is CloseReason.SERVER_SHUTDOWN


@pytest.mark.parametrize("form", ["callback", "inline"])
async def test_stream_requested_during_shutdown_is_refused_with_503(
    form: str, autojump_clock: MockClock
) -> None:
    """A handler still busy when shutdown began must not start a stream that would be cut."""
    ran: list[str] = []
    release = trio.Event()

    async def body(writer: SSEWriter) -> None:
        ran.append("body")
        await writer.send("should not be sent")
        await trio.sleep_forever()

    app = H3()

    @app.get("/events")
    async def events(event: H3Event) -> None:
        await release.wait()  # slow auth, say: the request is in flight at shutdown
        if form == "callback":
            event.start_sse()
            event.set_stream_callback(body)
        else:
            async with event.sse() as writer:
                await body(writer)

    options: dict[str, Any] = {"stream_shutdown_grace": 1, "shutdown_timeout": 100}
    async with TestClient(app, **options) as client:
        responses = []

        async def get() -> None:
            responses.append(await client.get("/events"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(get)
            await trio.testing.wait_all_tasks_blocked()
            shutdown_started = trio.current_time()
            nursery.start_soon(client.shutdown)
            await trio.sleep(2)  # past the grace: open streams were cancelled
            release.set()
        # The shutdown waited for the in-flight request, not for shutdown_timeout.
        assert trio.current_time() - shutdown_started == pytest.approx(2)
    assert len(responses) == 1
    assert responses[0].status == 503
    assert responses[0].headers.get("retry-after") == "1"
    assert ran == []


# -- the inline form ---------------------------------------------------------------------------


async def test_inline_form_streams_and_ends_cleanly(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def body(writer: SSEWriter) -> None:
        probe.watch(writer)
        for i in range(3):
            await writer.send(SSEEvent(data=f"tick {i}", id=str(i)))
            await trio.sleep(1)

    async with TestClient(inline_app(body, retry=1000)) as client:
        async with client.sse("/events") as stream:
            assert stream.headers.get("content-type") == SSE_CONTENT_TYPE
            assert "content-length" not in stream.headers
            events = await stream.read_until_end()
        assert await probe.wait_ended() is CloseReason.COMPLETED
    assert [e.data for e in events] == ["tick 0", "tick 1", "tick 2"]
    assert stream.retry == 1000
    assert_clean_end(stream)
    assert probe.on_close_calls == 1


async def test_inline_form_disconnect_cancels_the_block(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    probe = Probe()
    after_block: list[bool] = []

    async def body(writer: SSEWriter) -> None:
        probe.watch(writer)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep_forever)
                await writer.send("x")
                await trio.sleep_forever()
        finally:
            probe.cancelled.append("block")

    app = H3()

    @app.get("/events")
    async def events(event: H3Event) -> None:
        async with event.sse(ping_interval=None) as writer:
            await body(writer)
        after_block.append(True)

    caplog.set_level(logging.DEBUG, logger="trio_h3")
    async with TestClient(app) as client:
        async with client.sse("/events") as stream:
            await stream.next_event()
            await stream.disconnect()
        assert await probe.wait_ended() is CloseReason.CLIENT_DISCONNECTED
        await wait_no_streams(client)
    assert probe.cancelled == ["block"]
    assert after_block == [True]
    assert probe.writer.disconnected.is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_inline_form_disconnect_during_a_send_is_not_an_error(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    probe = Probe()

    async def body(writer: SSEWriter) -> None:
        probe.watch(writer)
        while True:
            await writer.send("z" * 2000)

    async with TestClient(inline_app(body, ping_interval=None), buffer_size=4096) as client:
        async with client.sse("/events") as stream:
            await stream.next_event()
            await trio.testing.wait_all_tasks_blocked()
            await stream.disconnect()
        assert await probe.wait_ended() is CloseReason.CLIENT_DISCONNECTED
        await wait_no_streams(client)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_inline_form_error_is_logged_and_stream_ends_cleanly(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    probe = Probe()

    async def body(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.send("before")
        raise ZeroDivisionError("inline boom")

    async with TestClient(inline_app(body)) as client:
        async with client.sse("/events") as stream:
            events = await stream.read_until_end()
        assert await probe.wait_ended() is CloseReason.CALLBACK_ERROR
        async with client.sse("/events") as again:
            assert (await again.next_event()).data == "before"
    assert [e.data for e in events] == ["before"]
    assert_clean_end(stream)
    assert "inline boom" in caplog.text
    assert "Traceback" in caplog.text


async def test_inline_form_close_then_send_raises(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def body(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.send("only")
        await writer.close()
        with pytest.raises(StreamClosed):
            await writer.send("never")
        probe.notes.append("checked")

    async with TestClient(inline_app(body)) as client:
        async with client.sse("/events") as stream:
            events = await stream.read_until_end()
        assert await probe.wait_ended() is CloseReason.CLOSED_BY_APP
    assert [e.data for e in events] == ["only"]
    assert probe.notes == ["checked"]
    assert_clean_end(stream)


async def test_inline_form_heartbeat_and_send_timeout(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def body(writer: SSEWriter) -> None:
        probe.watch(writer)
        await trio.sleep_forever()

    async with TestClient(inline_app(body, ping_interval=2, send_timeout=5)) as client:
        start = trio.current_time()
        async with client.sse("/events") as stream:
            await stream.wait_comment(2)
            assert trio.current_time() - start == pytest.approx(4)
            await stream.disconnect()
        await probe.wait_ended()

    stalled = Probe()

    async def floods(writer: SSEWriter) -> None:
        stalled.watch(writer)
        while True:
            await writer.send("q" * 500)

    app = inline_app(floods, ping_interval=None, send_timeout=5)
    async with TestClient(app, buffer_size=2048) as client:
        async with client.sse("/events"):
            assert await stalled.wait_ended() is CloseReason.SEND_TIMEOUT
        await wait_no_streams(client)


async def test_inline_form_head_does_not_stream(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    ran: list[str] = []

    async def body(writer: SSEWriter) -> None:
        ran.append("entered")
        await writer.send("x")
        ran.append("sent")
        await trio.sleep_forever()

    app = H3()

    @app.on("HEAD", "/events")
    async def events(event: H3Event) -> None:
        async with event.sse() as writer:
            await body(writer)

    async with TestClient(app) as client:
        with trio.fail_after(5):
            response = await client.head("/events")
        await wait_no_streams(client)
    assert response.status == 200
    assert response.content == b""
    assert response.headers.get("content-type") == SSE_CONTENT_TYPE
    assert "sent" not in ran
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_inline_form_shutdown(autojump_clock: MockClock) -> None:
    probe = Probe()

    async def body(writer: SSEWriter) -> None:
        probe.watch(writer)
        await writer.shutting_down.wait()
        await writer.send("bye")
        await trio.sleep_forever()

    async with TestClient(inline_app(body), stream_shutdown_grace=2) as client:
        async with client.sse("/events") as stream:
            await probe.started.wait()
            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.shutdown)
                assert [e.data for e in await stream.read_until_end()] == ["bye"]
                assert trio.current_time() - start == pytest.approx(2)
                await stream.disconnect()
            assert trio.current_time() - start == pytest.approx(2)
        assert await probe.wait_ended() is CloseReason.SERVER_SHUTDOWN
    assert_clean_end(stream)


# -- the counter ------------------------------------------------------------------------


async def stream_counter(writer: SSEWriter) -> None:
    for i in range(31):
        await writer.send(SSEEvent(data=str(i), event="counter", id=str(i)))
        await trio.sleep(1)
    await writer.send(SSEEvent(data="Counter complete!", event="done"))


async def test_thirty_second_counter_runs_in_virtual_time(autojump_clock: MockClock) -> None:
    app = H3()

    @app.get("/events")
    async def counter(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(stream_counter)

    virtual = trio.current_time()
    async with TestClient(app) as client:
        async with client.sse("/events") as stream:
            events = [event async for event in stream]
    assert trio.current_time() - virtual == pytest.approx(31)
    assert events[:31] == [
        ServerSentEvent(data=str(i), event="counter", id=str(i)) for i in range(31)
    ]
    assert events[31] == ServerSentEvent(data="Counter complete!", event="done", id="30")
    assert len(events) == 32
    assert_clean_end(stream)


# -- helpers ------------------------------------------------------------------------------------


async def wait_no_streams(client: TestClient) -> None:
    """Wait until the server holds no stream (bounded: a leak fails the test)."""
    with trio.fail_after(60):
        while client.state.streams:
            await trio.sleep(0.01)
