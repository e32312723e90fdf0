"""Helpers for tests that speak raw bytes to the server (in memory or over a socket)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

from trio_h3 import Headers


@dataclass
class RawResponse:
    """One response parsed out of the bytes a server sent."""

    status: int
    headers: Headers
    body: bytes
    http_version: str
    informational: list[int] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


def parse_responses(data: bytes, methods: list[str]) -> tuple[list[RawResponse], bool]:
    """Parse the responses to requests made with ``methods``, in order, from ``data``.

    Returns the responses and whether the server closed cleanly after the last one
    (``data`` ended exactly where a response ended). Raises if the bytes are not
    well-framed HTTP/1.1 responses.
    """
    client = h11.Connection(h11.CLIENT)
    responses: list[RawResponse] = []
    client.receive_data(data)
    client.receive_data(b"")  # EOF: everything the server will ever send is in ``data``
    for index, method in enumerate(methods):
        if index:
            client.start_next_cycle()
        client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        informational: list[int] = []
        head: h11.Response | None = None
        body = bytearray()
        while True:
            event = client.next_event()
            if isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"response {index} is incomplete: got {event!r}")
        assert head is not None
        responses.append(
            RawResponse(
                head.status_code,
                Headers.from_raw(list(head.headers)),  # type: ignore[arg-type]
                bytes(body),
                head.http_version.decode(),
                informational,
            )
        )
    try:
        clean_close = isinstance(client.next_event(), h11.ConnectionClosed)
    except h11.ProtocolError:
        clean_close = False
    return responses, clean_close


async def read_until_eof(stream: trio.abc.ReceiveStream, limit: int = 1 << 22) -> bytes:
    """Everything the peer sends until it closes (bounded by ``limit`` bytes)."""
    data = bytearray()
    while len(data) < limit:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def request_bytes(
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    version: str = "1.1",
) -> bytes:
    """A request written by hand: Host and Content-Length are added when missing."""
    lines = [f"{method} {target} HTTP/{version}"]
    names = {name.lower() for name, _ in headers or []}
    if "host" not in names:
        lines.append("Host: testserver")
    lines += [f"{name}: {value}" for name, value in headers or []]
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
