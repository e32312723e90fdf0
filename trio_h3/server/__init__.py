"""The Trio shell: listeners, connections, the wire, streams, shutdown.

- :mod:`.serve`: ``serve()`` / :class:`Server`: listeners, TLS, signals, hard bounds;
- :mod:`.connection`: the request loop of one connection;
- :mod:`.exchange`: one request and its response; the event's server side;
- :mod:`.wire`: the only module that speaks h11 (the seam for a second parser);
- :mod:`.checks`: the request-head rules the parser leaves to us (pure);
- :mod:`.body`: request bodies with their limits and deadlines;
- :mod:`.streaming`: one lifecycle for SSE and StreamingResponse, with the monitor;
- :mod:`.options`, :mod:`.state`: the knobs, and what connections share.

:mod:`.options` is pure (an app may carry its ServeOptions without loading Trio), so
``Server`` and ``serve`` are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .options import ServeOptions

if TYPE_CHECKING:
    from .serve import Server, serve

__all__ = ["ServeOptions", "Server", "serve"]

__getattr__, __dir__ = lazy_exports(__name__, {"Server": ".serve", "serve": ".serve"})
