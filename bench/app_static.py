"""trio-h3's side of bench/static_bench.py: files and a gzip-able SSE flood.

    GET /static/<name>  StaticFiles(--dir): os.sendfile on plain TCP, chunks over TLS
    GET /sse            SSE flood ("data: 12345"), no content coding
    GET /gz/sse         the same flood under compress(): gzip, flushed per event

Run: PYTHONPATH=. python bench/app_static.py --port 8003 --dir /tmp/files
     [--certfile cert.pem --keyfile key.pem]
"""

from __future__ import annotations

import argparse
import functools
import signal

import trio

from trio_h3 import H3, H3Event, SSEWriter, StaticFiles, compress, serve

MAX_FLOOD_EVENTS = 10**9  # bounded, though the client always leaves long before


def make_app(directory: str) -> H3:
    app = H3()
    app.use("/gz/**", compress())

    async def flood(writer: SSEWriter) -> None:
        for _ in range(MAX_FLOOD_EVENTS):
            await writer.send("12345")

    async def sse(event: H3Event) -> None:
        event.start_sse(ping_interval=None)
        event.set_stream_callback(flood)

    app.get("/sse", sse)
    app.get("/gz/sse", sse)
    app.mount("/static", StaticFiles(directory))
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    options = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    tls = {}
    if options.certfile:
        tls = {"ssl_certfile": options.certfile, "ssl_keyfile": options.keyfile}
    try:
        trio.run(
            functools.partial(
                serve,
                make_app(options.dir),
                host=options.host,
                port=options.port,
                access_log=False,
                **tls,
            )
        )
    except* KeyboardInterrupt:
        pass
