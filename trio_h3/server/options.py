"""ServeOptions: every knob of the server, each default with the precedent it follows.

Each field carries its command-line face in its metadata (:func:`option`): the flag
(uvicorn's name where the concept is the same), the help text and the precedent of its
default. ``trio-h3 run`` builds its flags from these fields, and docs/cli.md is generated
from them, so a field added here is reachable and documented without touching the CLI; a
field without metadata gets ``--field-name`` and the ``#:`` comment above it as help.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

# Pure (no Trio): the type of ws_origins, resolvable at run time for the CLI's flags.
from ..websocket.handshake import OriginRules

__all__ = ["ServeOptions"]

# RFC 9110 §5.6.2 token characters, for --header names.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def option(
    default: Any,
    *,
    help: str,
    precedent: str = "",
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    metavar: str | None = None,
    kind: str | None = None,
) -> Any:
    """A ServeOptions field with its command-line face (read by ``trio-h3 run``).

    ``flag`` defaults to ``--field-name``; ``aliases`` are further spellings of it;
    ``precedent`` says where the default comes from (shown in docs/cli.md); ``kind``
    overrides what the type says the flag takes (``"list"``: a repeatable comma list).
    """
    metadata = {"help": help, "precedent": precedent, "aliases": aliases}
    if flag is not None:
        metadata["flag"] = flag
    if metavar is not None:
        metadata["metavar"] = metavar
    if kind is not None:
        metadata["kind"] = kind
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Options for :func:`trio_h3.serve`. Times are seconds, sizes bytes.

    Pass an instance, keyword arguments, or both (keywords win):
    ``serve(app, ServeOptions(port=8080), access_log=False)``. An app can carry its own
    (``H3(serve_options=ServeOptions(...))``): ``serve(app)`` and ``trio-h3 run`` start
    from them, and keywords or the flags given go on top. Every field is a flag of
    ``trio-h3 run`` (see docs/cli.md).
    """

    # -- where to listen ----------------------------------------------------------------

    host: str = option(
        "127.0.0.1",
        help="Interface to bind.",
        precedent="uvicorn's: loopback unless told otherwise",
    )
    port: int = option(
        3000,
        help="Port to bind; 0 picks a free one (the bound address is logged and "
        "returned by nursery.start).",
        precedent="h3's and Nuxt's 3000",
    )
    uds: str | None = option(
        None,
        help="Listen on this Unix domain socket instead of host:port (a stale socket "
        "file is replaced; the file is made mode 0666 and removed on exit).",
        precedent="uvicorn's --uds; mode 0666 as uvicorn, so a proxy can connect",
        metavar="PATH",
    )
    reuse_port: bool = option(
        False,
        help="Set SO_REUSEPORT, so several processes each listen on the port with their "
        "own accept queue (with --workers: one per worker, which spreads long-lived "
        "connections far more evenly than one shared queue).",
        precedent="uvicorn and gunicorn's --reuse-port; off, as there",
    )
    fd: int | None = option(
        None,
        help="Serve on this already-bound socket file descriptor instead of host:port "
        "(systemd socket activation, a supervisor that binds once).",
        precedent="uvicorn's --fd",
        metavar="N",
    )
    backlog: int = option(
        1024,
        help="The listen(2) queue of pending connections.",
        precedent="between nginx's 511 and uvicorn's 2048; Linux caps it at net.core.somaxconn",
    )

    # -- TLS ------------------------------------------------------------------------------

    ssl_certfile: str | None = option(
        None,
        help="TLS certificate chain (PEM): serves HTTPS. Without --ssl-keyfile the file "
        "must hold the private key too (a combined PEM).",
        precedent="uvicorn's --ssl-certfile",
        metavar="PATH",
    )
    ssl_keyfile: str | None = option(
        None,
        help="TLS private key (PEM).",
        precedent="uvicorn's --ssl-keyfile",
        metavar="PATH",
    )
    ssl_keyfile_password: str | None = option(
        None,
        help="Password of an encrypted private key (never prompted for).",
        precedent="uvicorn's --ssl-keyfile-password",
    )
    ssl_ca_certs: str | None = option(
        None,
        help="CA certificates (PEM) to verify client certificates against "
        "(with --ssl-cert-reqs 1 or 2).",
        precedent="uvicorn's --ssl-ca-certs",
        metavar="PATH",
    )
    ssl_cert_reqs: int = option(
        0,
        help="Client certificates: 0 not asked for, 1 optional, 2 required (the ssl "
        "module's CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED).",
        precedent="uvicorn's --ssl-cert-reqs, default CERT_NONE",
    )
    ssl_ciphers: str | None = option(
        None,
        help="OpenSSL cipher list (default: Python's own secure defaults).",
        precedent="uvicorn's --ssl-ciphers; its default 'TLSv1' is left to OpenSSL here",
    )

    # -- HTTP -------------------------------------------------------------------------------

    http: Literal["auto", "h11", "httptools"] = option(
        "auto",
        help="The HTTP/1.1 parser: h11 (pure Python, the reference for behaviour), "
        "httptools (llhttp, the [fast] extra), or auto: httptools when it is installed, "
        "else h11. Both answer every request alike.",
        precedent="uvicorn's --http auto|h11|httptools",
    )
    max_header_size: int = option(
        16 * 1024,
        help="Largest request head before a 431.",
        precedent="h11's and node's 16 KiB (uvicorn's --h11-max-incomplete-event-size)",
        aliases=("--h11-max-incomplete-event-size",),
    )
    max_target_size: int = option(
        8 * 1024,
        help="Longest request line before a 414.",
        precedent="Apache's LimitRequestLine 8190, nginx's 8 KiB",
    )
    max_body_size: int = option(
        1024 * 1024,
        help="Largest request body before a 413; a route can say otherwise "
        "(app.post(path, max_body_size=...)).",
        precedent="nginx's client_max_body_size: 1 MiB",
    )
    keep_alive_timeout: float = option(
        5.0,
        help="Idle time allowed between requests on a keep-alive connection.",
        precedent="uvicorn's 5 s",
        flag="--timeout-keep-alive",
    )
    request_head_timeout: float = option(
        10.0,
        help="Time allowed to receive a whole request head, and to wait for each piece "
        "of a body (against slowloris).",
        precedent="Apache's mod_reqtimeout allows 20 s; 10 here",
    )
    body_timeout: float | None = option(
        60.0,
        help="Time allowed to receive a whole request body, however it trickles in; a "
        "route can say otherwise (body_timeout=).",
        precedent="nginx's client_body_timeout of 60 s, applied to the body as a whole",
    )
    shutdown_timeout: float = option(
        10.0,
        help="On shutdown, in-flight requests get this long to finish before being "
        "cancelled; the process leaves at most 2 s later, whatever app code does.",
        precedent="Kubernetes sends SIGKILL 30 s after SIGTERM: stay well under",
        flag="--timeout-graceful-shutdown",
    )
    limit_concurrency: int | None = option(
        None,
        help="At most this many open connections and requests in progress: a request "
        "beyond it is answered 503 (and its connection closed).",
        precedent="uvicorn's --limit-concurrency",
        metavar="N",
    )
    limit_max_requests: int | None = option(
        None,
        help="After this many requests the process shuts down gracefully (exit status "
        "0), for a supervisor to replace it; per worker.",
        precedent="uvicorn's --limit-max-requests",
        metavar="N",
    )
    root_path: str = option(
        "",
        help="The path prefix the app is served under behind a proxy: stripped from a "
        "request path that starts with it, and part of event.url (event.root_path).",
        precedent="uvicorn's --root-path, with Starlette's routing of it",
        metavar="PATH",
    )
    extra_headers: tuple[tuple[str, str], ...] = option(
        (),
        help="A header for every response, NAME:VALUE (a response's own header of that "
        "name wins; Server and Date are replaced).",
        precedent="uvicorn's --header",
        flag="--header",
        metavar="NAME:VALUE",
    )
    server_header: str | None = option(
        "trio-h3",
        help="Value of the Server header (--no-server-header leaves it out).",
        precedent="uvicorn's --server-header/--no-server-header",
    )
    date_header: bool = option(
        True,
        help="Send a Date header (RFC 9110 §6.6.1: an origin server with a clock MUST).",
        precedent="uvicorn's --date-header/--no-date-header",
    )
    access_log: bool = option(
        True,
        help="One line per request on logger trio_h3.access.",
        precedent="uvicorn's --access-log/--no-access-log",
    )
    thread_limit: int = option(
        40,
        help="Worker threads for plain def handlers.",
        precedent="Trio's and AnyIO's default: 40",
    )

    # -- streams ----------------------------------------------------------------------------

    sse_ping_interval: float | None = option(
        15.0,
        help="SSE heartbeat comment after this much idle time.",
        precedent="sse-starlette's and FastAPI's 15 s, under the 30-60 s idle limits of "
        "common proxies",
    )
    send_timeout: float | None = option(
        30.0,
        help="Every write to a streaming client must complete within this; a slower "
        "client is dropped.",
        precedent="a client that cannot take a write in 30 s is gone",
    )
    stream_shutdown_grace: float = option(
        1.0,
        help="On shutdown, streams see writer.shutting_down and get this long to say "
        "goodbye before they are cancelled (reason server_shutdown).",
        precedent="time for a farewell event, short enough for a quick restart",
    )
    on_close_timeout: float = option(
        5.0,
        help="Deadline for each writer.on_close hook.",
        precedent="cleanup should be quick; the bound keeps shutdown bounded",
    )

    # -- WebSockets -------------------------------------------------------------------------

    ws_ping_interval: float | None = option(
        20.0,
        help="WebSocket keepalive ping interval.",
        precedent="uvicorn's --ws-ping-interval 20 s",
    )
    ws_ping_timeout: float = option(
        20.0,
        help="WebSocket keepalive: no pong within this closes with 1011.",
        precedent="uvicorn's --ws-ping-timeout 20 s",
    )
    ws_max_message_size: int = option(
        1024 * 1024,
        help="Largest incoming WebSocket message before a 1009 close.",
        precedent="websockets' 1 MiB (uvicorn's --ws-max-size 16 MiB)",
        flag="--ws-max-size",
    )
    ws_origins: OriginRules | None = option(  # noqa: RUF009 - option() is a dataclasses.field
        None,
        help="Origins a WebSocket handshake may come from, else 403 before the upgrade "
        '(against cross-site WebSocket hijacking): comma-separated, "*" for any; none: '
        "any origin. A route's app.ws(origins=) wins.",
        precedent="the websockets library's origins=",
        metavar="ORIGINS",
        kind="list",
    )
    ws_require_origin: bool = option(
        False,
        help="Also refuse a WebSocket handshake that sends no Origin (browsers always "
        "send one; other clients may not).",
        precedent="websockets: leaving None out of origins",
    )
    ws_compression: Literal["deflate"] | None = option(
        "deflate",
        help="permessage-deflate (RFC 7692) when the client offers it; none: never.",
        precedent="the websockets library's compression='deflate' default",
    )

    # -- behind a proxy --------------------------------------------------------------------

    proxy_headers: bool = option(
        True,
        help="Believe X-Forwarded-For/-Proto/-Host and Forwarded (RFC 7239) from the "
        "peers in --forwarded-allow-ips.",
        precedent="uvicorn's --proxy-headers, on by default",
    )
    forwarded_allow_ips: str | Sequence[str] | None = option(
        None,
        help="The trusted peers: IPs and CIDR networks, comma-separated (or a sequence), "
        'or "*" for any; none: $FORWARDED_ALLOW_IPS, else 127.0.0.1.',
        precedent="uvicorn's --forwarded-allow-ips and its default",
        metavar="IPS",
    )

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
        for name in ("limit_concurrency", "limit_max_requests"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None, got {value!r}")
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
        self._check_sockets()
        self._check_tls()
        self._check_headers()
        root = self.root_path.rstrip("/")
        if root and not root.startswith("/"):
            raise ValueError(f"root_path must start with '/', got {self.root_path!r}")
        object.__setattr__(self, "root_path", root)

    def _check_sockets(self) -> None:
        if self.uds is not None and self.fd is not None:
            raise ValueError("uds and fd are two ways to listen: give one of them")
        if self.uds == "":
            raise ValueError("uds must be a path, got ''")
        if self.fd is not None and self.fd < 0:
            raise ValueError(f"fd must be a file descriptor (>= 0), got {self.fd!r}")

    def _check_tls(self) -> None:
        if self.ssl_certfile is None:
            for name in ("ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs", "ssl_ciphers"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} needs ssl_certfile (the TLS certificate)")
        if self.ssl_cert_reqs not in (0, 1, 2):
            raise ValueError(
                f"ssl_cert_reqs must be 0 (none), 1 (optional) or 2 (required), "
                f"got {self.ssl_cert_reqs!r}"
            )

    def _check_headers(self) -> None:
        headers: list[tuple[str, str]] = []
        for pair in self.extra_headers:
            if isinstance(pair, str) or len(pair) != 2:
                raise ValueError(f"extra_headers holds (name, value) pairs, got {pair!r}")
            name, value = pair
            if not _TOKEN.match(name):
                raise ValueError(f"extra_headers: {name!r} is not a valid header name")
            if any(c in value for c in "\r\n\0") or not value.isascii():
                raise ValueError(f"extra_headers: the value of {name!r} must be ASCII text")
            headers.append((name, value.strip()))
        object.__setattr__(self, "extra_headers", tuple(headers))

    @classmethod
    def build(cls, options: ServeOptions | None = None, **overrides: Any) -> ServeOptions:
        """``options`` with ``overrides`` applied; unknown names are a TypeError."""
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown ServeOptions: {', '.join(sorted(unknown))}")
        base = options if options is not None else cls()
        return replace(base, **overrides) if overrides else base
