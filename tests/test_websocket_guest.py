"""A WebSocket handler is a guest: whatever it raises ends only its own session.

Every kind of ``BaseException`` a handler can raise (``sys.exit``, ``KeyboardInterrupt``,
``GeneratorExit``, a custom ``BaseException``, a ``BaseExceptionGroup``, a
``trio.Cancelled`` saved from a scope long gone) is raised before ``accept()``, after it,
and after ``close()``. Each time a canary WebSocket and a canary SSE stream on the same
server must not notice, the error must be logged with its traceback, and the server must
go on serving; ``KeyboardInterrupt`` and ``SystemExit`` must also ask for a graceful
shutdown (which a real server then performs).
"""

from __future__ import annotations

import logging
import sys

import pytest
import trio
import trio.testing
from helpers import RunServer
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from trio_h3 import H3, H3Event, SSEWriter
from trio_h3.testing import TestClient
from trio_h3.websocket import WebSocket

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")


class GuestError(BaseException):
    """A BaseException that no library knows about."""


async def stray_cancelled() -> trio.Cancelled:
    """A real ``trio.Cancelled``, caught inside a scope that is over by the time it is raised."""
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as exc:
            return exc
    raise AssertionError("the checkpoint was not cancelled")


async def make_exception(kind: str) -> BaseException:
    if kind == "sys_exit":
        try:
            sys.exit(3)
        except SystemExit as exc:
            return exc
    if kind == "keyboard_interrupt":
        return KeyboardInterrupt()
    if kind == "generator_exit":
        return GeneratorExit()
    if kind == "custom":
        return GuestError("a custom BaseException")
    if kind == "group":
        return BaseExceptionGroup("two failures", [GuestError("one"), KeyError("two")])
    if kind == "stray_cancelled":
        return await stray_cancelled()
    raise AssertionError(kind)


KINDS = ["sys_exit", "keyboard_interrupt", "generator_exit", "custom", "group", "stray_cancelled"]
EXITS = {"sys_exit", "keyboard_interrupt"}
LOGGED_TYPE: dict[str, type[BaseException]] = {
    "sys_exit": SystemExit,
    "keyboard_interrupt": KeyboardInterrupt,
    "generator_exit": GeneratorExit,
    "custom": GuestError,
    "group": BaseExceptionGroup,
    "stray_cancelled": trio.Cancelled,
}


def make_app() -> H3:
    app = H3()

    @app.ws("/echo")
    async def echo(ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    @app.ws("/fail/:kind/:when")
    async def failing(ws: WebSocket) -> None:
        exc = await make_exception(ws.event.params["kind"])
        when = ws.event.params["when"]
        if when in ("after_accept", "after_close"):
            await ws.accept()
            await ws.send("accepted")
        if when == "after_close":
            await ws.close(4000, "handler closed")
        raise exc

    async def tick(writer: SSEWriter) -> None:
        count = 0
        while True:
            await writer.send(str(count))
            count += 1
            await trio.sleep(1)

    @app.get("/ticks")
    async def ticks(event: H3Event) -> None:
        event.start_sse()
        event.set_stream_callback(tick)

    @app.get("/health")
    async def health(event: H3Event) -> str:
        return "ok"

    return app


def code_of(exc: ConnectionClosed) -> int:
    assert exc.reason is not None
    return exc.reason.code


def guest_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "trio_h3" and r.levelno >= logging.ERROR]


