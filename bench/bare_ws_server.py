"""Bare WebSocket echo server: `trio_websocket.serve_websocket`, no framework.

Every path echoes (the benchmark uses /echo, like bench/app_trio_h3.py).

Run: python bench/bare_ws_server.py --port 8003
"""

from __future__ import annotations

import argparse
import resource
import signal

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket


async def echo(request: WebSocketRequest) -> None:
    ws = await request.accept()
    try:
        while True:
            message = await ws.get_message()
            await ws.send_message(message)
    except ConnectionClosed:
        pass


async def main(host: str, port: int) -> None:
    await serve_websocket(echo, host, port, ssl_context=None)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003)
    options = parser.parse_args()
    raise_nofile()
    # A shell may start us with SIGINT ignored; the harness stops servers with SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        trio.run(main, options.host, options.port)
    except* KeyboardInterrupt:
        pass  # SIGINT from the harness is the normal way to stop
