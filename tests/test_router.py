"""Router unit tests: pure, no Trio."""

from __future__ import annotations

from typing import Any

import pytest

from trio_h3 import Router
from trio_h3.paths import canonical_path
from trio_h3.router import ANY_METHOD, Match, split_pattern


def look(router: Router[Any], method: str, raw_path: str) -> Match[Any] | None:
    """Look ``raw_path`` up as the app does: canonical segments, with the fast path."""
    path, segments = canonical_path(raw_path)
    return router.lookup(method, segments, path)


def build(*patterns: str, method: str = "GET") -> Router[str]:
    router: Router[str] = Router()
    for pattern in patterns:
        router.add(method, pattern, pattern)
    return router


def hit(router: Router[str], path: str, method: str = "GET") -> Match[str]:
    match = look(router, method, path)
    assert match is not None, f"{path} matched nothing"
    return match


def test_split_pattern_drops_empty_segments() -> None:
    assert split_pattern("/a//b/") == ["a", "b"]
    assert split_pattern("/") == []


def test_static_routes_and_root() -> None:
    router = build("/", "/users", "/users/me")
    assert hit(router, "/").route == "/"
    assert hit(router, "/users").route == "/users"
    assert hit(router, "/users/me").route == "/users/me"
    assert look(router, "GET", "/nothing") is None
    assert look(router, "GET", "/users/me/more") is None


@pytest.mark.parametrize(
    "order",
    [
        ["/files/readme", "/files/:name", "/files/*", "/files/**"],
        ["/files/**", "/files/*", "/files/:name", "/files/readme"],
        ["/files/*", "/files/**", "/files/readme", "/files/:name"],
    ],
)
def test_priority_static_param_wildcard_catch_all_whatever_the_order(order: list[str]) -> None:
    router = build(*order)
    assert hit(router, "/files/readme").route == "/files/readme"
    match = hit(router, "/files/other")
    assert match.route == "/files/:name"
    assert match.params == {"name": "other"}
    deep = hit(router, "/files/a/b")
    assert deep.route == "/files/**"
    assert deep.params == {"_": "a/b"}


def test_unnamed_wildcard_beats_catch_all_for_one_segment() -> None:
    router = build("/x/**", "/x/*")
    match = hit(router, "/x/one")
    assert match.route == "/x/*"
    assert match.params == {"_0": "one"}
    assert hit(router, "/x/one/two").route == "/x/**"


def test_unnamed_wildcards_are_numbered() -> None:
    router = build("/a/*/b/*")
    match = hit(router, "/a/1/b/2")
    assert match.params == {"_0": "1", "_1": "2"}
    assert look(router, "GET", "/a/1/b") is None


def test_named_catch_all_captures_the_rest_including_nothing() -> None:
    router = build("/static/**:path")
    assert hit(router, "/static/css/site.css").params == {"path": "css/site.css"}
    assert hit(router, "/static").params == {"path": ""}
    assert hit(router, "/static/").params == {"path": ""}


def test_root_catch_all_matches_everything() -> None:
    router = build("/**", "/about")
    assert hit(router, "/about").route == "/about"
    assert hit(router, "/").params == {"_": ""}
    assert hit(router, "/any/thing").params == {"_": "any/thing"}


def test_backtracks_when_a_static_branch_dead_ends() -> None:
    router = build("/a/b/c", "/a/:x/d")
    match = hit(router, "/a/b/d")
    assert match.route == "/a/:x/d"
    assert match.params == {"x": "b"}
    # The failed static attempt leaves no stray params behind.
    assert hit(router, "/a/b/c").params == {}


def test_backtracking_from_param_to_wildcard_forgets_the_param() -> None:
    router = build("/v/:id/edit", "/v/*/view")
    match = hit(router, "/v/7/view")
    assert match.route == "/v/*/view"
    assert match.params == {"_0": "7"}


def test_params_are_percent_decoded_after_splitting() -> None:
    router = build("/users/:id", "/files/**:path")
    assert hit(router, "/users/a%20b").params == {"id": "a b"}
    # An encoded slash stays inside its segment.
    assert hit(router, "/users/a%2Fb").params == {"id": "a/b"}
    assert hit(router, "/users/caf%C3%A9").params == {"id": "café"}
    assert hit(router, "/files/dir%20one/x.txt").params == {"path": "dir one/x.txt"}


def test_static_segment_matches_its_encoded_spelling() -> None:
    router = build("/café/menu", "/:page/menu")
    assert hit(router, "/caf%C3%A9/menu").route == "/café/menu"