@pytest.mark.parametrize("when", ["before_accept", "after_accept", "after_close"])
@pytest.mark.parametrize("kind", KINDS)
async def test_handler_base_exception_ends_only_its_session(
    kind: str,
    when: str,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trio_h3")
    path = f"/fail/{kind}/{when}"
    async with TestClient(make_app(), ws_ping_interval=None) as client:
        async with client.websocket("/echo") as canary, client.sse("/ticks") as ticks:
            await canary.send("before")
            assert await canary.receive() == "before"
            assert (await ticks.next_event()).data == "0"

            if when == "before_accept":
                with pytest.raises(ConnectionRejected) as rejected:
                    async with client.websocket(path):
                        pass
                assert rejected.value.status_code == 500
                assert rejected.value.body == b'{"status": 500, "message": "Internal Server Error"}'
            else:
                async with client.websocket(path) as ws:
                    assert await ws.receive() == "accepted"
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.receive()
                expected = 1011 if when == "after_accept" else 4000
                assert code_of(closed.value) == expected

            # The canaries noticed nothing.
            await canary.send("after")
            assert await canary.receive() == "after"
            assert canary.closed is None
            assert (await ticks.next_event()).data == "1"
            assert not ticks.ended

        # The server goes on serving.
        async with client.websocket("/echo") as again:
            await again.send("still serving")
            assert await again.receive() == "still serving"
        assert (await client.get("/health")).text == "ok"
        assert client.state.shutdown_requested.is_set() is (kind in EXITS)
        assert not client.state.shutting_down.is_set()  # asked for, not forced

    errors = guest_errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is not None
    assert type(errors[0].exc_info[1]) is LOGGED_TYPE[kind]
    assert "WebSocket handler" in errors[0].getMessage()
    assert f"({path})" in errors[0].getMessage()
    assert "Traceback" in caplog.text
    if kind in EXITS:
        assert client.state.shutdown_reason.startswith(LOGGED_TYPE[kind].__name__)


async def test_a_real_cancellation_still_cancels_the_handler(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    """Catching BaseException must not swallow the session's own cancellation."""
    app = H3()
    cancelled = trio.Event()

    @app.ws("/ws", ping_interval=None)
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async with TestClient(app) as client:
        async with client.websocket("/ws") as ws:
            await ws.disconnect()  # the session cancels the handler
            with trio.fail_after(5):
                await cancelled.wait()
    assert guest_errors(caplog) == []
    assert not client.state.shutdown_requested.is_set()


# ----------------------------------------------------------------------------- real sockets


@pytest.mark.parametrize("kind", ["stray_cancelled", "custom", "generator_exit", "group"])
async def test_real_server_keeps_serving(
    kind: str, running_server: RunServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(make_app(), ws_ping_interval=None) as server:
        url = f"ws://{server.host}:{server.port}"
        async with open_websocket_url(f"{url}/echo") as canary:
            async with open_websocket_url(f"{url}/fail/{kind}/after_accept") as ws:
                assert await ws.get_message() == "accepted"
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert code_of(closed.value) == 1011
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(f"{url}/fail/{kind}/before_accept"):
                    pass
            assert rejected.value.status_code == 500
            await canary.send_message("after")
            assert await canary.get_message() == "after"
        async with open_websocket_url(f"{url}/echo") as again:
            await again.send_message("again")
            assert await again.get_message() == "again"
        assert not server.stopped.is_set()
    assert len(guest_errors(caplog)) == 2


@pytest.mark.parametrize("kind", ["sys_exit", "keyboard_interrupt"])
async def test_exit_in_a_handler_shuts_a_real_server_down_gracefully(
    kind: str, running_server: RunServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    async with running_server(app, ws_ping_interval=None, stream_shutdown_grace=0.5) as server:
        url = f"ws://{server.host}:{server.port}"
        async with open_websocket_url(f"{url}/echo") as canary:
            await canary.send_message("hi")
            assert await canary.get_message() == "hi"
            async with open_websocket_url(f"{url}/fail/{kind}/after_accept") as ws:
                assert await ws.get_message() == "accepted"
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
                assert code_of(closed.value) == 1011
            # The graceful shutdown that follows says goodbye to the canary with 1001.
            with trio.fail_after(5), pytest.raises(ConnectionClosed) as goodbye:
                await canary.get_message()
            assert code_of(goodbye.value) == 1001
        with trio.fail_after(10):
            await server.stopped.wait()
    messages = [r.getMessage() for r in guest_errors(caplog)]
    assert any("starting a graceful shutdown" in m for m in messages), messages
