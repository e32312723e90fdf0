"""Every SSE example, driven through TestClient under MockClock (and sse_proxy over sockets).

Time in the examples is virtual here: ``autojump_clock`` (pytest-trio's
``MockClock(autojump_threshold=0)``) jumps to the next deadline whenever every task is
blocked, so a 30-second counter finishes in milliseconds of real time.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import trio
import trio.testing
from helpers import IO_BOUND, running_server
from httpx_sse import aconnect_sse

from trio_h3 import H3, Broadcast, CloseReason, H3Event, SSEEvent, SSEWriter
from trio_h3.testing import ServerSentEvent, SSEStream, TestClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` by path (the examples are scripts, not a package)."""
    module_name = f"trio_h3_example_{name}"
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


sse_counter = load_example("sse_counter")
sse_minimal = load_example("sse_minimal")
sse_text = load_example("sse_text")
sse_context = load_example("sse_context")
sse_errors = load_example("sse_errors")
sse_chat = load_example("sse_chat")
sse_proxy = load_example("sse_proxy")


async def events_until(stream: SSEStream, name: str) -> list[ServerSentEvent]:
    """Events up to and including the first one of type ``name``."""
    events = []
    while True:
        event = await stream.next_event()
        events.append(event)
        if event.event == name:
            return events


# -- every example: runnable module, HTML page with EventSource ------------------------


@pytest.mark.parametrize(
    ("module", "stream_path"),
    [
        (sse_counter, "/events"),
        (sse_minimal, "/events"),
        (sse_text, "/answer"),
        (sse_context, "/rooms/"),
        (sse_errors, "/events/fail"),
        (sse_chat, "/events"),
        (sse_proxy, "/events"),
    ],
    ids=lambda value: getattr(value, "__name__", value),
)
async def test_each_example_serves_an_eventsource_page(
    module: ModuleType, stream_path: str, autojump_clock: trio.testing.MockClock
) -> None:
    assert isinstance(module.app, H3)
    assert module.__file__ is not None
    assert 'if __name__ == "__main__":' in Path(module.__file__).read_text()
    async with TestClient(module.app) as client:
        response = await client.get("/")
    assert response.status == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "new EventSource(" in response.text
    assert stream_path in response.text


async def test_autojump_clock_fixture_drives_the_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert trio.lowlevel.current_clock() is autojump_clock
    start = trio.current_time()
    await trio.sleep(3600)
    assert trio.current_time() - start == 3600


# -- sse_counter ---------------------------------------------------------------------


async def test_counter_sends_31_counts_then_done_in_30_virtual_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with TestClient(sse_counter.app) as client:
        async with client.sse("/events") as stream:
            assert stream.status == 200
            assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
            virtual_start = trio.current_time()
            events = await stream.read_until_end()
            virtual_elapsed = trio.current_time() - virtual_start
            assert stream.response.complete  # ended with the terminating chunk

    assert len(events) == 32
    counts, done = events[:31], events[31]
    assert [(e.event, e.data, e.id) for e in counts] == [
        ("counter", str(i), str(i)) for i in range(31)
    ]
    assert (done.event, done.data) == ("done", "Counter complete!")
    assert virtual_elapsed == 30  # the seed's 30 seconds, in virtual time


async def test_counter_one_event_per_second(autojump_clock: trio.testing.MockClock) -> None:
    async with TestClient(sse_counter.app) as client:
        async with client.sse("/events") as stream:
            start = trio.current_time()
            arrivals = []
            for _ in range(4):
                await stream.next_event()
                arrivals.append(trio.current_time() - start)
    assert arrivals == [0, 1, 2, 3]


