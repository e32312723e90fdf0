"""H3: routes, middleware and hooks; turns an H3Event into a Response.

The app knows nothing of sockets. The connection builds an :class:`H3Event`, awaits
:meth:`H3.handle` and writes whatever :class:`Response` comes back.
"""

from __future__ import annotations

import copy
import inspect
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import trio

from .errors import HTTPError
from .event import H3Event
from .response import Response, WebSocketUpgrade, error_response, to_response
from .router import ANY_METHOD, Router, split_path

__all__ = ["H3", "Handler", "Middleware", "Next", "Route"]

logger = logging.getLogger("trio_h3")

Handler = Callable[[H3Event], Any]
Next = Callable[[], Awaitable[Any]]
Middleware = Callable[[H3Event, Next], Awaitable[Any]]
Lifespan = Callable[..., AbstractAsyncContextManager[Any]]
H = TypeVar("H", bound=Callable[..., Any])

_MOUNT_PARAM = "__mount_rest"
_UNSET: Any = object()


def _as_async(handler: Handler) -> Callable[[H3Event], Awaitable[Any]]:
    """Sync handlers run inline in the connection's task: keep them short and non-blocking."""
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
    ):
        return handler

    async def run_inline(event: H3Event) -> Any:
        result = handler(event)
        if inspect.isawaitable(result):
            result = await result
        return result

    return run_inline


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(slots=True)
class Route:
    """A registered route: what the router stores per ``(method, pattern)``."""

    method: str
    pattern: str
    handler: Callable[[H3Event], Awaitable[Any]]
    #: The app that registered the route (differs from the serving app under mount).
    app: H3
    #: The handler as the user wrote it, for introspection.
    original: Any = None
    #: Route-level options (WebSocket keepalive and limits).
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _ScopedMiddleware:
    pattern: str
    router: Router[bool]
    middleware: Middleware


def _add_event_headers(response: Response, event: H3Event) -> Response:
    # Headers set on the event before the error (CORS, Set-Cookie) still apply to the
    # error response; its own Content-Type and framing stay.
    extra = [
        (name, value)
        for name, value in event.response_headers.raw
        if name not in (b"content-type", b"content-length", b"transfer-encoding")
    ]
    if not extra:
        return response
    # A copy: an on_error replacement may be a Response the app reuses.
    response = copy.copy(response)
    response.headers = response.headers.copy()
    response.headers.raw.extend(extra)
    return response


