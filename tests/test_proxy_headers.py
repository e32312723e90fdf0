"""Behind a proxy: X-Forwarded-For/-Proto/-Host and RFC 7239 Forwarded set event.client,
event.url.scheme and event.url.host, from a trusted peer only (uvicorn's
--proxy-headers / --forwarded-allow-ips, names, defaults and semantics).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from helpers import RunServer
from trio.testing import MockClock

from trio_h3 import H3, H3Event, ServeOptions
from trio_h3.testing import TestClient

# Every test here runs on both parser backends (conftest.py).
pytestmark = pytest.mark.usefixtures("backend")


def make_app() -> H3:
    app = H3()

    @app.get("/")
    async def where(event: H3Event) -> dict[str, Any]:
        client = event.client
        return {
            "client": [client.host, client.port] if client else None,
            "scheme": event.url.scheme,
            "host": event.url.host,
        }

    return app


async def seen(client: TestClient | httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.get("/", headers=headers)
    assert r.status_code == 200
    result: dict[str, Any] = r.json()
    return result


PROXIED = {
    "x-forwarded-for": "203.0.113.7",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "shop.example",
}


async def test_a_trusted_and_an_untrusted_peer_over_tcp(running_server: RunServer) -> None:
    # The default: proxy_headers on, and the proxy on the same host (127.0.0.1) trusted.
    async with running_server(make_app()) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert await seen(client, PROXIED) == {
                "client": ["203.0.113.7", 0],
                "scheme": "https",
                "host": "shop.example",
            }
            plain = await seen(client, {})
            assert plain["client"][0] == "127.0.0.1" and plain["scheme"] == "http"
    # 127.0.0.1 is not among the trusted peers: the headers are ignored, whatever they say.
    async with running_server(make_app(), forwarded_allow_ips="10.0.0.1") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            untrusted = await seen(client, PROXIED | {"forwarded": "for=198.51.100.1;proto=https"})
            assert untrusted["client"][0] == "127.0.0.1"
            assert (untrusted["scheme"], untrusted["host"]) == ("http", f"127.0.0.1:{server.port}")
    async with running_server(make_app(), proxy_headers=False) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await seen(client, PROXIED))["client"][0] == "127.0.0.1"


async def test_x_forwarded_for_picks_the_rightmost_untrusted_address(
    autojump_clock: MockClock,
) -> None:
    options = ServeOptions(forwarded_allow_ips="10.0.0.0/8, 192.168.1.1")
    async with TestClient(make_app(), options, client=("10.1.2.3", 4000)) as client:
        cases = {
            # Each proxy appends the peer it saw; a spoofed left end is skipped.
            "1.1.1.1, 203.0.113.9, 10.0.0.2": ["203.0.113.9", 0],
            "203.0.113.9:5555": ["203.0.113.9", 5555],
            "[2001:db8::5]:443, 192.168.1.1": ["2001:db8::5", 443],
            "2001:db8::6": ["2001:db8::6", 0],
            # Every hop trusted: the leftmost is the client.
            "10.0.0.9, 10.0.0.8": ["10.0.0.9", 0],
            # Not an address: the peer stays the client (no junk in the logs).
            "unknown": ["10.1.2.3", "the peer's"],
            "<script>": ["10.1.2.3", "the peer's"],
            "": ["10.1.2.3", "the peer's"],
        }
        for header, expected in cases.items():
            host, port = (await seen(client, {"x-forwarded-for": header}))["client"]
            assert [host, port if port < 50000 else "the peer's"] == expected, header
        # Several header lines are one list (RFC 9110 §5.3).
        r = await client.get(
            "/", headers=[("x-forwarded-for", "198.51.100.4"), ("x-forwarded-for", "10.0.0.2")]
        )
        assert r.json()["client"] == ["198.51.100.4", 0]


async def test_x_forwarded_proto_and_host(autojump_clock: MockClock) -> None:
    options = ServeOptions(forwarded_allow_ips="10.0.0.0/8")
    async with TestClient(make_app(), options, client=("10.0.0.1", 4000)) as client:
        for proto, scheme in (
            ("https", "https"),
            ("HTTP", "http"),
            ("wss", "https"),
            ("gopher", "http"),
        ):
            assert (await seen(client, {"x-forwarded-proto": proto}))["scheme"] == scheme
        assert (await seen(client, {"x-forwarded-host": "a.example:8443"}))[
            "host"
        ] == "a.example:8443"
        assert (await seen(client, {"x-forwarded-host": "[::1]:80"}))["host"] == "[::1]:80"
        # Not a host: ignored, the request's own Host stands.
        assert (await seen(client, {"x-forwarded-host": "a b/c"}))["host"] == "testserver"
        # Lists that line up with X-Forwarded-For: the client's entry.
        chain = {
            "x-forwarded-for": "203.0.113.1, 10.0.0.5",
            "x-forwarded-proto": "https, http",
            "x-forwarded-host": "public.example, internal",
        }
        assert await seen(client, chain) == {
            "client": ["203.0.113.1", 0],
            "scheme": "https",
            "host": "public.example",
        }
        # Otherwise the rightmost: what the proxy talking to us wrote.
        assert (await seen(client, {"x-forwarded-proto": "http, https"}))["scheme"] == "https"


async def test_rfc_7239_forwarded(autojump_clock: MockClock) -> None:
    options = ServeOptions(forwarded_allow_ips="10.0.0.0/8")
    async with TestClient(make_app(), options, client=("10.0.0.1", 4000)) as client:
        header = 'for=192.0.2.60;proto=https;host="shop.example:8443", for=10.0.0.7;proto=http'
        assert await seen(client, {"forwarded": header}) == {
            "client": ["192.0.2.60", 0],
            "scheme": "https",
            "host": "shop.example:8443",
        }
        header = 'for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.7'
        assert (await seen(client, {"forwarded": header}))["client"] == ["2001:db8:cafe::17", 4711]
        # RFC 7239 §6.2, §6.3: unknown and obfuscated nodes are no address.
        for node in ("unknown", "_hidden", '"_x:_y"'):
            result = await seen(client, {"forwarded": f"for={node};proto=https"})
            assert (result["client"][0], result["scheme"]) == ("10.0.0.1", "https")
        # Parameter names are case-insensitive; junk elements are skipped, not believed.
        header = "For=198.51.100.17;Proto=https, junk;;==, for=10.0.0.8"
        result = await seen(client, {"forwarded": header})
        assert result["client"][0] == "10.0.0.1"  # the junk element is untrusted: chosen
        header = "For=198.51.100.17;Proto=https, for=10.0.0.8"
        assert (await seen(client, {"forwarded": header}))["client"] == ["198.51.100.17", 0]
        # X-Forwarded-* wins when both families are present.
        both = {"forwarded": "for=192.0.2.1;proto=https", "x-forwarded-for": "192.0.2.2"}
        assert await seen(client, both) == {
            "client": ["192.0.2.2", 0],
            "scheme": "http",
            "host": "testserver",
        }


async def test_star_trusts_every_peer_and_takes_the_leftmost(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), forwarded_allow_ips="*", client=("8.8.8.8", 1)) as client:
        result = await seen(client, {"x-forwarded-for": "198.51.100.2, 203.0.113.3"})
        assert result["client"] == ["198.51.100.2", 0]


async def test_ipv4_mapped_peers_match_ipv4_entries(autojump_clock: MockClock) -> None:
    async with TestClient(make_app(), client=("::ffff:127.0.0.1", 1)) as client:
        assert (await seen(client, {"x-forwarded-for": "198.51.100.2"}))["client"][
            0
        ] == "198.51.100.2"


async def test_forwarded_allow_ips_comes_from_the_environment(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn's FORWARDED_ALLOW_IPS, read when the server is made, when the option is unset.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.5.0.0/16")
    async with TestClient(make_app(), client=("10.5.1.1", 1)) as client:
        assert (await seen(client, {"x-forwarded-for": "192.0.2.9"}))["client"][0] == "192.0.2.9"
    async with TestClient(make_app(), client=("127.0.0.1", 1)) as client:
        assert (await seen(client, {"x-forwarded-for": "192.0.2.9"}))["client"][0] == "127.0.0.1"
    # The option wins over the environment.
    async with TestClient(make_app(), forwarded_allow_ips="127.0.0.1") as client:
        assert (await seen(client, {"x-forwarded-for": "192.0.2.9"}))["client"][0] == "192.0.2.9"
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "not-an-ip")
    with pytest.raises(ValueError, match="not-an-ip"):
        TestClient(make_app())


def test_forwarded_allow_ips_is_validated() -> None:
    assert ServeOptions(forwarded_allow_ips=["10.0.0.1", "::1", "172.16.0.0/12", "*"])
    for bad in ("localhost", "10.0.0.0/33", "1.2.3.4.5"):
        with pytest.raises(ValueError, match="forwarded_allow_ips"):
            ServeOptions(forwarded_allow_ips=bad)


async def test_the_access_log_shows_the_forwarded_client(
    caplog: pytest.LogCaptureFixture, autojump_clock: MockClock
) -> None:
    caplog.set_level(logging.INFO, logger="trio_h3.access")
    async with TestClient(make_app(), access_log=True) as client:
        await client.get("/", headers={"x-forwarded-for": "198.51.100.77"})
    lines = [r.getMessage() for r in caplog.records if r.name == "trio_h3.access"]
    assert lines and lines[0].startswith("198.51.100.77 - ")