# -- sse_minimal ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/events", "/inline"])
async def test_minimal_callback_and_inline_forms_send_the_same_stream(
    path: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestClient(sse_minimal.app) as client:
        async with client.sse(path) as stream:
            events = await stream.read_until_end()
            assert stream.response.complete
    assert [(e.event, e.data) for e in events] == [
        ("message", "Hello"),
        ("message", "from"),
        ("message", "trio-h3!"),
        ("done", "bye"),
    ]


# -- sse_text ------------------------------------------------------------------------


async def test_text_streams_tokens_that_rebuild_the_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    question = "What is Trio?"
    async with TestClient(sse_text.app) as client:
        async with client.sse("/answer", params={"q": question}) as stream:
            events = await stream.read_until_end()
    tokens = [e.data for e in events if e.event == "token"]
    done = events[-1]
    assert all(e.event == "token" for e in events[:-1])
    assert "".join(tokens) == sse_text.compose_answer(question)
    assert any("\n" in token for token in tokens)  # sent as several data: lines
    assert tokens[1].startswith(" ")  # leading whitespace survives the wire
    assert done.event == "done"
    assert done.json() == {"tokens": len(tokens), "chars": len("".join(tokens))}


async def test_text_generation_stops_when_the_reader_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with TestClient(sse_text.app) as client:
        async with client.sse("/answer", params={"q": "hi"}) as stream:
            await stream.next_event()
            await stream.next_event()
            assert client.state.statistics()["streams"] == 1
            start = trio.current_time()
            await stream.disconnect()
            await trio.testing.wait_all_tasks_blocked()
            assert client.state.statistics()["streams"] == 0
            assert trio.current_time() - start < sse_text.TOKEN_DELAY


@pytest.mark.parametrize("query", [{}, {"q": "   "}, {"q": "x" * 501}])
async def test_text_rejects_a_missing_or_huge_question(
    query: dict[str, str], autojump_clock: trio.testing.MockClock
) -> None:
    async with TestClient(sse_text.app) as client:
        response = await client.get("/answer", params=query)
    assert response.status == 400
    assert response.headers["content-type"].startswith("application/json")


# -- sse_context ---------------------------------------------------------------------


async def test_context_uses_params_query_and_resumes_after_last_event_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Behave like EventSource: reconnect with Last-Event-ID until ``done``."""
    received: list[ServerSentEvent] = []
    connections = 0
    last_event_id: str | None = None
    async with TestClient(sse_context.app) as client:
        while not received or received[-1].event != "done":
            headers = {"last-event-id": last_event_id} if last_event_id is not None else {}
            async with client.sse(
                "/rooms/kitchen/events", params={"count": "12", "batch": "5"}, headers=headers
            ) as stream:
                connections += 1
                received.extend(await stream.read_until_end())
                assert stream.response.complete
                assert stream.retry == sse_context.RETRY_MS
                last_event_id = stream.last_event_id
    updates = [e for e in received if e.event == "update"]
    assert connections == 3
    assert [e.id for e in updates] == [str(i) for i in range(12)]
    assert [e.json() for e in updates][:2] == [
        {"room": "kitchen", "seq": 0, "text": "update 0 in kitchen"},
        {"room": "kitchen", "seq": 1, "text": "update 1 in kitchen"},
    ]
    assert received[-1].data == "all 12 updates of kitchen sent"


@pytest.mark.parametrize(
    ("last_event_id", "first_seq"), [(None, 0), ("3", 4), ("not-a-number", 0), ("-5", 0)]
)
async def test_context_first_event_follows_last_event_id(
    last_event_id: str | None, first_seq: int, autojump_clock: trio.testing.MockClock
) -> None:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    async with TestClient(sse_context.app) as client:
        async with client.sse("/rooms/lobby/events", headers=headers) as stream:
            first = await stream.next_event()
    assert first.id == str(first_seq)
    assert first.json()["seq"] == first_seq


async def test_context_after_the_last_id_only_done(autojump_clock: trio.testing.MockClock) -> None:
    async with TestClient(sse_context.app) as client:
        async with client.sse(
            "/rooms/lobby/events?count=3", headers={"Last-Event-ID": "2"}
        ) as stream:
            events = await stream.read_until_end()
    assert [e.event for e in events] == ["done"]


@pytest.mark.parametrize("query", ["count=abc", "count=0", "batch=-1", "count=10001"])
async def test_context_bad_query_is_a_400_before_streaming(
    query: str, autojump_clock: trio.testing.MockClock
) -> None:
    async with TestClient(sse_context.app) as client:
        response = await client.get(f"/rooms/lobby/events?{query}")
    assert response.status == 400
    assert "Query parameter" in response.json()["message"]


# -- sse_errors ----------------------------------------------------------------------


async def test_errors_failure_is_logged_and_contained(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.INFO)
    results: dict[str, list[ServerSentEvent]] = {}
    complete: dict[str, bool] = {}

    async with TestClient(sse_errors.app) as client:

        async def read(path: str) -> None:
            async with client.sse(path) as stream:
                results[path] = await stream.read_until_end()
                complete[path] = stream.response.complete

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, "/events/fail")
            nursery.start_soon(read, "/events/ok")
        # The server is still answering afterwards.
        page = await client.get("/")
        unavailable = await client.get("/events/unavailable")

    failed, ok = results["/events/fail"], results["/events/ok"]
    assert [e.data for e in failed] == ["0", "1", "2"]
    assert complete["/events/fail"]  # a clean end, terminating chunk included
    assert [e.data for e in ok] == [str(i) for i in range(sse_errors.OK_TICKS)] + ["all ticks sent"]
    assert complete["/events/ok"]
    assert page.status == 200
    assert unavailable.status == 503
    assert unavailable.json()["message"] == "The event source is unavailable"

    errors = [r for r in caplog.records if r.name == "trio_h3" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    assert str(errors[0].exc_info[1]) == "the data source failed"
    closes = sorted(r.getMessage() for r in caplog.records if r.name == "examples.sse_errors")
    assert closes == [
        "stream /events/fail ended: callback_error after 3 events",
        f"stream /events/ok ended: completed after {sse_errors.OK_TICKS + 1} events",
    ]


# -- sse_chat ------------------------------------------------------------------------


async def test_chat_every_subscriber_receives_a_posted_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub: Broadcast[object] = Broadcast()
    app = sse_chat.create_app(hub)
    async with TestClient(app) as client:
        async with client.sse("/events") as alice, client.sse("/events") as bob:
            assert (await alice.next_event()).event == "joined"
            assert (await bob.next_event()).json() == {"subscribers": 2}
            response = await client.post("/messages", json={"user": "ada", "text": "hi all"})
            assert response.status == 201
            message_id = response.json()["id"]
            for stream in (alice, bob):
                message = await stream.next_event()
                assert message.event == "message"
                assert message.id == message_id
                assert message.json() == {"user": "ada", "text": "hi all"}
        stats = (await client.get("/stats")).json()
    assert stats["published"] == 1 and stats["delivered"] == 2 and stats["dropped"] == 0


async def test_chat_a_reconnecting_client_gets_what_it_missed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with TestClient(sse_chat.create_app(Broadcast())) as client:
        async with client.sse("/events") as tab:
            await tab.next_event()  # joined
            await client.post("/messages", json={"user": "ada", "text": "one"})
            assert (await tab.next_event()).json()["text"] == "one"
            last_id = tab.last_event_id
        # The tab is offline while two messages are posted, then EventSource reconnects.
        for text in ("two", "three"):
            await client.post("/messages", json={"user": "bob", "text": text})
        async with client.sse("/events", headers={"Last-Event-ID": str(last_id)}) as tab:
            assert (await tab.next_event()).event == "joined"
            assert [(await tab.next_event()).json()["text"] for _ in range(2)] == ["two", "three"]
        async with client.sse("/events", headers={"Last-Event-ID": "from-before"}) as tab:
            await tab.next_event()  # joined
            assert (await tab.next_event()).event == "reset"  # the page says so


async def test_chat_slow_subscriber_is_dropped_and_never_blocks_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub: Broadcast[object] = Broadcast()
    send_timeout = 10.0
    app = sse_chat.create_app(hub, max_buffer=4, send_timeout=send_timeout)
    # A small socket buffer: the slow client's socket fills after a few messages.
    async with TestClient(app, buffer_size=256) as client:
        async with client.sse("/events") as fast, client.sse("/events") as slow:
            await fast.next_event()
            await slow.next_event()  # joined; from here on `slow` never reads
            start = trio.current_time()
            subscribers = []
            for n in range(1, 41):
                await client.post("/messages", json={"user": "u", "text": f"m{n}"})
                subscribers.append(hub.statistics().subscribers)
                message = await fast.next_event()
                assert message.json()["text"] == f"m{n}"
            # Publishing never waited on the stuck client: no virtual time passed.
            assert trio.current_time() == start
            dropped_at = subscribers.index(1)
            assert subscribers[:dropped_at] == [2] * dropped_at
            assert subscribers[dropped_at:] == [1] * (40 - dropped_at)
            assert 4 < dropped_at < 30  # socket buffer + 4 queued, then dropped
            stats = hub.statistics()
            assert (stats.subscribers, stats.dropped, stats.published) == (1, 1, 40)

            # The stuck stream is ended by send_timeout; the fast one lives on.
            streams = list(client.state.streams)
            await trio.sleep(send_timeout + 1)
            assert client.state.statistics()["streams"] == 1
            assert sorted(str(s.reason) for s in streams) == ["None", "send_timeout"]
            await client.post("/messages", json={"user": "u", "text": "still here"})
            assert (await fast.next_event()).json()["text"] == "still here"


async def next_count(stream: SSEStream) -> int:
    """The next event, which must be a ``members`` event: its count."""
    event = await stream.next_event()
    assert event.event == "members"
    count: int = event.json()["members"]
    return count


async def test_chat_member_count_follows_joins_and_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with TestClient(sse_chat.create_app(Broadcast())) as client:
        async with client.sse("/events?members=1") as alice:
            assert (await alice.next_event()).json() == {"subscribers": 1}
            assert await next_count(alice) == 1
            # Without ?members=1 a client is counted, but gets messages only (as before).
            async with client.sse("/events") as bob:
                assert (await bob.next_event()).json() == {"subscribers": 2}
                assert await next_count(alice) == 2
                async with client.sse("/events?members=1") as carol:
                    assert (await carol.next_event()).json() == {"subscribers": 3}
                    assert await next_count(carol) == 3
                    assert await next_count(alice) == 3
                    posted = await client.post("/messages", json={"user": "ada", "text": "hi"})
                    for stream in (alice, bob, carol):
                        message = await stream.next_event()
                        assert (message.event, message.id) == ("message", posted.json()["id"])
                assert await next_count(alice) == 2
            assert await next_count(alice) == 1
            # The counts carry no id (two came after the message): a reconnect resumes
            # after the last message.
            assert alice.last_event_id == posted.json()["id"]
            assert b"event: members\nid:" not in alice.raw
        stats = (await client.get("/stats")).json()
    # The room's counters count messages only (the counts go over a hub of their own).
    assert (stats["published"], stats["delivered"]) == (1, 3)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"user": "ada"},
        {"user": "", "text": "x"},
        {"user": "ada", "text": 3},
        {"user": "a" * 41, "text": "x"},
    ],
)
async def test_chat_rejects_malformed_messages(
    body: object, autojump_clock: trio.testing.MockClock
) -> None:
    hub: Broadcast[object] = Broadcast()
    async with TestClient(sse_chat.create_app(hub)) as client:
        response = await client.post("/messages", json=body)
    assert response.status == 400
    assert hub.statistics().published == 0


# -- sse_proxy: in memory, under MockClock -------------------------------------------------


class FakeUpstreamBody(httpx.AsyncByteStream):
    """An upstream SSE body: a retry frame, then a tick a second; records its closing."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.closed = trio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        n = self.first
        while True:
            yield f"event: tick\nid: {n}\ndata: tick {n}\n\n".encode()
            n += 1
            await trio.sleep(1)

    async def aclose(self) -> None:
        self.closed.set()


async def test_proxy_relays_and_cancels_upstream_on_disconnect(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bodies: list[FakeUpstreamBody] = []
    seen_headers: list[httpx.Headers] = []

    async def upstream(request: httpx.Request) -> httpx.Response:
        seen_headers.append(request.headers)
        body = FakeUpstreamBody(int(request.headers.get("last-event-id", "-1")) + 1)
        bodies.append(body)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    app = sse_proxy.create_app(
        "http://upstream.test/events", transport=httpx.MockTransport(upstream)
    )
    async with TestClient(app) as client:
        async with client.sse("/events", headers={"Last-Event-ID": "41"}) as stream:
            events = [await stream.next_event() for _ in range(3)]
            assert [(e.event, e.id, e.data) for e in events] == [
                ("tick", "42", "tick 42"),
                ("tick", "43", "tick 43"),
                ("tick", "44", "tick 44"),
            ]
            assert not bodies[0].closed.is_set()
            left_at = trio.current_time()
            await stream.disconnect()
            await bodies[0].closed.wait()
            # At once, not at the upstream's next tick a second later.
            assert trio.current_time() == left_at
            await trio.testing.wait_all_tasks_blocked()
            assert client.state.statistics()["streams"] == 0
    assert seen_headers[0]["last-event-id"] == "41"
    assert seen_headers[0]["accept"] == "text/event-stream"


async def test_proxy_upstream_failure_becomes_an_error_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def not_sse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"not": "sse"})

    for handler in (refuse, not_sse):
        app = sse_proxy.create_app("http://upstream.test/", transport=httpx.MockTransport(handler))
        async with TestClient(app) as client:
            async with client.sse("/events") as stream:
                events = await stream.read_until_end()
                assert stream.response.complete
        assert [e.event for e in events] == ["upstream_error"]
        assert events[0].json()["error"]


