"""The upload benchmark's Starlette server, on Uvicorn with its h11 protocol.

The same routes as bench/upload_app_trio_h3.py. It needs starlette, uvicorn and
python-multipart, which bench/upload_bench.py installs in a separate virtual environment
(python-multipart must never sit beside PyPI's `multipart`, which trio-h3 uses: they
share the module name).

Run: /tmp/bench-venv/bin/python bench/upload_app_starlette.py --port 8003
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


async def upload(request: Request) -> JSONResponse:
    async with request.form(max_fields=100_000, max_files=100) as form:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        return JSONResponse(
            {
                "fields": len(form.multi_items()) - len(files),
                "files": len(files),
                "bytes": sum(file.size or 0 for file in files),
            }
        )


app = Starlette(routes=[Route("/ping", ping), Route("/upload", upload, methods=["POST"])])

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003)
    options = parser.parse_args()
    uvicorn.run(
        app,
        host=options.host,
        port=options.port,
        http="h11",
        loop="asyncio",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )
