"""run_websocket against real clients, through a minimal h11 front end.

The front end here does what the server's connection code does before the hand-off:
read the request head with h11, check it with ``check_upgrade_request`` (answering its
HTTPError), then call ``run_websocket`` with the bytes h11 read past the head. Clients:
trio-websocket, the ``websockets`` library (its sync client, in a worker thread), raw
sockets for the malformed cases.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import h11
import pytest
import trio
import trio.testing
import wsproto
import wsproto.events as wse
from helpers import (
    close_reason,
    count_tasks,
    exchange,
    open_connection,
    open_fds,
    read_until,
    read_until_eof,
    reset,
)
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url
from websockets.exceptions import ConnectionClosed as WsLibClosed
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from trio_h3._guest import Guest
from trio_h3.errors import HTTPError
from trio_h3.types import RequestHead
from trio_h3.websocket import WebSocket, WebSocketClosed, WebSocketOptions
from trio_h3.websocket.handshake import check_upgrade_request
from trio_h3.websocket.session import run_websocket

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")

Handler = Callable[[WebSocket], Awaitable[None]]
NO_PING = WebSocketOptions(ping_interval=None, close_timeout=2.0)


async def serve_stream(
    stream: trio.abc.Stream,
    handler: Handler,
    options: WebSocketOptions = NO_PING,
    shutdown: trio.Event | None = None,
    shutdown_grace: float = 1.0,
) -> None:
    """What the connection code does for a WebSocket route, reduced to the essentials."""
    conn = h11.Connection(h11.SERVER)
    request: h11.Request | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some()
            if not data:
                await stream.aclose()
                return
            conn.receive_data(bytes(data))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage | h11.Data) or event is h11.PAUSED:
            if event is h11.PAUSED or isinstance(event, h11.EndOfMessage):
                break
        else:
            await stream.aclose()
            return
    assert request is not None
    try:
        check_upgrade_request(request.method.decode(), list(request.headers))
    except HTTPError as err:
        body = err.to_json()
        headers = [*err.headers, ("content-length", str(len(body))), ("connection", "close")]
        await stream.send_all(conn.send(h11.Response(status_code=err.status, headers=headers)))
        await stream.send_all(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        await stream.aclose()
        return
    trailing, _closed = conn.trailing_data
    head = RequestHead(request.method, request.target, request.http_version, list(request.headers))
    await run_websocket(
        stream,
        head,
        trailing,
        {"path": request.target.decode()},
        handler,
        options,
        shutdown if shutdown is not None else trio.Event(),
        shutdown_grace,
        guest=Guest(),
    )


async def start_server(
    nursery: trio.Nursery,
    handler: Handler,
    options: WebSocketOptions = NO_PING,
    shutdown: trio.Event | None = None,
    shutdown_grace: float = 1.0,
) -> int:
    listeners = await nursery.start(
        partial(
            trio.serve_tcp,
            partial(
                serve_stream,
                handler=handler,
                options=options,
                shutdown=shutdown,
                shutdown_grace=shutdown_grace,
            ),
            0,
            host="127.0.0.1",
        )
    )
    return int(listeners[0].socket.getsockname()[1])


def code_of(exc: ConnectionClosed) -> int:
    assert exc.reason is not None
    return exc.reason.code


def exception_of(record: logging.LogRecord) -> BaseException | None:
    assert record.exc_info is not None
    return record.exc_info[1]


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


def handshake_bytes(path: str = "/ws", extra: bytes = b"", version: bytes = b"13") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
        b"Sec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n"
    )


def masked_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A single final client frame (masked, as RFC 6455 requires), payload < 126 bytes."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


# ----------------------------------------------------------------------------- trio-websocket


async def test_echo_text_and_binary_with_trio_websocket(nursery: trio.Nursery) -> None:
    port = await start_server(nursery, echo)
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
        await client.send_message("héllo")
        assert await client.get_message() == "héllo"
        await client.send_message(b"\x00\x01\xff")
        assert await client.get_message() == b"\x00\x01\xff"
        await client.send_message("")
        assert await client.get_message() == ""


async def test_one_mebibyte_message_round_trips(nursery: trio.Nursery) -> None:
    port = await start_server(nursery, echo)
    payload = os.urandom(1 << 20)
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws", max_message_size=2 << 20) as client:
        await client.send_message(payload)
        assert await client.get_message() == payload


async def test_oversize_message_closes_with_1009(nursery: trio.Nursery) -> None:
    seen: list[WebSocket] = []
    done = trio.Event()

    async def handler(ws: WebSocket) -> None:
        seen.append(ws)
        try:
            with pytest.raises(WebSocketClosed) as info:
                await ws.receive()
            assert info.value.code == 1009
        finally:
            done.set()

    options = WebSocketOptions(ping_interval=None, max_message_size=1000, close_timeout=2.0)
    port = await start_server(nursery, handler, options)
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
        await client.send_message("x" * 1001)
        with pytest.raises(ConnectionClosed) as closed:
            await client.get_message()
        assert close_reason(closed.value).code == 1009
    with trio.fail_after(5):
        await done.wait()
    assert seen[0].close_code == 1009
    assert seen[0].sent_close is not None and seen[0].sent_close.code == 1009


async def test_abnormal_client_close_raises_from_iteration(nursery: trio.Nursery) -> None:
    outcome: list[BaseException | str] = []
    done = trio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            async for message in ws:
                outcome.append(str(message))
        except WebSocketClosed as exc:
            outcome.append(exc)
            assert ws.close_code == exc.code == 4001
            assert ws.close_reason == exc.close_reason == "bye now"
            assert ws.received_close == (4001, "bye now")
        finally:
            done.set()

    port = await start_server(nursery, handler)
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
        await client.send_message("one")
        await client.aclose(4001, "bye now")
    with trio.fail_after(5):
        await done.wait()
    assert outcome[0] == "one"
    assert isinstance(outcome[1], WebSocketClosed)


async def test_normal_close_ends_iteration_and_code_after_the_loop_runs(
    nursery: trio.Nursery,
) -> None:
    after_loop = trio.Event()
    got: list[str | bytes] = []

    async def handler(ws: WebSocket) -> None:
        async for message in ws:
            got.append(message)
        await trio.sleep(0)  # a checkpoint after the loop must not be cancelled
        assert ws.close_code == 1000
        after_loop.set()

    port = await start_server(nursery, handler)
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
        await client.send_message("a")
        await client.send_message("b")
    with trio.fail_after(5):
        await after_loop.wait()
    assert got == ["a", "b"]


async def test_server_close_code_reaches_the_client(nursery: trio.Nursery) -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.receive()
        await ws.close(4002, "go away")
        assert ws.close_code == 4002
        with pytest.raises(WebSocketClosed):
            await ws.send("too late")  # after close: WebSocketClosed, not a protocol error

    port = await start_server(nursery, handler)
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
        await client.send_message("hi")
        with pytest.raises(ConnectionClosed) as closed:
            await client.get_message()
        assert close_reason(closed.value).code == 4002
        assert close_reason(closed.value).reason == "go away"


async def test_subprotocol_negotiation(nursery: trio.Nursery) -> None:
    offered: list[list[str]] = []

    async def handler(ws: WebSocket) -> None:
        offered.append(ws.subprotocols)
        with pytest.raises(ValueError, match="not offered"):
            await ws.accept(subprotocol="nope")
        await ws.accept(subprotocol="chat.v1", headers={"X-Server": "trio-h3"})
        await ws.send(ws.subprotocol or "")

    port = await start_server(nursery, handler)
    async with open_websocket_url(
        f"ws://127.0.0.1:{port}/ws", subprotocols=["a.v0", "chat.v1"]
    ) as client:
        assert client.subprotocol == "chat.v1"
        assert (b"x-server", b"trio-h3") in client.handshake_headers
        assert await client.get_message() == "chat.v1"
    assert offered == [["a.v0", "chat.v1"]]


async def test_server_ping_waits_for_pong(nursery: trio.Nursery) -> None:
    pinged = trio.Event()

    async def handler(ws: WebSocket) -> None:
        await ws.ping(b"are you there")
        pinged.set()
        await ws.send("after ping")

    port = await start_server(nursery, handler)
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
        assert await client.get_message() == "after ping"
    assert pinged.is_set()


async def test_client_ping_is_answered(nursery: trio.Nursery) -> None:
    port = await start_server(nursery, echo)
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
        with trio.fail_after(5):
            await client.ping(b"abc")


async def test_reject_is_a_plain_http_response(nursery: trio.Nursery) -> None:
    async def handler(ws: WebSocket) -> None:
        if ws.event["path"] != "/ws?token=secret":
            await ws.reject(403, "forbidden")
            with pytest.raises(WebSocketClosed):
                await ws.receive()
            return
        await ws.send("welcome")

    port = await start_server(nursery, handler)
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws"):
            pass
    assert rejected.value.status_code == 403
    assert rejected.value.body == b"forbidden"
    assert (b"content-type", b"text/plain; charset=utf-8") in rejected.value.headers
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws?token=secret") as client:
        assert await client.get_message() == "welcome"


async def test_handler_returning_without_accept_answers_403(nursery: trio.Nursery) -> None:
    async def handler(ws: WebSocket) -> None:
        return

    port = await start_server(nursery, handler)
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws"):
            pass
    assert rejected.value.status_code == 403


async def test_http_error_before_accept_is_answered_with_its_status(
    nursery: trio.Nursery,
) -> None:
    async def handler(ws: WebSocket) -> None:
        raise HTTPError(401, "Who are you?", headers={"WWW-Authenticate": "Bearer"})

    port = await start_server(nursery, handler)
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws"):
            pass
    assert rejected.value.status_code == 401
    assert rejected.value.body == b'{"status": 401, "message": "Who are you?"}'
    assert (b"www-authenticate", b"Bearer") in rejected.value.headers


async def test_handler_error_before_accept_answers_500_and_logs(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(ws: WebSocket) -> None:
        raise RuntimeError("boom before accept")

    port = await start_server(nursery, handler)
    with caplog.at_level(logging.ERROR, logger="trio_h3"):
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(f"ws://127.0.0.1:{port}/ws"):
                pass
    assert rejected.value.status_code == 500
    assert b"boom" not in (rejected.value.body or b"")  # no internals to the client
    assert any("boom before accept" in str(r.exc_info) for r in caplog.records)


async def test_handler_error_after_accept_closes_1011_and_logs(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.receive()
        raise RuntimeError("boom after accept")

    port = await start_server(nursery, handler)
    with caplog.at_level(logging.ERROR, logger="trio_h3"):
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
            await client.send_message("trigger")
            with pytest.raises(ConnectionClosed) as closed:
                await client.get_message()
            assert close_reason(closed.value).code == 1011
        # the server keeps serving
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
            await client.send_message("again")
            with pytest.raises(ConnectionClosed):
                await client.get_message()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all(r.name == "trio_h3" and r.exc_info is not None for r in errors)
    assert errors[0].exc_info is not None
    assert "boom after accept" in str(errors[0].exc_info[1])


async def test_handler_nursery_group_is_unwrapped_in_the_log(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.accept()

        async def fail() -> None:
            raise KeyError("inner")

        async with trio.open_nursery() as inner:
            inner.start_soon(fail)

    port = await start_server(nursery, handler)
    with caplog.at_level(logging.ERROR, logger="trio_h3"):
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
            with pytest.raises(ConnectionClosed) as closed:
                await client.get_message()
            assert close_reason(closed.value).code == 1011
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], KeyError)


# ----------------------------------------------------------------------------- websockets lib


def _websockets_client_session(port: int) -> dict[str, Any]:
    """Runs in a worker thread: the websockets library's sync client."""
    out: dict[str, Any] = {}
    with ws_connect(
        f"ws://127.0.0.1:{port}/ws",
        subprotocols=["chat.v1"],  # type: ignore[list-item]
        max_size=2 << 20,
        open_timeout=5,
        close_timeout=5,
    ) as client:
        out["subprotocol"] = client.subprotocol
        client.send("text ✓")
        out["text"] = client.recv(timeout=5)
        client.send(b"\x00binary")
        out["binary"] = client.recv(timeout=5)
        big = os.urandom(1 << 20)
        client.send(big)
        out["big_ok"] = client.recv(timeout=5) == big
        out["pong"] = client.ping(b"p1").wait(5)
        client.close(code=4005, reason="done")
    return out


