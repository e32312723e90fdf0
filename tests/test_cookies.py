"""Cookies: parsing what browsers send, building Set-Cookie right, the helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from trio.testing import MockClock

from trio_h3 import H3, H3Event, delete_cookie, set_cookie
from trio_h3.datastructures import parse_cookie_header
from trio_h3.testing import TestClient
from trio_h3.utils.cookies import MAX_COOKIE_SIZE, serialize_cookie

# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "cookies"),
    [
        ("a=1; b=two", {"a": "1", "b": "two"}),
        ("a=1;b=2", {"a": "1", "b": "2"}),
        ('  a = "quoted" ; b=', {"a": "quoted", "b": ""}),
        ("a=%20x%3B", {"a": " x;"}),
        ("a=1; a=2", {"a": "1"}),
        ("novalue; =nameless; c=3", {"c": "3"}),
        ('q="', {"q": '"'}),
        ("", {}),
        ("jwt=eyJ.a-b_c+d/e==", {"jwt": "eyJ.a-b_c+d/e=="}),
    ],
)
def test_parse_cookie_header(header: str, cookies: dict[str, str]) -> None:
    assert parse_cookie_header(header) == cookies


def test_event_cookies_merge_several_headers_first_wins() -> None:
    event = H3Event("GET", b"/", [(b"cookie", b"a=1; b=2"), (b"cookie", b"a=9; c=3")])
    assert event.cookies == {"a": "1", "b": "2", "c": "3"}
    assert event.cookies is event.cookies  # parsed once
    assert H3Event("GET", b"/", []).cookies == {}


# -- serialising -----------------------------------------------------------------------------


def test_defaults_are_the_safe_ones() -> None:
    assert serialize_cookie("sid", "abc") == "sid=abc; Path=/; HttpOnly; SameSite=Lax"


def test_every_attribute() -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert serialize_cookie(
        "id",
        "v",
        max_age=60,
        expires=expires,
        path="/app",
        domain="example.com",
        secure=True,
        httponly=False,
        samesite="Strict",  # type: ignore[arg-type]  # case-insensitive at run time
        partitioned=True,
    ) == (
        "id=v; Max-Age=60; Expires=Wed, 02 Jan 2030 01:04:05 GMT; Path=/app; "
        "Domain=example.com; Secure; SameSite=Strict; Partitioned"
    )
    naive = serialize_cookie("n", "v", expires=datetime(2030, 1, 1), path=None, samesite=None)
    assert naive == "n=v; Expires=Tue, 01 Jan 2030 00:00:00 GMT; HttpOnly"


def test_values_are_encoded_only_where_they_must_be() -> None:
    assert serialize_cookie("t", "eyJ.a-b_c+d/e==", path=None, httponly=False, samesite=None) == (
        "t=eyJ.a-b_c+d/e=="
    )
    text = 'a b;c,d"e\\f%g☃'
    header = serialize_cookie("t", text, path=None, httponly=False, samesite=None)
    assert header == "t=a%20b%3Bc%2Cd%22e%5Cf%25g%E2%98%83"
    assert parse_cookie_header(header) == {"t": text}


def test_samesite_none_and_partitioned_imply_secure() -> None:
    assert "Secure" in serialize_cookie("a", "b", samesite="none")
    assert "Secure" in serialize_cookie("a", "b", partitioned=True)


@pytest.mark.parametrize(
    ("name", "options", "problem"),
    [
        ("bad name", {}, "not a token"),
        ("semi;colon", {}, "not a token"),
        ("", {}, "not a token"),
        ("__Secure-id", {}, "must be Secure"),
        ("__Host-id", {}, "__Host- prefix"),
        ("__Host-id", {"secure": True, "domain": "example.com"}, "__Host- prefix"),
        ("__Host-id", {"secure": True, "path": "/app"}, "__Host- prefix"),
        ("id", {"path": "/a;b"}, "Path"),
        ("id", {"domain": "a\r\nb"}, "Domain"),
        ("id", {"samesite": "sometimes"}, "SameSite"),
        ("id", {"max_age": 1.5}, "Max-Age"),
        ("id", {"max_age": True}, "Max-Age"),
    ],
)
def test_invalid_cookies_are_a_value_error_naming_the_problem(
    name: str, options: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        serialize_cookie(name, "v", **options)  # type: ignore[arg-type]


def test_prefixed_cookies_with_their_rules_are_fine() -> None:
    assert serialize_cookie("__Secure-id", "v", secure=True).startswith("__Secure-id=v")
    assert serialize_cookie("__Host-id", "v", secure=True).endswith(
        "Secure; HttpOnly; SameSite=Lax"
    )


def test_a_cookie_over_what_browsers_keep_is_refused() -> None:
    serialize_cookie("a", "x" * (MAX_COOKIE_SIZE - 1))
    with pytest.raises(ValueError, match="browsers keep 4096"):
        serialize_cookie("a", "x" * MAX_COOKIE_SIZE)
    with pytest.raises(TypeError, match="must be str"):
        serialize_cookie("a", 1)  # type: ignore[arg-type]


# -- through an app ----------------------------------------------------------------------------


async def test_set_and_delete_cookie_through_an_app(autojump_clock: MockClock) -> None:
    app = H3()

    @app.get("/login")
    async def login(event: H3Event) -> dict[str, str]:
        set_cookie(event, "__Host-sid", "abc", secure=True, max_age=3600)
        set_cookie(event, "theme", "dark", httponly=False)
        return event.cookies

    @app.get("/logout")
    async def logout(event: H3Event) -> None:
        delete_cookie(event, "__Host-sid", secure=True)
        delete_cookie(event, "theme", path="/", domain=None, httponly=False)

    async with TestClient(app) as client:
        r = await client.get("/login", headers={"cookie": "old=1"})
        assert r.json() == {"old": "1"}
        assert r.headers.get_all("set-cookie") == [
            "__Host-sid=abc; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Lax",
            "theme=dark; Path=/; SameSite=Lax",
        ]
        r = await client.get("/logout")
        deleted = r.headers.get_all("set-cookie")
        assert deleted[0] == (
            "__Host-sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure; "
            "HttpOnly; SameSite=Lax"
        )
        assert deleted[1].startswith("theme=; Max-Age=0;")
    assert datetime(1970, 1, 1, tzinfo=UTC).timestamp() == 0
