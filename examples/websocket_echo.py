"""WebSocket echo server: ``python examples/websocket_echo.py [port]``.

Every text or binary message comes straight back on ``/ws/echo`` (and on ``/``, which
is where the Autobahn|Testsuite cases connect: see ``tests/autobahn/run.sh``).
Set ``TRIO_H3_WS_PING=0`` to turn the keepalive ping off, as the Autobahn run does
(an unprompted ping ends an Autobahn case).
"""

from __future__ import annotations

import os
import sys
from functools import partial

import trio

from trio_h3 import H3, WebSocket, serve

app = H3()


@app.ws("/ws/echo")
async def echo(ws: WebSocket) -> None:
    async for message in ws:  # str or bytes, until the client closes
        await ws.send(message)


app.ws("/", echo)


def main(argv: list[str]) -> None:
    port = int(argv[1]) if len(argv) > 1 else 3000
    ping = float(os.environ.get("TRIO_H3_WS_PING", "20"))
    run = partial(
        serve,
        app,
        host="127.0.0.1",
        port=port,
        ws_ping_interval=ping or None,
        # Autobahn's large cases (9.x) send 16 MiB messages.
        ws_max_message_size=int(os.environ.get("TRIO_H3_WS_MAX_SIZE", str(1 << 20))),
        access_log=False,
    )
    trio.run(run)


if __name__ == "__main__":
    main(sys.argv)