class H3:
    """An application: routes, middleware, hooks and a lifespan.

    ``on_request(event)`` runs before routing; ``on_response(event, response)`` sees
    every response (and may return a replacement); ``on_error(error, event)`` sees
    every error and may return a replacement response. ``debug=True`` adds the
    traceback to 500 bodies.
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        on_request: Callable[[H3Event], Any] | None = None,
        on_response: Callable[[H3Event, Response], Any] | None = None,
        on_error: Callable[[BaseException, H3Event], Any] | None = None,
        lifespan: Lifespan | None = None,
    ) -> None:
        self.debug = debug
        self.on_request = on_request
        self.on_response = on_response
        self.on_error = on_error
        self.router: Router[Route] = Router()
        self._middleware: list[Middleware] = []
        self._scoped: list[_ScopedMiddleware] = []
        self._mounted: list[tuple[str, H3]] = []
        self._lifespan: Lifespan | None = None
        if lifespan is not None:
            self.lifespan(lifespan)

    # -- registration ----------------------------------------------------------------

    def on(self, method: str, path: str, handler: H | None = None) -> Any:
        """Register ``handler`` for ``method`` at ``path``; without it, a decorator."""
        if handler is None:

            def decorator(fn: H) -> H:
                self.on(method, path, fn)
                return fn

            return decorator
        method = method.upper()
        route = Route(method, path, _as_async(handler), self, handler)
        self.router.add(method, path, route)
        return handler

    @overload
    def get(self, path: str) -> Callable[[H], H]: ...
    @overload
    def get(self, path: str, handler: H) -> H: ...
    def get(self, path: str, handler: H | None = None) -> Any:
        """``GET path`` (HEAD falls back to it)."""
        return self.on("GET", path, handler)

    @overload
    def post(self, path: str) -> Callable[[H], H]: ...
    @overload
    def post(self, path: str, handler: H) -> H: ...
    def post(self, path: str, handler: H | None = None) -> Any:
        """``POST path``."""
        return self.on("POST", path, handler)

    @overload
    def put(self, path: str) -> Callable[[H], H]: ...
    @overload
    def put(self, path: str, handler: H) -> H: ...
    def put(self, path: str, handler: H | None = None) -> Any:
        """``PUT path``."""
        return self.on("PUT", path, handler)

    @overload
    def patch(self, path: str) -> Callable[[H], H]: ...
    @overload
    def patch(self, path: str, handler: H) -> H: ...
    def patch(self, path: str, handler: H | None = None) -> Any:
        """``PATCH path``."""
        return self.on("PATCH", path, handler)

    @overload
    def delete(self, path: str) -> Callable[[H], H]: ...
    @overload
    def delete(self, path: str, handler: H) -> H: ...
    def delete(self, path: str, handler: H | None = None) -> Any:
        """``DELETE path``."""
        return self.on("DELETE", path, handler)

    @overload
    def head(self, path: str) -> Callable[[H], H]: ...
    @overload
    def head(self, path: str, handler: H) -> H: ...
    def head(self, path: str, handler: H | None = None) -> Any:
        """``HEAD path`` (only needed to answer HEAD differently from GET)."""
        return self.on("HEAD", path, handler)

    @overload
    def options(self, path: str) -> Callable[[H], H]: ...
    @overload
    def options(self, path: str, handler: H) -> H: ...
    def options(self, path: str, handler: H | None = None) -> Any:
        """``OPTIONS path``."""
        return self.on("OPTIONS", path, handler)

    @overload
    def all(self, path: str) -> Callable[[H], H]: ...
    @overload
    def all(self, path: str, handler: H) -> H: ...
    def all(self, path: str, handler: H | None = None) -> Any:
        """Every method at ``path`` (a method-specific route there wins)."""
        return self.on(ANY_METHOD, path, handler)

    def ws(
        self,
        path: str,
        handler: H | None = None,
        *,
        ping_interval: float | None = _UNSET,
        ping_timeout: float = _UNSET,
        max_message_size: int = _UNSET,
        message_queue_size: int = _UNSET,
        close_timeout: float = _UNSET,
    ) -> Any:
        """A WebSocket route: ``handler(ws)`` runs after the upgrade.

        Middleware runs before the upgrade (an auth middleware can answer 401). A
        plain GET gets 426, a bad handshake 400. Keyword arguments override the
        server-wide WebSocket defaults of :class:`ServeOptions` for this route.
        """
        if handler is None:

            def decorator(fn: H) -> H:
                self.ws(
                    path,
                    fn,
                    ping_interval=ping_interval,
                    ping_timeout=ping_timeout,
                    max_message_size=max_message_size,
                    message_queue_size=message_queue_size,
                    close_timeout=close_timeout,
                )
                return fn

            return decorator
        overrides = {
            name: value
            for name, value in (
                ("ping_interval", ping_interval),
                ("ping_timeout", ping_timeout),
                ("max_message_size", max_message_size),
                ("message_queue_size", message_queue_size),
                ("close_timeout", close_timeout),
            )
            if value is not _UNSET
        }
        ws_handler = handler

        async def upgrade(event: H3Event) -> WebSocketUpgrade:
            from .websocket import check_upgrade_request

            check_upgrade_request(event.method, event._raw_headers)
            return WebSocketUpgrade(ws_handler, overrides)

        route = Route("GET", path, upgrade, self, handler, overrides)
        self.router.add("GET", path, route)
        return handler

    def use(
        self, path_or_middleware: str | Middleware, middleware: Middleware | None = None
    ) -> Any:
        """Add onion middleware ``async def mw(event, next)``, for every path or a pattern.

        ``return await next()`` continues down the chain and may change what comes
        back; returning a value without calling ``next`` answers the request there.
        ``app.use("/admin/**", mw)`` limits it to paths matching the pattern.
        """
        if isinstance(path_or_middleware, str):
            pattern = path_or_middleware
            if middleware is None:

                def decorator(fn: Middleware) -> Middleware:
                    self.use(pattern, fn)
                    return fn

                return decorator
            router: Router[bool] = Router()
            router.add(ANY_METHOD, pattern, True)
            self._scoped.append(_ScopedMiddleware(pattern, router, middleware))
            return middleware
        self._middleware.append(path_or_middleware)
        return path_or_middleware

    def mount(self, prefix: str, app: H3) -> None:
        """Serve ``app``'s routes and middleware under ``prefix`` (``/api`` -> ``/api/...``)."""
        segments = split_path(prefix)
        if not segments:
            raise ValueError("mount prefix must not be '/'")
        clean = "/" + "/".join(segments)
        sub = app

        async def delegate(event: H3Event) -> Any:
            rest = event.params.pop(_MOUNT_PARAM, "")
            return await sub._dispatch(event, "/" + rest)

        for pattern in (clean, f"{clean}/**:{_MOUNT_PARAM}"):
            self.router.add(ANY_METHOD, pattern, Route(ANY_METHOD, pattern, delegate, sub, sub))
        self._mounted.append((clean, app))

    def lifespan(self, fn: Lifespan) -> Lifespan:
        """Set the lifespan: entered before the first request, exited on shutdown.

        ``fn(nursery)`` or ``fn(app, nursery)`` returns an async context manager (an
        async generator function is wrapped for you); ``nursery`` lives as long as the
        server, for background tasks. Usable as a decorator.
        """
        if inspect.isasyncgenfunction(fn):
            fn = asynccontextmanager(fn)
        self._lifespan = fn
        return fn

    @asynccontextmanager
    async def run_lifespan(self, nursery: trio.Nursery) -> AsyncIterator[None]:
        """Enter this app's lifespan and those of mounted apps (used by the server)."""
        async with AsyncExitStack() as stack:
            if self._lifespan is not None:
                params = len(inspect.signature(self._lifespan).parameters)
                args = (self, nursery) if params >= 2 else (nursery,)
                await stack.enter_async_context(self._lifespan(*args))
            for _, sub in self._mounted:
                await stack.enter_async_context(sub.run_lifespan(nursery))
            yield

    # -- handling ----------------------------------------------------------------------

    async def handle(self, event: H3Event) -> Response:
        """Run hooks, middleware and the route for ``event``; never raises for app errors."""
        event.app = self
        try:
            if self.on_request is not None:
                await _maybe_await(self.on_request(event))
            value = await self._dispatch(event, event.raw_path)
            if event._sse is not None and (value is None or isinstance(value, Response)):
                from .sse import sse_response

                response = sse_response(event, value)
            else:
                response = to_response(value, event.status, event.response_headers)
        except Exception as exc:
            response = await self._handle_error(event, exc)
            response = _add_event_headers(response, event)
        if self.on_response is not None:
            try:
                replacement = await _maybe_await(self.on_response(event, response))
                if replacement is not None:
                    response = to_response(replacement, None, None)
            except Exception as exc:
                response = await self._handle_error(event, exc)
        return response

    async def _dispatch(self, event: H3Event, path: str) -> Any:
        match = self.router.lookup(event.method, path)
        route = None
        if match is not None:
            event.params = match.params
            route = match.route
        middleware = self._middleware
        if self._scoped:
            middleware = middleware + [
                s.middleware for s in self._scoped if s.router.lookup("GET", path) is not None
            ]
        if route is not None and not middleware:
            return await route.handler(event)

        async def endpoint() -> Any:
            if route is not None:
                return await route.handler(event)
            if match is not None:
                allow = ", ".join(match.allowed)
                raise HTTPError(
                    405,
                    f"Method {event.method} is not allowed for {event.path}",
                    headers=[("allow", allow)],
                )
            raise HTTPError(404, f"Cannot find any route matching [{event.method}] {event.path}")

        if not middleware:
            return await endpoint()

        def make_next(index: int) -> Next:
            if index == len(middleware):
                return endpoint

            async def call_next() -> Any:
                return await middleware[index](event, make_next(index + 1))

            return call_next

        return await make_next(0)()

    async def _handle_error(self, event: H3Event, exc: Exception) -> Response:
        if isinstance(exc, HTTPError):
            error = exc
            stack = None
        else:
            logger.error("Unhandled error in %s %s", event.method, event.path, exc_info=exc)
            error = HTTPError(500, "Internal Server Error")
            stack = "".join(traceback.format_exception(exc)) if self.debug else None
        if self.on_error is not None:
            try:
                replacement = await _maybe_await(self.on_error(exc, event))
                if replacement is not None:
                    return to_response(replacement, error.status, None)
            except Exception as hook_exc:
                logger.error("on_error hook failed", exc_info=hook_exc)
        return error_response(error, stack=stack)

    def __repr__(self) -> str:
        return f"<H3 with {len(self.router.routes())} routes>"
