"""What the connections of one server share: app, options, shutdown, live streams, threads."""

from __future__ import annotations

import logging
import os
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import trio

from .._guest import Guest
from ..utils.proxy import DEFAULT_ALLOW, TrustedProxies
from .backends import wire_class
from .options import ServeOptions
from .wire import Wire

if TYPE_CHECKING:
    from ..app import H3
    from ..sse.stream import Stream

__all__: list[str] = []

logger = logging.getLogger("trio_h3")

# The weight of each new age in ServerState.turnaround: the mean follows the last ~50
# requests, so it tracks a change of load within a few round trips of 64 connections.
_TURNAROUND_WEIGHT = 0.02


class ServerState:
    """Per-server state. No module globals: two servers in one process never interfere."""

    def __init__(self, app: H3, options: ServeOptions) -> None:
        self.app = app
        self.options = options
        #: Set to ask for a graceful shutdown (a signal, ``shutdown_trigger``, or app code
        #: raising KeyboardInterrupt/SystemExit); the server then sets ``shutting_down``.
        self.shutdown_requested = trio.Event()
        #: What asked for the shutdown (a signal's name, ...), once asked.
        self.shutdown_reason: str | None = None
        #: Set once a graceful shutdown begins; streams and WebSockets watch it.
        self.shutting_down = trio.Event()
        #: The same as a plain flag, for the per-request checks (see begin_shutdown).
        self.stopping = False
        #: Open connections (their ``describe()`` is logged if a forced exit leaves them).
        self.connections: set[Any] = set()
        #: Set once the graceful shutdown has begun and no connection is left.
        self.drained = trio.Event()
        self.streams: set[Stream] = set()
        #: Set once open streams were cancelled: a stream starting later ends at once.
        self.streams_cancelled = False
        self.guest = Guest(self.request_shutdown)
        #: The worker threads of plain ``def`` handlers.
        self.threads = trio.CapacityLimiter(options.thread_limit)
        #: Run plain ``def`` handlers in the event loop instead (the test client sets it
        #: under an autojumping MockClock, whose clock would jump while a thread runs).
        self.sync_inline = False
        #: Whose proxy headers to believe (None: nobody's, ``proxy_headers=False``);
        #: the environment is read once, when the server is made, as uvicorn does.
        self.trusted_proxies: TrustedProxies | None = None
        if options.proxy_headers:
            allow = options.forwarded_allow_ips
            if allow is None:
                allow = os.environ.get("FORWARDED_ALLOW_IPS", DEFAULT_ALLOW)
            self.trusted_proxies = TrustedProxies(allow)
        #: The parser backend every connection of this server uses (``options.http``).
        self.wire_class: type[Wire] = wire_class(options.http)
        extra = [(n.lower().encode("ascii"), v.encode("ascii")) for n, v in options.extra_headers]
        #: Whether responses get the server's ``Date`` (not when ``extra_headers`` has one).
        self.send_date = options.date_header and b"date" not in dict(extra)
        #: What the server adds to every response after ``Date``: ``Server`` (unless an
        #: ``extra_headers`` entry replaces it), then ``extra_headers``.
        self.static_headers: list[tuple[bytes, bytes]] = []
        if options.server_header is not None and b"server" not in dict(extra):
            self.static_headers.append((b"server", options.server_header.encode("latin-1")))
        self.static_headers += extra
        #: The names of ``extra_headers``: a response's own header of such a name wins.
        self.extra_names = frozenset(name for name, _ in extra)
        #: Requests begun so far (``limit_max_requests``) and in progress now
        #: (``limit_concurrency``).
        self.requests_begun = 0
        self.requests_active = 0
        #: The running mean of how long after its connection's last response a request
        #: was found waiting, in seconds (see :meth:`pace`).
        self.turnaround = 0.0
        self._date_second = -1
        self._date_value = b""
        self._date_pair = (b"date", b"")

    def begin_shutdown(self) -> None:
        """The graceful shutdown begins: ``shutting_down`` is set (and ``stopping``)."""
        self.stopping = True
        self.shutting_down.set()

    def request_shutdown(self, why: str) -> None:
        """Ask for a graceful shutdown (idempotent)."""
        if not self.shutdown_requested.is_set():
            logger.debug("shutdown requested: %s", why)
            self.shutdown_reason = why
            self.shutdown_requested.set()

    def admit(self) -> bool:
        """Count a new request; False if ``limit_concurrency`` refuses it (a 503).

        The request that reaches ``limit_max_requests`` is served, and asks for the
        graceful shutdown that ends the process.
        """
        options = self.options
        self.requests_begun += 1
        limit = options.limit_max_requests
        if limit is not None and self.requests_begun == limit:
            logger.info("limit_max_requests: %d requests served, shutting down", limit)
            self.request_shutdown(f"limit_max_requests ({limit})")
        concurrency = options.limit_concurrency
        if concurrency is not None and (
            len(self.connections) > concurrency or self.requests_active >= concurrency
        ):
            return False
        self.requests_active += 1
        return True

    def pace(self, age: float) -> bool:
        """Whether a request found waiting ``age`` seconds after its connection's last
        response should let those waiting longer go first; ``age`` joins the mean.

        True when ``age`` is below the running mean of such ages (an exponential mean
        over about the last fifty). The connection loop then yields once more: see
        "the longest-waiting first" in :mod:`.connection`.
        """
        mean = self.turnaround
        self.turnaround = mean + (age - mean) * _TURNAROUND_WEIGHT
        return age < mean

    def add_server_headers(
        self, headers: list[tuple[bytes, bytes]], present: list[tuple[bytes, bytes]]
    ) -> None:
        """Append what the server adds to every response to ``headers``: ``Date``, then
        ``Server`` and ``extra_headers``; an extra header whose name is already in
        ``present`` (the response's own) is left out: the response's wins."""
        if self.extra_names:
            own = {pair[0] for pair in present} & self.extra_names
        else:
            own = None  # the usual server: nothing to compare (the hot path)
        if self.send_date:
            headers.append(self.date_pair())
        if own:
            headers += [pair for pair in self.static_headers if pair[0] not in own]
        else:
            headers += self.static_headers

    def date_pair(self) -> tuple[bytes, bytes]:
        """The ``Date`` header as sent (RFC 9110 §6.6.1), made once per second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date_value = formatdate(now, usegmt=True).encode("ascii")
            self._date_pair = (b"date", self._date_value)
        return self._date_pair

    def statistics(self) -> dict[str, int]:
        """Open connections and open streams, for observability."""
        return {"connections": len(self.connections), "streams": len(self.streams)}
