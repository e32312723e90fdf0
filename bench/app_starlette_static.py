"""Starlette's side of bench/static_bench.py: StaticFiles on Uvicorn.

    GET /static/<name>  starlette.staticfiles.StaticFiles(directory=--dir)

Runs in a separate virtualenv that has starlette and uvicorn (never the project's own
environment): /tmp/bench-venv/bin/python bench/app_starlette_static.py --port 8004
--dir /tmp/files [--certfile cert.pem --keyfile key.pem]
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8004)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    options = parser.parse_args()
    app = Starlette(routes=[Mount("/static", StaticFiles(directory=options.dir))])
    uvicorn.run(
        app,
        host=options.host,
        port=options.port,
        log_level="warning",
        access_log=False,
        ssl_certfile=options.certfile,
        ssl_keyfile=options.keyfile,
    )