async def test_websockets_library_client(nursery: trio.Nursery) -> None:
    closed: list[tuple[int | None, str | None]] = []
    done = trio.Event()

    async def handler(ws: WebSocket) -> None:
        await ws.accept(subprotocol="chat.v1" if "chat.v1" in ws.subprotocols else None)
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            closed.append((ws.close_code, ws.close_reason))
            done.set()

    port = await start_server(nursery, handler)
    out = await trio.to_thread.run_sync(_websockets_client_session, port)
    assert out == {
        "subprotocol": "chat.v1",
        "text": "text ✓",
        "binary": b"\x00binary",
        "big_ok": True,
        "pong": True,
    }
    with trio.fail_after(5):
        await done.wait()
    assert closed == [(4005, "done")]


def _websockets_oversize(port: int) -> tuple[int | None, int | None]:
    with ws_connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5, close_timeout=5) as client:
        client.send("y" * 2000)
        try:
            client.recv(timeout=5)
        except WsLibClosed as exc:
            return (exc.rcvd.code if exc.rcvd else None, exc.sent.code if exc.sent else None)
    return (None, None)


async def test_websockets_library_oversize_gets_1009(nursery: trio.Nursery) -> None:
    options = WebSocketOptions(ping_interval=None, max_message_size=1024, close_timeout=2.0)
    port = await start_server(nursery, echo, options)
    received, _sent = await trio.to_thread.run_sync(_websockets_oversize, port)
    assert received == 1009


