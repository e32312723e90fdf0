"""H3: routes, middleware, hooks and mounts; turns an H3Event into a Response.

The app knows nothing of sockets or of Trio. The server builds an :class:`H3Event`,
awaits :meth:`H3.handle` and writes whatever :class:`Response` comes back. Errors a
handler raises become responses here (``HTTPError`` its own, anything else a logged
500); what is not an ``Exception`` (``KeyboardInterrupt``, a stray ``Cancelled``...) is
the server's to contain (:mod:`trio_h3._guest`).

Order of a request through one app: ``on_request`` -> middleware (registration order,
global and scoped alike) -> the route (or a mounted app, which applies its own hooks
and middleware to its routes) -> ``on_response``; ``on_error`` sees every error raised
on the way and may answer instead.
"""

from __future__ import annotations

import copy
import inspect
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack, cast, overload

from .errors import HTTPError
from .event import H3Event
from .middleware import MiddlewareStack
from .response import Response, error_response, to_response
from .router import ANY_METHOD, Match, Router, split_pattern
from .server.options import ServeOptions
from .sse.response import sse_response
from .types import Handler, Middleware, Mountable, WebSocketHandler
from .websocket.handshake import WebSocketUpgrade, check_upgrade_request

if TYPE_CHECKING:
    import trio

__all__ = ["H3", "Route", "RouteOptions"]

logger = logging.getLogger("trio_h3")

#: ``lifespan(nursery)`` / ``lifespan(app)`` / ``lifespan(app, nursery)``: an async
#: context manager, or an async generator function (wrapped with ``asynccontextmanager``).
Lifespan = Callable[..., AbstractAsyncContextManager[Any] | AsyncIterator[Any]]
H = TypeVar("H", bound=Callable[..., Any])
W = TypeVar("W", bound=WebSocketHandler)

_UNSET: Any = object()


def _is_async(handler: Any) -> bool:
    while hasattr(handler, "func"):  # functools.partial
        handler = handler.func
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - async callable objects
    )


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _as_async(handler: Handler, inline: bool) -> Callable[[H3Event], Awaitable[Any]]:
    """An async handler as it is; a plain ``def`` in a worker thread (or inline if asked)."""
    if _is_async(handler):
        return handler

    if inline:

        async def run_inline(event: H3Event) -> Any:
            return await _maybe_await(handler(event))

        return run_inline

    async def run_in_thread(event: H3Event) -> Any:
        # A blocking handler must not stall every other connection (FastAPI and
        # Starlette run sync endpoints in a thread pool too).
        return await _maybe_await(await event.run_sync(handler, event))

    return run_in_thread


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
    #: The request body limit of this route (``_UNSET``: the server's; None: no limit).
    max_body_size: Any = _UNSET
    #: The whole-body deadline of this route (``_UNSET``: the server's; None: none).
    body_timeout: Any = _UNSET
    #: A mounted app (or :class:`~trio_h3.types.Mountable`) this route hands the rest
    #: of the path to.
    mounted: H3 | Mountable | None = None
    #: Route-level options (WebSocket settings).
    options: dict[str, Any] = field(default_factory=dict)


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


class RouteOptions(TypedDict, total=False):
    """Per-route options of ``app.on`` / ``app.get`` / ..."""

    #: The request body limit in bytes (None: no limit); default: the server's.
    max_body_size: int | None
    #: The whole-body deadline in seconds (None: none); default: the server's.
    body_timeout: float | None
    #: Run a plain ``def`` handler in the connection's task instead of a thread.
    inline: bool