def test_trailing_and_repeated_slashes_reach_the_same_route() -> None:
    router = build("/users", "/users/:id")
    assert hit(router, "/users/").route == "/users"
    assert hit(router, "//users//").route == "/users"
    match = hit(router, "/users/42/")
    assert match.route == "/users/:id"
    assert match.params == {"id": "42"}
    # Registration ignores them too.
    assert hit(build("/posts/"), "/posts").route == "/posts/"


def test_methods_405_allowed_list_and_head_fallback() -> None:
    router: Router[str] = Router()
    router.add("GET", "/items/:id", "get")
    router.add("delete", "/items/:id", "delete")
    assert hit(router, "/items/1", "DELETE").route == "delete"
    head = hit(router, "/items/1", "HEAD")
    assert head.route == "get"
    refused = hit(router, "/items/1", "POST")
    assert refused.route is None
    assert refused.allowed == ["DELETE", "GET", "HEAD"]
    assert refused.params == {"id": "1"}


def test_explicit_head_route_wins_over_get() -> None:
    router: Router[str] = Router()
    router.add("GET", "/x", "get")
    router.add("HEAD", "/x", "head")
    assert hit(router, "/x", "HEAD").route == "head"


def test_any_method_route_and_specific_method_wins() -> None:
    router: Router[str] = Router()
    router.add(ANY_METHOD, "/hook", "any")
    router.add("POST", "/hook", "post")
    assert hit(router, "/hook", "POST").route == "post"
    assert hit(router, "/hook", "PATCH").route == "any"
    assert hit(router, "/hook", "GET").route == "any"


def test_static_fast_path_gives_405_too() -> None:
    router: Router[str] = Router()
    router.add("POST", "/login", "post")
    refused = hit(router, "/login", "GET")
    assert refused.route is None
    assert refused.allowed == ["POST"]


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ("/users/:id", "/users/:name", "conflicts"),
        ("/a/**:rest", "/a/**:tail", "conflicts"),
        ("/x", "/x/", "already registered"),
        ("/u/:id", "/u/:id", "already registered"),
    ],
)
def test_conflicting_registrations_raise(first: str, second: str, message: str) -> None:
    router = build(first)
    with pytest.raises(ValueError, match=message):
        router.add("GET", second, second)


def test_same_pattern_for_another_method_is_fine() -> None:
    router = build("/u/:id")
    router.add("POST", "/u/:id", "post")
    assert hit(router, "/u/1", "POST").route == "post"


@pytest.mark.parametrize("pattern", ["/a/**/b", "/a/:", "/a/**:"])
def test_malformed_patterns_raise(pattern: str) -> None:
    router: Router[str] = Router()
    with pytest.raises(ValueError):
        router.add("GET", pattern, pattern)


def test_routes_lists_every_registration() -> None:
    router = build("/", "/a/:x", "/b/**")
    router.add("POST", "/a/:x", "post")
    listed = {(method, pattern) for method, pattern, _ in router.routes()}
    assert listed == {("GET", "/"), ("GET", "/a/:x"), ("POST", "/a/:x"), ("GET", "/b/**")}


def count_walk_calls(router: Router[Any], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the tree nodes a lookup visits (one ``_walk`` call per node)."""
    calls = [0]
    walk = router._walk

    def counting(*args: Any) -> Any:
        calls[0] += 1
        return walk(*args)

    monkeypatch.setattr(router, "_walk", counting)
    return calls


def test_lookup_does_not_scan_every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    router: Router[str] = Router()
    for i in range(10_000):
        router.add("GET", f"/r{i}/items/:id", f"route-{i}")
        router.add("GET", f"/r{i}/static", f"static-{i}")
    calls = count_walk_calls(router, monkeypatch)
    match = hit(router, "/r9999/items/42")
    assert match.route == "route-9999"
    assert match.params == {"id": "42"}
    # root, r9999, items, :id: one node per segment plus the root.
    assert calls[0] == 4
    calls[0] = 0
    assert look(router, "GET", "/r5000/nothing/here") is None
    assert calls[0] <= 3


def test_static_lookup_among_many_routes_needs_no_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    router: Router[str] = Router()
    for i in range(10_000):
        router.add("GET", f"/s{i}", f"s-{i}")
    calls = count_walk_calls(router, monkeypatch)
    assert hit(router, "/s7777").route == "s-7777"
    assert calls[0] == 0
