"""``cors()``: cross-origin resource sharing, as the Fetch standard's CORS protocol says.

``app.use(cors(origins=["https://app.example"], credentials=True))``.

- A *preflight* (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is
  answered here, 204, for any path: the route needs no OPTIONS handler (without this
  middleware such a request is a 405, which fails the preflight). An origin, method or
  header not allowed is a 403 without CORS headers: the browser blocks the request, and
  whoever reads the answer with curl is told why.
- Any other request from an allowed origin gets ``Access-Control-Allow-Origin`` (and
  ``-Allow-Credentials``, ``-Expose-Headers``) on whatever answers it: a handler's
  response, an error, an SSE stream in either form (an ``EventSource`` with
  ``withCredentials`` from another origin works), a file.
- ``*`` is never sent with ``credentials=True``: the Fetch standard makes a browser
  refuse it, so the request's origin is echoed instead (for ``Allow-Headers`` and
  ``Allow-Methods`` too, which is also how ``Authorization`` gets covered: a ``*`` there
  never covers it). ``Vary: Origin`` goes on every answer that depends on the origin
  (Fetch standard, "CORS protocol and HTTP caches").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import HTTPError
from ..response import Response
from .negotiation import add_vary

if TYPE_CHECKING:
    from ..event import H3Event
    from ..types import Middleware, Next

__all__ = ["cors"]

Origins = str | Iterable[str] | re.Pattern[str] | Callable[[str], bool]

#: The methods a preflight may ask for by default (the ``cors`` npm package's list).
DEFAULT_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")
# A preflight's answer depends on all three (a cache must not reuse it for another).
_PREFLIGHT_VARY = [
    ("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
]


def _origin_check(origins: Origins) -> tuple[Callable[[str], bool], bool]:
    """``(is_allowed(origin), any)``; ``any`` when every origin is (``"*"``)."""
    if isinstance(origins, str):
        if origins == "*":
            return (lambda origin: True), True
        allowed = {origins.rstrip("/")}
        return (lambda origin: origin in allowed), False
    if isinstance(origins, re.Pattern):
        pattern = origins
        return (lambda origin: pattern.fullmatch(origin) is not None), False
    if callable(origins):
        return origins, False
    listed = {origin.rstrip("/") for origin in origins}
    if "*" in listed:
        raise ValueError("'*' in a list of origins: pass origins='*' to allow every origin")
    return (lambda origin: origin in listed), False


def _tokens(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def cors(
    *,
    origins: Origins = "*",
    credentials: bool = False,
    methods: Iterable[str] | str = DEFAULT_METHODS,
    headers: Iterable[str] | str = "*",
    expose_headers: Iterable[str] = (),
    max_age: int | None = None,
) -> Middleware:
    """Middleware answering CORS preflights and adding CORS headers (see the module).

    ``origins``: ``"*"`` (any), one origin, a list (``"https://app.example"``: scheme,
    host and port, as browsers send ``Origin``), a compiled regex (full match) or a
    callable ``origin -> bool``. ``Origin: null`` (sandboxed frames, ``file:``) is
    allowed only when listed, never by ``"*"`` with credentials.
    ``credentials=True`` lets cookies through (``Access-Control-Allow-Credentials``).
    ``methods`` a preflight may ask for (``"*"``: any); ``headers`` it may ask for
    (default ``"*"``: whatever it asks); ``expose_headers`` the script may read beyond
    the safelisted ones; ``max_age`` (seconds) how long a browser may cache a preflight
    (browsers cap it: Chromium at 7200).
    """
    allowed_origin, any_origin = _origin_check(origins)
    any_method = methods == "*"
    method_set = set() if any_method else {m.upper() for m in methods}
    any_header = headers == "*"
    header_set = set() if any_header else {h.lower() for h in headers}
    exposed = ", ".join(expose_headers)
    if max_age is not None and (isinstance(max_age, bool) or max_age < 0):
        raise ValueError(f"max_age must be a non-negative int (seconds), not {max_age!r}")
    # The answer depends on Origin unless every origin gets the same "*".
    varies = not (any_origin and not credentials)

    def allows(origin: str) -> bool:
        if origin == "null" and any_origin:
            return not credentials
        return allowed_origin(origin)

    def allow_origin_value(origin: str) -> str:
        return "*" if any_origin and not credentials else origin

    def preflight(event: H3Event, origin: str, method: str) -> Response:
        asked_headers = _tokens(event.headers.get("access-control-request-headers", ""))
        if not allows(origin):
            raise HTTPError(403, f"CORS: origin {origin} is not allowed", headers=_PREFLIGHT_VARY)
        if not any_method and method.upper() not in method_set:
            raise HTTPError(403, f"CORS: method {method} is not allowed", headers=_PREFLIGHT_VARY)
        if not any_header:
            refused = [h for h in asked_headers if h.lower() not in header_set]
            if refused:
                raise HTTPError(
                    403, f"CORS: headers {', '.join(refused)} not allowed", headers=_PREFLIGHT_VARY
                )
        answer = Response(status=204)
        out = answer.headers
        out.set("access-control-allow-origin", allow_origin_value(origin))
        if credentials:
            out.set("access-control-allow-credentials", "true")
        out.set(
            "access-control-allow-methods", method if any_method else ", ".join(sorted(method_set))
        )
        if asked_headers:
            # Echoed rather than "*": "*" does not cover Authorization, nor anything
            # at all when credentials are included (Fetch standard).
            out.set(
                "access-control-allow-headers",
                ", ".join(asked_headers) if any_header else ", ".join(sorted(header_set)),
            )
        if max_age is not None:
            out.set("access-control-max-age", str(max_age))
        for name, value in _PREFLIGHT_VARY:
            out.set(name, value)
        return answer

    async def cors_middleware(event: H3Event, next: Next) -> Any:
        origin = event.headers.get("origin")
        if origin is not None and event.method == "OPTIONS":
            method = event.headers.get("access-control-request-method")
            if method is not None:
                return preflight(event, origin, method)
        out = event.response_headers
        if varies:
            add_vary(out, "Origin")
        if origin is not None and allows(origin):
            # Set before the handler runs: they then reach whatever answers, an error
            # or a stream whose head goes out from inside the handler.
            out.set("access-control-allow-origin", allow_origin_value(origin))
            if credentials:
                out.set("access-control-allow-credentials", "true")
            if exposed:
                out.set("access-control-expose-headers", exposed)
        return await next()

    return cors_middleware
