"""Run a docs block that is a server: ``python tests/docs_serve.py BLOCK.py``.

The block runs as ``__main__``, as ``python block.py`` would run it, except that
``trio_h3.serve`` listens on 127.0.0.1 and a free port whatever the block asks for (so a
block can say ``trio.run(serve, app)`` and still run beside anything on port 3000), and
prints ``LISTENING <port>`` once it does. SIGINT then shuts it down as it would any
server: tests/test_docs.py expects exit status 0.
"""

from __future__ import annotations

import runpy
import sys
from functools import partial
from typing import Any

import trio

import trio_h3
import trio_h3.server.serve as serve_module

real_serve = serve_module.serve


async def serve_on_a_free_port(*args: Any, **kwargs: Any) -> None:
    kwargs.update(host="127.0.0.1", port=0, uds=None, fd=None)
    kwargs.pop("task_status", None)
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(partial(real_serve, *args, **kwargs))
        print(f"LISTENING {addresses[0].port}", flush=True)


def main(path: str) -> None:
    serve_module.serve = serve_on_a_free_port
    trio_h3.__dict__["serve"] = serve_on_a_free_port
    sys.argv = [path]
    runpy.run_path(path, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1])
