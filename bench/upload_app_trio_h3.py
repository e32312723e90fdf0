"""The upload benchmark's trio-h3 server (bench/upload_bench.py starts it).

    POST /upload   multipart/form-data or urlencoded: parsed with event.form() (files
                   spooled to temp files past 1 MiB, as Starlette does), answered with
                   {"fields": n, "files": n, "bytes": total file bytes}
    GET  /ping     "pong": the concurrent probe of how long the event loop is held

Run: PYTHONPATH=. python bench/upload_app_trio_h3.py --port 8002
"""

from __future__ import annotations

import argparse
import functools
import signal
from typing import Any

import trio

from trio_h3 import H3, H3Event, serve

app = H3()


@app.get("/ping")
async def ping(event: H3Event) -> str:
    return "pong"


@app.post("/upload", max_body_size=None)
async def upload(event: H3Event) -> dict[str, Any]:
    form = await event.form(max_fields=100_000, max_files=100)
    files = form.files()
    return {
        "fields": len(form.fields()),
        "files": len(files),
        "bytes": sum(file.size for _, file in files),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    options = parser.parse_args()
    # A shell may start us with SIGINT ignored; the harness stops servers with SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        trio.run(
            functools.partial(serve, app, host=options.host, port=options.port, access_log=False)
        )
    except* KeyboardInterrupt:
        pass
