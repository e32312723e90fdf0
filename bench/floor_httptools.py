"""Calibration only: the least a trio + httptools server can do per request.

One task per connection reading the trio socket, llhttp parsing, a fixed response head
written as bytes (the same header set as the other servers), nothing else: no routing,
no limits, no timeouts, no checks. What trio-h3's httptools backend costs beyond this
is the framework and its rules (see bench/README.md, "Where the time goes").

Run: python bench/floor_httptools.py --port 8006
"""

from __future__ import annotations

import argparse
import functools
import time
from email.utils import formatdate

import httptools
import trio

BODY = b"Hello, World!"
_date = [0, b""]


def http_date() -> bytes:
    now = int(time.time())
    if now != _date[0]:
        _date[0], _date[1] = now, formatdate(now, usegmt=True).encode()
    return bytes(_date[1])


class Requests:
    """llhttp's callbacks: count the requests that are complete."""

    def __init__(self) -> None:
        self.complete = 0

    def on_message_complete(self) -> None:
        self.complete += 1


async def handle(stream: trio.SocketStream) -> None:
    sock = stream.socket
    requests = Requests()
    parser = httptools.HttpRequestParser(requests)
    try:
        while data := await sock.recv(65536):
            parser.feed_data(data)
            while requests.complete:
                requests.complete -= 1
                await sock.send(
                    b"HTTP/1.1 200 OK\r\nserver: floor\r\ndate: %s\r\n"
                    b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n\r\n%s"
                    % (http_date(), len(BODY), BODY)
                )
    except (OSError, httptools.HttpParserError):
        pass
    finally:
        sock.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    try:
        trio.run(functools.partial(trio.serve_tcp, handle, options.port, host=options.host))
    except KeyboardInterrupt:
        pass