def _check_limit(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number or None, not {value!r}")


class H3:
    """An application: routes, middleware, hooks, mounts and a lifespan.

    ``on_request(event)`` runs before routing; ``on_response(event, response)`` sees
    every response (and may return a replacement); ``on_error(error, event)`` sees
    every error and may return a replacement response. ``debug=True`` adds the
    traceback to 500 bodies. A mounted app applies its own hooks and ``debug``.

    ``serve_options``: the server settings this app needs (a body limit, timeouts...),
    applied by ``serve(app)``, ``trio-h3 run`` and the TestClient alike, with what they
    are given on top (keywords, flags). Only the served app's count, not a mounted one's.
    """

    def __init__(
        self,
        *,
        debug: bool = False,
        on_request: Callable[[H3Event], Any] | None = None,
        on_response: Callable[[H3Event, Response], Any] | None = None,
        on_error: Callable[[BaseException, H3Event], Any] | None = None,
        lifespan: Lifespan | None = None,
        serve_options: ServeOptions | None = None,
    ) -> None:
        if serve_options is not None and not isinstance(serve_options, ServeOptions):
            raise TypeError(
                f"serve_options must be a ServeOptions, not {type(serve_options).__name__}"
            )
        #: The server settings this app carries (None: the defaults).
        self.serve_options = serve_options
        self.debug = debug
        self.on_request = on_request
        self.on_response = on_response
        self.on_error = on_error
        self.router: Router[Route] = Router()
        self.middleware = MiddlewareStack()
        self._mounted: list[tuple[str, H3]] = []
        self._lifespan: Callable[..., AbstractAsyncContextManager[Any]] | None = None
        self._lifespan_args: Callable[[H3, trio.Nursery], tuple[Any, ...]] = _nursery_only
        if lifespan is not None:
            self.lifespan(lifespan)

    # -- registration ----------------------------------------------------------------

    @overload
    def on(self, method: str, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]: ...
    @overload
    def on(self, method: str, path: str, handler: H, **options: Unpack[RouteOptions]) -> H: ...
    def on(self, method: str, path: str, handler: Any = None, **options: Any) -> Any:
        """Register ``handler`` for ``method`` at ``path``; without it, a decorator.

        Options (:class:`RouteOptions`): ``max_body_size`` overrides the server's request
        body limit for this route (``None``: no limit, for streamed uploads);
        ``body_timeout`` its whole-body deadline; a plain ``def`` handler runs in a
        worker thread unless ``inline=True`` (then it must not block).
        """
        unknown = set(options) - set(RouteOptions.__annotations__)
        if unknown:
            raise TypeError(f"unknown route options: {', '.join(sorted(unknown))}")
        _check_limit("max_body_size", options.get("max_body_size"))
        _check_limit("body_timeout", options.get("body_timeout"))
        if handler is None:

            def decorator(fn: H) -> H:
                self.on(method, path, fn, **options)
                return fn

            return decorator
        method = method.upper()
        route = Route(
            method,
            path,
            _as_async(handler, options.get("inline", False)),
            self,
            handler,
            options.get("max_body_size", _UNSET),
            options.get("body_timeout", _UNSET),
        )
        self.router.add(method, path, route)
        return handler

    def _verb(self, method: str, path: str, handler: Any, options: dict[str, Any]) -> Any:
        return self.on(method, path, handler, **options)

    @overload
    def get(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]: ...
    @overload
    def get(self, path: str, handler: H, **options: Unpack[RouteOptions]) -> H: ...
    def get(self, path: str, handler: Any = None, **options: Any) -> Any:
        """``GET path`` (HEAD falls back to it)."""
        return self._verb("GET", path, handler, options)

    @overload
    def post(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]: ...
    @overload
    def post(self, path: str, handler: H, **options: Unpack[RouteOptions]) -> H: ...
    def post(self, path: str, handler: Any = None, **options: Any) -> Any:
        """``POST path``."""
        return self._verb("POST", path, handler, options)

    @overload
    def put(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]: ...
    @overload
    def put(self, path: str, handler: H, **options: Unpack[RouteOptions]) -> H: ...
    def put(self, path: str, handler: Any = None, **options: Any) -> Any:
        """``PUT path``."""
        return self._verb("PUT", path, handler, options)

    @overload
    def patch(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]: ...
    @overload
    def patch(self, path: str, handler: H, **options: Unpack[RouteOptions]) -> H: ...
    def patch(self, path: str, handler: Any = None, **options: Any) -> Any:
        """``PATCH path``."""
        return self._verb("PATCH", path, handler, options)

    @overload
    def delete(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]: ...
    @overload
    def delete(self, path: str, handler: H, **options: Unpack[RouteOptions]) -> H: ...
    def delete(self, path: str, handler: Any = None, **options: Any) -> Any:
        """``DELETE path``."""
        return self._verb("DELETE", path, handler, options)

    @overload
    def head(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]: ...
    @overload
    def head(self, path: str, handler: H, **options: Unpack[RouteOptions]) -> H: ...
    def head(self, path: str, handler: Any = None, **options: Any) -> Any:
        """``HEAD path`` (only needed to answer HEAD differently from GET)."""
        return self._verb("HEAD", path, handler, options)

    @overload
    def options(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]: ...
    @overload
    def options(self, path: str, handler: H, **options: Unpack[RouteOptions]) -> H: ...
    def options(self, path: str, handler: Any = None, **options: Any) -> Any:
        """``OPTIONS path``."""
        return self._verb("OPTIONS", path, handler, options)

    @overload
    def all(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[H], H]: ...
    @overload
    def all(self, path: str, handler: H, **options: Unpack[RouteOptions]) -> H: ...
    def all(self, path: str, handler: Any = None, **options: Any) -> Any:
        """Every method at ``path`` (a method-specific route there wins)."""
        return self._verb(ANY_METHOD, path, handler, options)

    @overload
    def ws(self, path: str, **options: Any) -> Callable[[W], W]: ...
    @overload
    def ws(self, path: str, handler: W, **options: Any) -> W: ...
    def ws(self, path: str, handler: Any = None, **options: Any) -> Any:
        """A WebSocket route: ``async def handler(ws)`` runs after the upgrade.

        Middleware runs before the upgrade (an auth middleware can answer 401). A
        plain GET gets 426, a bad handshake 400, an ``Origin`` the route does not allow
        403. Keyword arguments (``ping_interval``, ``ping_timeout``, ``max_message_size``,
        ``message_queue_size``, ``close_timeout``, ``send_timeout``, ``origins``,
        ``require_origin``, ``compression``; see :class:`~trio_h3.WebSocketOptions`)
        override the server-wide WebSocket defaults of :class:`~trio_h3.ServeOptions`
        for this route; an unknown or invalid one is an error here, at registration.
        """
        from .websocket.options import check_route_options

        options = check_route_options(options)
        if handler is None:

            def decorator(fn: W) -> W:
                self.ws(path, fn, **options)
                return fn

            return decorator
        ws_handler: WebSocketHandler = handler

        async def upgrade(event: H3Event) -> WebSocketUpgrade:
            check_upgrade_request(event.method, event.raw_headers)
            return WebSocketUpgrade(ws_handler, options)

        self.router.add("GET", path, Route("GET", path, upgrade, self, handler, options=options))
        return handler

    @overload
    def use(self, middleware: Middleware, /) -> Middleware: ...
    @overload
    def use(self, pattern: str, /) -> Callable[[Middleware], Middleware]: ...
    @overload
    def use(self, pattern: str, middleware: Middleware, /) -> Middleware: ...
    def use(self, first: str | Middleware, middleware: Middleware | None = None) -> Any:
        """Add onion middleware ``async def mw(event, next)``, for every path or a pattern.

        ``return await next()`` continues down the chain and may change what comes
        back; returning a value without calling ``next`` answers the request there.
        ``app.use("/admin/**", mw)`` limits it to paths matching the pattern. Layers
        run in registration order.
        """
        if isinstance(first, str):
            pattern = first
            if middleware is None:

                def decorator(fn: Middleware) -> Middleware:
                    self.middleware.add(fn, pattern)
                    return fn

                return decorator
            self.middleware.add(middleware, pattern)
            return middleware
        self.middleware.add(first)
        return first

    def mount(self, prefix: str, app: H3 | Mountable) -> None:
        """Serve ``app`` under ``prefix`` (``/api`` -> ``/api/...``).

        ``app`` is an :class:`H3` app or any :class:`~trio_h3.types.Mountable`
        (``StaticFiles``). The prefix may capture params (``/orgs/:org``); they reach the
        sub-app's handlers. The sub-app's middleware, hooks and ``debug`` apply to its
        routes, and this app's middleware wraps them.

        ``prefix`` may be ``"/"``: the mount is then the app's last resort, since a
        ``**`` pattern loses to every other route whatever the registration order
        (``app.mount("/", StaticFiles("site"))`` next to API routes). A miss there is a
        404 only when nothing else takes the path: a path that routes take for other
        methods gets their 405.
        """
        segments = split_pattern(prefix)
        clean = "/" + "/".join(segments)
        pattern = f"{clean.rstrip('/')}/**"
        owner = app if isinstance(app, H3) else self
        route = Route(ANY_METHOD, pattern, _mount_placeholder, owner, app, mounted=app)
        self.router.add(ANY_METHOD, pattern, route, keep_segments=True)
        if isinstance(app, H3):
            self._mounted.append((clean, app))

    def lifespan(self, fn: Lifespan) -> Lifespan:
        """Set the lifespan: entered before the first request, exited on shutdown.

        ``fn(nursery)``, ``fn(app)`` (FastAPI's form) or ``fn(app, nursery)`` returns an
        async context manager (an async generator function is wrapped for you);
        ``nursery`` lives as long as the server, for background tasks. A lone parameter
        is told apart by its name (``app`` / ``nursery``) or its annotation (``H3`` /
        ``trio.Nursery``); any other is refused here with a TypeError, never guessed.
        Usable as a decorator.
        """
        self._lifespan_args = _lifespan_binding(fn)
        if inspect.isasyncgenfunction(fn):
            self._lifespan = asynccontextmanager(fn)
        else:
            self._lifespan = cast(Callable[..., AbstractAsyncContextManager[Any]], fn)
        return fn

    @asynccontextmanager
    async def run_lifespan(self, nursery: trio.Nursery) -> AsyncIterator[None]:
        """Enter this app's lifespan and those of mounted apps (used by the server)."""
        async with AsyncExitStack() as stack:
            if self._lifespan is not None:
                args = self._lifespan_args(self, nursery)
                await stack.enter_async_context(self._lifespan(*args))
            for _, sub in self._mounted:
                await stack.enter_async_context(sub.run_lifespan(nursery))
            yield

    # -- handling ----------------------------------------------------------------------

    def handle(self, event: H3Event) -> Coroutine[Any, Any, Response]:
        """Answer ``event``: hooks, middleware, the route. Never raises for app errors.

        Only what is not an ``Exception`` (see the module docstring) leaves it. Await
        it (``await app.handle(event)``): it is :meth:`handle_segments` for the event's
        own path, handed over rather than awaited here, which saves a coroutine level
        on every request and every suspension in it.
        """
        return self.handle_segments(event, event.segments, event.path)

    async def handle_segments(
        self, event: H3Event, segments: Sequence[str], path: str | None = None
    ) -> Response:
        """Answer ``event`` for the canonical ``segments`` (how a mount hands its rest on).

        ``path`` is the canonical path string of ``segments`` when the caller has it.
        """
        event.app = self
        try:
            event.check_path()
            if self.on_request is not None:
                await _maybe_await(self.on_request(event))
            route, match, layers = self._route(event, segments, path)
            if route is not None and route.mounted is None and not layers:
                value = await route.handler(event)  # the usual request, without a level
            else:
                value = await self._dispatch(event, route, match, layers)
            if event.sse_request is not None:
                response = sse_response(event, event.sse_request, value)
            else:
                response = to_response(value, event.status, event.response_headers)
                if not response.prepared:
                    response = await response.prepare(event)
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

    def _route(
        self, event: H3Event, segments: Sequence[str], path: str | None
    ) -> tuple[Route | None, Match[Route] | None, Sequence[Middleware]]:
        """The route for ``event`` (its params and limits applied), the router's match,
        and the middleware layers on the way."""
        match = self.router.lookup(event.method, segments, path)
        route = None
        if match is not None:
            route = match.route
            if match.params:
                event.params = {**event.params, **match.params} if event.params else match.params
            if route is not None:
                event.route = route.pattern
                if route.max_body_size is not _UNSET:
                    event.max_body_size = route.max_body_size
                if route.body_timeout is not _UNSET:
                    event.body_timeout = route.body_timeout
        layers = self.middleware.for_path(segments) if self.middleware else ()
        return route, match, layers

    async def _dispatch(
        self,
        event: H3Event,
        route: Route | None,
        match: Match[Route] | None,
        layers: Sequence[Middleware],
    ) -> Any:
        """Through the middleware to the route, a mount or the 404/405 (see :meth:`_route`)."""

        async def endpoint() -> Any:
            if route is not None:
                if route.mounted is not None:
                    assert match is not None
                    try:
                        response = await route.mounted.handle_segments(event, match.rest)
                    except HTTPError as error:
                        raise _miss(error, event, match.allowed) from None
                    finally:
                        event.app = self
                    return response
                return await route.handler(event)
            if match is not None:
                raise HTTPError(
                    405,
                    f"Method {event.method} is not allowed for {event.path}",
                    headers=[("allow", ", ".join(match.allowed))],
                )
            raise HTTPError(404, f"Cannot find any route matching [{event.method}] {event.path}")

        return await MiddlewareStack.run(event, layers, endpoint)

    async def _handle_error(self, event: H3Event, exc: Exception) -> Response:
        if isinstance(exc, HTTPError):
            error = exc
            stack = None
        else:
            logger.error(
                "Unhandled error in %s %s (route %s)",
                event.method,
                event.path,
                event.route or "-",
                exc_info=exc,
            )
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


def _miss(error: HTTPError, event: H3Event, allowed: list[str]) -> HTTPError:
    """A mount's 404 (or 405) where more specific routes take other methods: their 405."""
    if not allowed or error.status not in (404, 405):
        return error
    methods = set(allowed)
    for name, value in error.headers:
        if name.lower() == "allow":
            methods.update(m.strip() for m in value.split(",") if m.strip())
    return HTTPError(
        405,
        f"Method {event.method} is not allowed for {event.path}",
        headers=[("allow", ", ".join(sorted(methods)))],
    )


def _nursery_only(app: H3, nursery: trio.Nursery) -> tuple[Any, ...]:
    return (nursery,)


def _lifespan_binding(fn: Lifespan) -> Callable[[H3, trio.Nursery], tuple[Any, ...]]:
    """How to call ``fn``: with the nursery, the app, or both (see :meth:`H3.lifespan`)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable: the documented form
        return _nursery_only
    params = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) >= 2:
        if _role(params[0]) == "nursery" and _role(params[1]) == "app":
            return lambda app, nursery: (nursery, app)
        return lambda app, nursery: (app, nursery)
    if not params:
        return lambda app, nursery: ()
    role = _role(params[0])
    if role == "app":
        return lambda app, nursery: (app,)
    if role == "nursery":
        return _nursery_only
    raise TypeError(
        f"lifespan {getattr(fn, '__qualname__', fn)!r} takes one parameter, "
        f"{params[0].name!r}: is it the app or the nursery? Name it 'app' (FastAPI's "
        "form) or 'nursery', annotate it (H3 / trio.Nursery), or take both: "
        "lifespan(app, nursery)"
    )


def _role(param: inspect.Parameter) -> str | None:
    annotation = param.annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    if isinstance(annotation, type) and issubclass(annotation, H3):
        return "app"
    if "Nursery" in str(text):
        return "nursery"
    if param.name in ("app", "application") or text.rsplit(".", 1)[-1] == "H3":
        return "app"
    if param.name == "nursery":
        return "nursery"
    return None


async def _mount_placeholder(event: H3Event) -> Any:  # pragma: no cover - never called
    raise AssertionError("a mount route is dispatched by its app, not called")