def _websockets_rejected(port: int) -> int:
    try:
        with ws_connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5):
            return 0
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_websockets_library_sees_reject_status(nursery: trio.Nursery) -> None:
    async def handler(ws: WebSocket) -> None:
        await ws.reject(429, b"slow down")

    port = await start_server(nursery, handler)
    assert await trio.to_thread.run_sync(_websockets_rejected, port) == 429


# ----------------------------------------------------------------------------- raw sockets


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", b"426"),
        (handshake_bytes(version=b"8"), b"400"),
        (handshake_bytes().replace(b"Sec-WebSocket-Version: 13\r\n", b""), b"400"),
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
            b"400",
        ),
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
            b"400",
        ),
        (handshake_bytes().replace(b"GET", b"POST"), b"400"),
        (handshake_bytes().replace(b"Connection: Upgrade", b"Connection: keep-alive"), b"400"),
    ],
)
async def test_raw_bad_handshakes(
    nursery: trio.Nursery, request_bytes: bytes, status: bytes
) -> None:
    ran = []

    async def handler(ws: WebSocket) -> None:
        ran.append(ws)

    port = await start_server(nursery, handler)
    response = await exchange(port, request_bytes)
    assert response.startswith(b"HTTP/1.1 " + status), response
    if status == b"426":
        assert b"upgrade: websocket" in response.lower()
    assert ran == []