async def test_proxy_upstream_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(503)

    monkeypatch.setenv(sse_proxy.UPSTREAM_ENV, "http://from-env.test/stream")
    app = sse_proxy.create_app(transport=httpx.MockTransport(record))
    async with TestClient(app) as client:
        async with client.sse("/events") as stream:
            events = await stream.read_until_end()
    assert seen == ["http://from-env.test/stream"]
    assert events[0].json() == {"error": "upstream answered 503"}


async def test_proxy_demo_source_resumes_after_last_event_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with TestClient(sse_proxy.app) as client:
        async with client.sse("/source", headers={"Last-Event-ID": "9"}) as stream:
            first, second = await stream.next_event(), await stream.next_event()
    assert (first.id, first.data, second.id) == ("10", "tick 10", "11")


# -- sse_proxy: real sockets, httpx-sse as the end client ---------------------------------


async def test_proxy_over_real_sockets_upstream_sees_the_client_leave() -> None:
    upstream_closed = trio.Event()
    upstream_reasons: list[CloseReason | None] = []
    upstream_last_ids: list[str | None] = []
    upstream = H3()

    @upstream.get("/events")
    async def numbers(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(count_then_wait)

    async def count_then_wait(writer: SSEWriter) -> None:
        def record() -> None:
            upstream_reasons.append(writer.close_reason)
            upstream_closed.set()

        writer.on_close(record)
        upstream_last_ids.append(writer.last_event_id)
        first = int(writer.last_event_id or "-1") + 1
        for n in range(first, first + 3):
            await writer.send(SSEEvent(data=f"n{n}", event="number", id=str(n)))
        await trio.sleep_forever()  # only the client leaving ends this stream

    async with running_server(upstream) as upstream_server:
        proxy_app = sse_proxy.create_app(f"{upstream_server.url}/events")
        async with running_server(proxy_app) as proxy_server:
            async with httpx.AsyncClient(trust_env=False) as client:
                async with aconnect_sse(
                    client, "GET", f"{proxy_server.url}/events", headers={"Last-Event-ID": "6"}
                ) as source:
                    assert source.response.status_code == 200
                    received = []
                    # Leave by cancellation rather than `break`: the exception unwinds
                    # httpx's chain of async generators, so none is left unfinished.
                    with trio.CancelScope() as reading:
                        async for sse in source.aiter_sse():
                            received.append((sse.event, sse.id, sse.data))
                            if len(received) == 3:
                                reading.cancel()
                    assert not upstream_closed.is_set()
            # The end client has left: the proxy cancels its relay, which closes the
            # upstream request, which the upstream server sees as a disconnect.
            with trio.fail_after(IO_BOUND):
                await upstream_closed.wait()

    assert received == [("number", "7", "n7"), ("number", "8", "n8"), ("number", "9", "n9")]
    assert upstream_last_ids == ["6"]
    assert upstream_reasons == [CloseReason.CLIENT_DISCONNECTED]
