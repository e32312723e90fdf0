"""The Trio shell: listeners, connections, the wire, streams, shutdown.

- :mod:`.serve`: ``serve()`` / :class:`Server`: listeners, TLS, signals, hard bounds;
- :mod:`.connection`: the request loop of one connection;
- :mod:`.exchange`: one request and its response; the event's server side;
- :mod:`.wire`: the only module that speaks h11 (the seam for a second parser);
- :mod:`.checks`: the request-head rules the parser leaves to us (pure);
- :mod:`.body`: request bodies with their limits and deadlines;
- :mod:`.streaming`: one lifecycle for SSE and StreamingResponse, with the monitor;
- :mod:`.options`, :mod:`.state`: the knobs, and what connections share.
"""

from .options import ServeOptions
from .serve import Server, serve

__all__ = ["ServeOptions", "Server", "serve"]
