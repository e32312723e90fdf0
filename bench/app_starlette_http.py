"""The HTTP benchmark's peer: Starlette on Uvicorn with httptools and uvloop.

    GET /           text/plain "Hello, World!"
    GET /users/{id} application/json {"id": ...}

The same bodies as the shared limit server and ``bench/app_trio_h3.py``. Runs in a
separate virtualenv that has starlette, uvicorn, httptools and uvloop (never the
project's own environment): /tmp/bench-venv/bin/python bench/app_starlette_http.py
--port 8005
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


async def index(request: Request) -> Response:
    return PlainTextResponse("Hello, World!")


async def user(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["id"]})


app = Starlette(routes=[Route("/", index), Route("/users/{id}", user)])

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8005)
    options = parser.parse_args()
    uvicorn.run(
        app,
        host=options.host,
        port=options.port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
    )