async def test_pipelined_frames_after_the_head_are_not_lost(nursery: trio.Nursery) -> None:
    port = await start_server(nursery, echo)
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    request = client.send(wse.Request(host="127.0.0.1", target="/ws"))
    stream = await open_connection(port)
    async with stream:
        # A frame sent in the same packet as the request, before the 101 came back.
        await stream.send_all(request + masked_frame(b"early"))
        got: list[str] = []
        with trio.fail_after(5):
            while not got:
                data = await stream.receive_some()
                assert data
                client.receive_data(data)
                for event in client.events():
                    if isinstance(event, wse.TextMessage):
                        got.append(event.data)
        assert got == ["early"]


async def test_protocol_error_ends_the_session_quietly(nursery: trio.Nursery) -> None:
    ends: list[int | None] = []
    done = trio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            await ws.receive()
        finally:
            ends.append(ws.close_code)
            done.set()

    port = await start_server(nursery, handler)
    stream = await open_connection(port)
    async with stream:
        await stream.send_all(handshake_bytes())
        await read_until(stream, b"\r\n\r\n")
        # An unmasked frame from a client is a protocol error (RFC 6455 5.1).
        await stream.send_all(b"\x81\x02hi")
        with trio.fail_after(5):
            await read_until_eof(stream)
    with trio.fail_after(5):
        await done.wait()
    assert ends == [1002]


