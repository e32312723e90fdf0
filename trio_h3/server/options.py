"""ServeOptions: every knob of the server, each default with the precedent it follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..websocket.handshake import OriginRules

__all__ = ["ServeOptions"]


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Options for :func:`trio_h3.serve`. Times are seconds, sizes bytes.

    Pass an instance, keyword arguments, or both (keywords win):
    ``serve(app, ServeOptions(port=8080), access_log=False)``.
    """

    #: Interface to bind (loopback unless told otherwise, as uvicorn does).
    host: str = "127.0.0.1"
    #: Port to bind; 0 picks a free one (the bound address is reported by ``nursery.start``).
    port: int = 3000
    #: The listen(2) queue (nginx 511, uvicorn 2048; Linux caps it at net.core.somaxconn).
    backlog: int = 1024
    #: TLS certificate chain (PEM); with ``ssl_keyfile``, serves HTTPS.
    ssl_certfile: str | None = None
    #: TLS private key (PEM).
    ssl_keyfile: str | None = None

    #: The HTTP/1.1 parser: ``"h11"`` (pure Python, the reference for behaviour),
    #: ``"httptools"`` (llhttp, the ``[fast]`` extra), or ``"auto"``: httptools when it is
    #: installed, else h11 (uvicorn's ``--http auto``). Both answer every request alike.
    # CLI: ``--http`` (uvicorn's flag); its metadata follows the CLI branch's convention.
    http: Literal["auto", "h11", "httptools"] = "auto"
    #: Largest request head before a 431 (h11's default and node's: 16 KiB).
    max_header_size: int = 16 * 1024
    #: Longest request line before a 414 (Apache's LimitRequestLine 8190, nginx's 8 KiB).
    max_target_size: int = 8 * 1024
    #: Largest request body before a 413 (nginx's client_max_body_size: 1 MiB); a route
    #: can say otherwise (``app.post(path, max_body_size=...)``).
    max_body_size: int = 1024 * 1024
    #: Idle time allowed between requests on a keep-alive connection (uvicorn's 5 s).
    keep_alive_timeout: float = 5.0
    #: Time allowed to receive a whole request head, and to wait for each piece of a
    #: body (against slowloris; Apache's mod_reqtimeout allows 20 s, we allow 10).
    request_head_timeout: float = 10.0
    #: Time allowed to receive a whole request body, however it trickles in (nginx's
    #: client_body_timeout of 60 s, applied here to the body as a whole); a route can
    #: say otherwise (``body_timeout=``). None: no whole-body deadline.
    body_timeout: float | None = 60.0
    #: In-flight requests get this long to finish on shutdown before being cancelled;
    #: the process leaves at most a short margin later, whatever app code does
    #: (Kubernetes sends SIGKILL 30 s after SIGTERM by default: stay well under).
    shutdown_timeout: float = 10.0

    #: SSE: heartbeat comment after this much idle time (None: no heartbeat). 15 s, as
    #: sse-starlette and FastAPI, under the 30-60 s idle limits of common proxies.
    sse_ping_interval: float | None = 15.0
    #: Every write to a streaming client must complete within this (None: unbounded).
    send_timeout: float | None = 30.0
    #: On shutdown, streams see ``writer.shutting_down`` and get this long to say
    #: goodbye before they are cancelled (reason ``server_shutdown``).
    stream_shutdown_grace: float = 1.0
    #: Deadline for each ``writer.on_close`` hook.
    on_close_timeout: float = 5.0

    #: WebSocket keepalive ping interval (uvicorn's --ws-ping-interval: 20 s; None: off).
    ws_ping_interval: float | None = 20.0
    #: WebSocket keepalive: no pong within this closes with 1011 (uvicorn's 20 s).
    ws_ping_timeout: float = 20.0
    #: Largest incoming WebSocket message before a 1009 close (websockets' 1 MiB).
    ws_max_message_size: int = 1024 * 1024
    #: Origins WebSocket handshakes may come from, else 403 (websockets' origins=; None: any).
    ws_origins: OriginRules | None = None
    #: Also refuse a WebSocket handshake without Origin (websockets: leave None out of origins).
    ws_require_origin: bool = False
    #: permessage-deflate when offered, or None (websockets' compression="deflate" default).
    ws_compression: Literal["deflate"] | None = "deflate"

    # -- behind a proxy (uvicorn's --proxy-headers and --forwarded-allow-ips) --------------
    #: Believe X-Forwarded-For/-Proto/-Host and Forwarded (RFC 7239) from the peers in
    #: ``forwarded_allow_ips`` (uvicorn's --proxy-headers, on by default).
    proxy_headers: bool = True
    #: The trusted peers: IPs and CIDR networks, comma-separated (or a sequence), or "*"
    #: for any; None: $FORWARDED_ALLOW_IPS, else 127.0.0.1 (uvicorn's default).
    forwarded_allow_ips: str | Sequence[str] | None = None

    #: Worker threads for plain ``def`` handlers (Trio's and AnyIO's default: 40).
    thread_limit: int = 40
    #: One line per request on logger ``trio_h3.access``.
    access_log: bool = True
    #: Value of the ``Server`` header (None leaves it out).
    server_header: str | None = "trio-h3"

    def __post_init__(self) -> None:
        for name in ("max_header_size", "max_target_size", "max_body_size", "backlog"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.thread_limit < 1:
            raise ValueError(f"thread_limit must be at least 1, got {self.thread_limit!r}")
        for name in (
            "keep_alive_timeout",
            "request_head_timeout",
            "shutdown_timeout",
            "stream_shutdown_grace",
            "on_close_timeout",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        for name in ("sse_ping_interval", "send_timeout", "ws_ping_interval", "body_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together")
        if self.http not in ("auto", "h11", "httptools"):
            raise ValueError(f"http must be 'auto', 'h11' or 'httptools', got {self.http!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port!r}")
        if self.forwarded_allow_ips is not None:
            from ..utils.proxy import TrustedProxies

            TrustedProxies(self.forwarded_allow_ips)  # a ValueError naming the bad entry
            if not isinstance(self.forwarded_allow_ips, str):
                # Frozen means hashable too: a list becomes a tuple.
                object.__setattr__(self, "forwarded_allow_ips", tuple(self.forwarded_allow_ips))

    @classmethod
    def build(cls, options: ServeOptions | None = None, **overrides: Any) -> ServeOptions:
        """``options`` with ``overrides`` applied; unknown names are a TypeError."""
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown ServeOptions: {', '.join(sorted(unknown))}")
        base = options if options is not None else cls()
        return replace(base, **overrides) if overrides else base
