"""The router: ``(method, path) -> route + params``. Pure, no I/O.

Patterns are split on ``/`` into segments, each one of:

- a static segment (``users``),
- ``:name`` — one segment captured as ``params["name"]``,
- ``*`` — one segment captured as ``params["_0"]``, ``params["_1"]``, ...,
- ``**`` — the rest of the path (possibly empty) as ``params["_"]``,
- ``**:name`` — the rest of the path as ``params["name"]``.

Routes live in a tree keyed by segment, so a lookup walks at most one node per path
segment (plus backtracking when a static branch dead-ends), never every route.
Priority at each level is static, then ``:param``/``*``, then ``**``, whatever the
registration order. Trailing and repeated slashes are ignored: ``/users/`` and
``/users`` reach the same route. Params are percent-decoded after splitting, so an
encoded ``%2F`` stays inside its segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

__all__ = ["ANY_METHOD", "Match", "Router", "split_path"]

T = TypeVar("T")

#: The method key of a route registered for every method (``app.all``).
ANY_METHOD = "*"


def split_path(path: str) -> list[str]:
    """The non-empty segments of ``path`` (so ``/a//b/`` is ``["a", "b"]``)."""
    return [s for s in path.split("/") if s]


@dataclass(slots=True)
class _Node(Generic[T]):
    static: dict[str, _Node[T]] = field(default_factory=dict)
    # The single-segment dynamic child; its captured name (None for ``*``).
    param: _Node[T] | None = None
    param_name: str | None = None
    # The ``*`` child: one unnamed segment, tried after ``:param``.
    wild: _Node[T] | None = None
    wild_name: str = "_0"
    # The catch-all: routes here match any remainder, including an empty one.
    catch_all: dict[str, T] | None = None
    catch_all_name: str = "_"
    catch_all_pattern: str = ""
    # Routes that end exactly at this node, by method.
    routes: dict[str, T] | None = None
    pattern: str = ""


@dataclass(slots=True)
class Match(Generic[T]):
    """The result of :meth:`Router.lookup`.

    ``route`` is the handler data for the method, or None when the path exists but
    not for this method (then ``allowed`` lists the methods that do: a 405).
    """

    route: T | None
    params: dict[str, str]
    allowed: list[str]
    pattern: str


class Router(Generic[T]):
    """A segment tree of routes. ``T`` is whatever the app stores per route."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()
        # Fast path for fully static patterns: one dict lookup, no tree walk.
        self._static: dict[str, tuple[dict[str, T], str]] = {}

    def add(self, method: str, pattern: str, route: T) -> None:
        """Register ``route`` for ``method`` (``ANY_METHOD`` for all) at ``pattern``."""
        method = method.upper()
        node = self._root
        segments = split_path(pattern)
        unnamed = 0
        for index, segment in enumerate(segments):
            if segment.startswith("**"):
                if index != len(segments) - 1:
                    raise ValueError(f"'**' must be the last segment of {pattern!r}")
                name = segment[3:] if segment.startswith("**:") else "_"
                if not name:
                    raise ValueError(f"empty catch-all name in {pattern!r}")
                if node.catch_all is None:
                    node.catch_all = {}
                    node.catch_all_name = name
                    node.catch_all_pattern = pattern
                elif node.catch_all_name != name:
                    raise ValueError(
                        f"{pattern!r} conflicts with {node.catch_all_pattern!r}: "
                        f"the catch-all is already named {node.catch_all_name!r}"
                    )
                self._put(node.catch_all, method, route, pattern)
                return
            if segment == "*":
                if node.wild is None:
                    node.wild = _Node()
                    node.wild_name = f"_{unnamed}"
                unnamed += 1
                node = node.wild
            elif segment.startswith(":"):
                name = segment[1:]
                if not name:
                    raise ValueError(f"empty parameter name in {pattern!r}")
                if node.param is None:
                    node.param = _Node()
                    node.param_name = name
                elif node.param_name != name:
                    raise ValueError(
                        f"{pattern!r}: parameter {name!r} conflicts with "
                        f"{node.param_name!r} registered at the same position"
                    )
                node = node.param
            else:
                node = node.static.setdefault(segment, _Node())
        if node.routes is None:
            node.routes = {}
            node.pattern = "/" + "/".join(segments)
        self._put(node.routes, method, route, pattern)
        if all(not (s.startswith(":") or s == "*") for s in segments):
            self._static["/" + "/".join(segments)] = (node.routes, node.pattern)

    @staticmethod
    def _put(table: dict[str, T], method: str, route: T, pattern: str) -> None:
        if method in table:
            raise ValueError(f"route [{method}] {pattern!r} is already registered")
        table[method] = route

    def lookup(self, method: str, path: str) -> Match[T] | None:
        """Find the route for ``method`` and the raw (still percent-encoded) ``path``.

        Returns None when no pattern matches the path at all (a 404). Matching is
        method-aware: with ``GET /users/me`` and ``POST /users/:id``, ``POST /users/me``
        reaches the param route. When patterns match the path but none for this method,
        the Match has ``route=None`` and ``allowed`` lists every method that would work
        (a 405). ``HEAD`` falls back to ``GET``, any method to an ``ANY_METHOD`` route.
        """
        key = path.rstrip("/") or "/"
        if "//" not in key and "%" not in key:
            hit = self._static.get(key)
            if hit is not None and self._accepts(hit[0], method):
                return self._select(method, hit[0], {}, hit[1])
        segments = split_path(path)
        params: dict[str, str] = {}
        near: list[tuple[dict[str, T], dict[str, str], str]] = []
        found = self._walk(self._root, segments, 0, params, method, near)
        if found is None:
            if not near:
                return None
            allowed: set[str] = set()
            for table, _, _ in near:
                allowed.update(m for m in table if m != ANY_METHOD)
            if "GET" in allowed:
                allowed.add("HEAD")
            _, near_params, pattern = near[0]
            return Match(None, self._decode(near_params), sorted(allowed), pattern)
        table, pattern = found
        return self._select(method, table, self._decode(params), pattern)

    @staticmethod
    def _decode(params: dict[str, str]) -> dict[str, str]:
        for name, value in params.items():
            if "%" in value:
                params[name] = unquote(value)
        return params

    @staticmethod
    def _accepts(table: dict[str, T], method: str) -> bool:
        return method in table or ANY_METHOD in table or (method == "HEAD" and "GET" in table)

    def _end(
        self,
        table: dict[str, T],
        pattern: str,
        params: dict[str, str],
        method: str,
        near: list[tuple[dict[str, T], dict[str, str], str]],
    ) -> tuple[dict[str, T], str] | None:
        if self._accepts(table, method):
            return table, pattern
        # The path matches but not the method: remember it for a 405, keep looking.
        near.append((table, dict(params), pattern))
        return None

    def _walk(
        self,
        node: _Node[T],
        segments: list[str],
        index: int,
        params: dict[str, str],
        method: str,
        near: list[tuple[dict[str, T], dict[str, str], str]],
    ) -> tuple[dict[str, T], str] | None:
        if index == len(segments):
            if node.routes is not None:
                found = self._end(node.routes, node.pattern, params, method, near)
                if found is not None:
                    return found
            if node.catch_all is not None:
                params[node.catch_all_name] = ""
                found = self._end(node.catch_all, node.catch_all_pattern, params, method, near)
                if found is not None:
                    return found
                del params[node.catch_all_name]
            return None
        segment = segments[index]
        child = node.static.get(segment)
        if child is None and "%" in segment:
            # A static pattern segment also matches its percent-encoded spelling.
            child = node.static.get(unquote(segment))
        if child is not None:
            found = self._walk(child, segments, index + 1, params, method, near)
            if found is not None:
                return found
        if node.param is not None:
            assert node.param_name is not None
            params[node.param_name] = segment
            found = self._walk(node.param, segments, index + 1, params, method, near)
            if found is not None:
                return found
            del params[node.param_name]
        if node.wild is not None:
            params[node.wild_name] = segment
            found = self._walk(node.wild, segments, index + 1, params, method, near)
            if found is not None:
                return found
            del params[node.wild_name]
        if node.catch_all is not None:
            params[node.catch_all_name] = "/".join(segments[index:])
            found = self._end(node.catch_all, node.catch_all_pattern, params, method, near)
            if found is not None:
                return found
            del params[node.catch_all_name]
        return None

    @staticmethod
    def _select(method: str, table: dict[str, T], params: dict[str, str], pattern: str) -> Match[T]:
        route = table.get(method)
        if route is None and method == "HEAD":
            route = table.get("GET")
        if route is None:
            route = table.get(ANY_METHOD)
        assert route is not None
        return Match(route, params, [], pattern)

    def routes(self) -> list[tuple[str, str, Any]]:
        """Every registered ``(method, pattern, route)``, for introspection."""
        out: list[tuple[str, str, Any]] = []

        def visit(node: _Node[T]) -> None:
            if node.routes:
                out.extend((m, node.pattern, r) for m, r in node.routes.items())
            if node.catch_all:
                out.extend((m, node.catch_all_pattern, r) for m, r in node.catch_all.items())
            for child in node.static.values():
                visit(child)
            if node.param is not None:
                visit(node.param)
            if node.wild is not None:
                visit(node.wild)

        visit(self._root)
        return out