async def test_abrupt_disconnect_cancels_a_handler_not_reading(nursery: trio.Nursery) -> None:
    cancelled = trio.Event()
    accepted = trio.Event()
    codes: list[int | None] = []

    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        accepted.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            codes.append(ws.close_code)
            cancelled.set()
            raise

    port = await start_server(nursery, handler)
    stream = await open_connection(port)
    await stream.send_all(handshake_bytes())
    await read_until(stream, b"\r\n\r\n")
    with trio.fail_after(5):
        await accepted.wait()
    reset(stream)  # RST, no close frame
    with trio.fail_after(5):
        await cancelled.wait()
    assert codes == [1006]


async def test_abrupt_disconnect_raises_in_receive(nursery: trio.Nursery) -> None:
    raised: list[WebSocketClosed] = []
    done = trio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            await ws.receive()
        except WebSocketClosed as exc:
            raised.append(exc)
        done.set()

    port = await start_server(nursery, handler)
    stream = await open_connection(port)
    await stream.send_all(handshake_bytes())
    await read_until(stream, b"\r\n\r\n")
    await stream.aclose()
    with trio.fail_after(5):
        await done.wait()
    assert raised[0].code == 1006


async def test_disconnect_before_accept_cancels_the_handler(nursery: trio.Nursery) -> None:
    deciding = trio.Event()
    cancelled = trio.Event()

    async def handler(ws: WebSocket) -> None:
        deciding.set()
        try:
            await trio.sleep_forever()  # e.g. a slow auth lookup
        finally:
            cancelled.set()

    port = await start_server(nursery, handler)
    stream = await open_connection(port)
    await stream.send_all(handshake_bytes())
    with trio.fail_after(5):
        await deciding.wait()
    await stream.aclose()
    with trio.fail_after(5):
        await cancelled.wait()


# ----------------------------------------------------------------------------- leaks


def _count_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


def _count_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
async def test_500_connect_close_cycles_leave_nothing_behind(nursery: trio.Nursery) -> None:
    port = await start_server(nursery, echo)
    # One warm-up cycle so lazily created resources (thread pool, caches) exist already.
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
        await client.send_message("warm")
        await client.get_message()
    await trio.testing.wait_all_tasks_blocked()
    tasks_before, fds_before = count_tasks(), open_fds()
    for i in range(500):
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as client:
            await client.send_message(f"m{i}")
            assert await client.get_message() == f"m{i}"
        if i % 5 == 0:
            # Every fifth connection vanishes without a close handshake.
            stream = await open_connection(port)
            await stream.send_all(handshake_bytes())
            await read_until(stream, b"\r\n\r\n")
            await stream.aclose()
    with trio.fail_after(10):
        while count_tasks() > tasks_before or open_fds() > fds_before:
            await trio.sleep(0.01)
    assert count_tasks() <= tasks_before
    assert open_fds() <= fds_before
