"""Onion middleware: the chain around a route, and which layers apply to a path. Pure.

``async def mw(event, next)``: ``return await next()`` runs the rest of the chain (and
may change what comes back); returning without calling ``next`` answers there. A layer
is global (``app.use(mw)``) or scoped to a route pattern (``app.use("/admin/**", mw)``).
Layers run in the order they were registered, global and scoped alike, outermost first.

A scoped layer matches the request's *canonical segments* with the same router the
routes use (:mod:`trio_h3.router`, :mod:`trio_h3.paths`), so a guard on
``/api/admin/**`` sees exactly the path the route and any ``mount`` see: there is no
second spelling of a path that reaches the route but not the guard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .router import ANY_METHOD, Router

if TYPE_CHECKING:
    from .event import H3Event
    from .types import Middleware, Next

__all__: list[str] = []


@dataclass(frozen=True, slots=True)
class _Layer:
    middleware: Middleware
    #: None for a global layer; else the router that says which paths it covers.
    scope: Router[bool] | None
    pattern: str | None


class MiddlewareStack:
    """The middleware of one app, in registration order."""

    __slots__ = ("_global_only", "_layers")

    def __init__(self) -> None:
        self._layers: list[_Layer] = []
        # The layers when none is scoped: the same list for every request.
        self._global_only: list[Middleware] | None = []

    def add(self, middleware: Middleware, pattern: str | None = None) -> None:
        """Add ``middleware`` for every path, or for the paths matching ``pattern``."""
        scope: Router[bool] | None = None
        if pattern is not None:
            scope = Router()
            scope.add(ANY_METHOD, pattern, True)
        self._layers.append(_Layer(middleware, scope, pattern))
        self._global_only = (
            [layer.middleware for layer in self._layers]
            if all(layer.scope is None for layer in self._layers)
            else None
        )

    def __bool__(self) -> bool:
        return bool(self._layers)

    def for_path(self, segments: Sequence[str]) -> list[Middleware]:
        """The layers that apply to ``segments``, outermost first."""
        if self._global_only is not None:
            return self._global_only
        return [
            layer.middleware
            for layer in self._layers
            if layer.scope is None or layer.scope.lookup(ANY_METHOD, segments) is not None
        ]

    @staticmethod
    async def run(
        event: H3Event, layers: Sequence[Middleware], endpoint: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Run ``layers`` around ``endpoint`` for ``event``: the onion."""
        if not layers:
            return await endpoint()

        def make_next(index: int) -> Next:
            if index == len(layers):
                return endpoint

            async def call_next() -> Any:
                return await layers[index](event, make_next(index + 1))

            return call_next

        return await make_next(0)()
