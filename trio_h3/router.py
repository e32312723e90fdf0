"""The router: ``(method, canonical segments) -> route + params``. Pure, no I/O.

Patterns are split on ``/`` into segments, each one of:

- a static segment (``users``),
- ``:name``: one segment captured as ``params["name"]``,
- ``*``: one segment captured as ``params["_0"]``, ``params["_1"]``, ...,
- ``**``: the rest of the path (possibly empty) as ``params["_"]``,
- ``**:name``: the rest of the path as ``params["name"]``.

The router matches the *canonical* segments of :mod:`trio_h3.paths` (decoded once,
dot segments resolved, empty ones dropped), the same ones middleware scoping and
``mount`` see. A ``**`` param is the rest of the segments joined by ``/``; a rest that
holds a segment with an encoded ``/`` in it does not match a ``**`` route at all (it
could not be told apart from two segments), so a catch-all param never carries an
ambiguous slash. A ``:name`` param may contain one (``/files/a%2Fb`` gives ``"a/b"``).

Routes live in a tree keyed by segment, so a lookup walks at most one node per segment
(plus backtracking when a branch dead-ends), never every route. Priority at each level
is static, then ``:name``, then ``*``, then ``**``, whatever the registration order.
Param names belong to the route, not to the tree: ``/users/:id`` and
``/users/:userId/posts`` live side by side (rou3 and Starlette allow this too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Match", "Router"]

T = TypeVar("T")

#: The method key of a route registered for every method (``app.all``).
ANY_METHOD = "*"


def split_pattern(pattern: str) -> list[str]:
    """The non-empty segments of a route pattern (``/a//b/`` is ``["a", "b"]``)."""
    return [s for s in pattern.split("/") if s]


@dataclass(slots=True)
class _Leaf(Generic[T]):
    route: T
    pattern: str
    #: The names of the one-segment captures along the pattern, in order.
    names: tuple[str, ...]
    #: The name of the ``**`` capture; None for routes that end at a node.
    rest_name: str | None = None
    #: A ``mount``: it takes the rest as segments, encoded slashes and all.
    keep_segments: bool = False


@dataclass(slots=True)
class _Node(Generic[T]):
    static: dict[str, _Node[T]] = field(default_factory=dict)
    # The ``:name`` child, then the ``*`` child (tried in that order). Their names are
    # the routes', not the nodes'.
    param: _Node[T] | None = None
    wild: _Node[T] | None = None
    # Routes ending here, and catch-all routes starting here, by method.
    routes: dict[str, _Leaf[T]] | None = None
    catch_all: dict[str, _Leaf[T]] | None = None


@dataclass(slots=True)
class Match(Generic[T]):
    """The result of :meth:`Router.lookup`.

    ``route`` is the route for the method, or None when the path exists but not for
    this method (then ``allowed`` lists the methods that do: a 405). A route found by a
    catch-all after more specific patterns refused the method has ``allowed`` set to
    what those take. ``rest`` is what a ``**`` route matched, as segments (how
    ``mount`` hands a path to a sub-app).
    """

    #: The route for the request's method (None: the path exists for other methods).
    route: T | None
    #: The captured params by name (``:id``; ``*`` as ``_0``, ``_1``...; ``**`` as ``_``).
    params: dict[str, str]
    #: The methods the path takes, when ``route`` is None (the ``Allow`` of a 405).
    allowed: list[str]
    #: The pattern that matched, as registered.
    pattern: str
    #: What a ``**`` pattern matched, as canonical segments.
    rest: tuple[str, ...] = ()


_Near = list[tuple[dict[str, "_Leaf[Any]"], list[str], tuple[str, ...]]]


class Router(Generic[T]):
    """A segment tree of routes. ``T`` is whatever the app stores per route."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        # Fully static patterns: one dict lookup by canonical path, no tree walk.
        self._static: dict[str, dict[str, _Leaf[T]]] = {}

    def add(self, method: str, pattern: str, route: T, *, keep_segments: bool = False) -> None:
        """Register ``route`` for ``method`` (``ANY_METHOD`` for all) at ``pattern``.

        ``keep_segments`` (for a pattern ending in ``**``) makes the route take the rest
        as segments (:attr:`Match.rest`), even those holding an encoded ``/``: what
        ``mount`` needs to hand the rest of a path to a sub-app unchanged.
        """
        method = method.upper()
        node = self._root
        segments = split_pattern(pattern)
        names: list[str] = []
        unnamed = 0
        for index, segment in enumerate(segments):
            if segment.startswith("**"):
                if index != len(segments) - 1:
                    raise ValueError(f"'**' must be the last segment of {pattern!r}")
                rest_name = segment[3:] if segment.startswith("**:") else "_"
                if not rest_name or segment[2:3] not in ("", ":"):
                    raise ValueError(f"bad catch-all {segment!r} in {pattern!r}")
                if node.catch_all is None:
                    node.catch_all = {}
                leaf = _Leaf(
                    route,
                    pattern,
                    tuple(names),
                    None if keep_segments else rest_name,
                    keep_segments,
                )
                self._put(node.catch_all, method, leaf)
                return
            if segment == "*" or segment.startswith(":"):
                if segment == "*":
                    name = f"_{unnamed}"
                    unnamed += 1
                else:
                    name = segment[1:]
                    if not name:
                        raise ValueError(f"empty parameter name in {pattern!r}")
                if name in names:
                    raise ValueError(f"parameter {name!r} appears twice in {pattern!r}")
                names.append(name)
                if segment == "*":
                    if node.wild is None:
                        node.wild = _Node()
                    node = node.wild
                else:
                    if node.param is None:
                        node.param = _Node()
                    node = node.param
            else:
                node = node.static.setdefault(segment, _Node())
        if node.routes is None:
            node.routes = {}
        self._put(node.routes, method, _Leaf(route, pattern, tuple(names)))
        if not names:
            self._static["/" + "/".join(segments)] = node.routes

    @staticmethod
    def _put(table: dict[str, _Leaf[T]], method: str, leaf: _Leaf[T]) -> None:
        existing = table.get(method)
        if existing is not None:
            raise ValueError(
                f"route [{method}] {leaf.pattern!r} conflicts with {existing.pattern!r}, "
                "already registered at the same place"
            )
        table[method] = leaf

    def lookup(
        self, method: str, segments: Sequence[str], path: str | None = None
    ) -> Match[T] | None:
        """Find the route for ``method`` and the canonical ``segments``.

        ``path`` (the canonical path string, when the caller has it) enables the
        one-lookup fast path for static routes. Returns None when no pattern matches
        (a 404). Matching is method-aware: with ``GET /users/me`` and
        ``POST /users/:id``, ``POST /users/me`` reaches the param route. When patterns
        match the path but none for this method, the Match has ``route=None`` and
        ``allowed`` lists every method that would work (a 405). ``HEAD`` falls back to
        ``GET``, any method to an ``ANY_METHOD`` route.
        """
        if path is not None:
            table = self._static.get(path)
            if table is not None:
                leaf = self._pick(table, method)
                if leaf is not None:
                    return Match(leaf.route, {}, [], leaf.pattern)
        captured: list[str] = []
        near: _Near = []
        found = self._walk(self._root, segments, 0, captured, method, near)
        if found is None:
            if not near:
                return None
            table, values, rest = near[0]
            leaf = next(iter(table.values()))
            return Match(
                None, self._params(leaf, values, rest), self._allowed(near), leaf.pattern, rest
            )
        leaf, values, rest = found
        # A catch-all found after more specific patterns refused the method (a mount
        # at "/" under API routes): ``allowed`` says what those patterns take, so the
        # mount's miss can still be the 405 it would be without it.
        allowed = self._allowed(near) if near else []
        return Match(leaf.route, self._params(leaf, values, rest), allowed, leaf.pattern, rest)

    @staticmethod
    def _allowed(near: _Near) -> list[str]:
        allowed: set[str] = set()
        for table, _, _ in near:
            allowed.update(m for m in table if m != ANY_METHOD)
        if "GET" in allowed:
            allowed.add("HEAD")
        return sorted(allowed)

    @staticmethod
    def _params(leaf: _Leaf[Any], values: list[str], rest: tuple[str, ...]) -> dict[str, str]:
        params = dict(zip(leaf.names, values, strict=True))
        if leaf.rest_name is not None:
            params[leaf.rest_name] = "/".join(rest)
        return params

    @staticmethod
    def _pick(table: dict[str, _Leaf[T]], method: str) -> _Leaf[T] | None:
        leaf = table.get(method)
        if leaf is None and method == "HEAD":
            leaf = table.get("GET")
        if leaf is None:
            leaf = table.get(ANY_METHOD)
        return leaf

    def _walk(
        self,
        node: _Node[T],
        segments: Sequence[str],
        index: int,
        captured: list[str],
        method: str,
        near: _Near,
    ) -> tuple[_Leaf[T], list[str], tuple[str, ...]] | None:
        if index == len(segments):
            if node.routes is not None:
                leaf = self._pick(node.routes, method)
                if leaf is not None:
                    return leaf, list(captured), ()
                near.append((node.routes, list(captured), ()))
        else:
            segment = segments[index]
            child = node.static.get(segment)
            if child is not None:
                found = self._walk(child, segments, index + 1, captured, method, near)
                if found is not None:
                    return found
            for dynamic in (node.param, node.wild):
                if dynamic is not None:
                    captured.append(segment)
                    found = self._walk(dynamic, segments, index + 1, captured, method, near)
                    captured.pop()
                    if found is not None:
                        return found
        if node.catch_all is not None:
            rest = tuple(segments[index:])
            leaf = self._pick(node.catch_all, method)
            if leaf is not None and leaf.keep_segments:
                return leaf, list(captured), rest
            if any("/" in s for s in rest):
                return None
            if leaf is not None:
                return leaf, list(captured), rest
            near.append((node.catch_all, list(captured), rest))
        return None

    def routes(self) -> list[tuple[str, str, Any]]:
        """Every registered ``(method, pattern, route)``, for introspection."""
        out: list[tuple[str, str, Any]] = []

        def visit(node: _Node[T]) -> None:
            for table in (node.routes, node.catch_all):
                if table:
                    out.extend((m, leaf.pattern, leaf.route) for m, leaf in table.items())
            for child in node.static.values():
                visit(child)
            for dynamic in (node.param, node.wild):
                if dynamic is not None:
                    visit(dynamic)

        visit(self._root)
        return out
