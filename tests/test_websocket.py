"""Pure parts of trio_h3.websocket: the handshake check and the options."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_h3.errors import HTTPError
from trio_h3.websocket import WebSocketClosed, WebSocketOptions
from trio_h3.websocket.handshake import check_upgrade_request

KEY = base64.b64encode(b"0123456789abcdef")
GOOD = [
    (b"host", b"example.com"),
    (b"upgrade", b"websocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
]


def without(name: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in GOOD if n != name]


def status_of(method: str, headers: list[tuple[bytes, bytes]]) -> int | None:
    try:
        check_upgrade_request(method, headers)
    except HTTPError as err:
        return err.status
    return None


def test_valid_handshake_passes() -> None:
    assert status_of("GET", GOOD) is None
    assert status_of("GET", [*without(b"upgrade"), (b"upgrade", b"WebSocket")]) is None


def test_plain_request_is_426_with_upgrade_header() -> None:
    with pytest.raises(HTTPError) as info:
        check_upgrade_request("GET", [(b"host", b"x")])
    assert info.value.status == 426
    assert ("Upgrade", "websocket") in info.value.headers
    assert status_of("POST", [(b"host", b"x"), (b"upgrade", b"h2c")]) == 426


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("POST", GOOD),
        ("GET", without(b"connection")),
        ("GET", without(b"sec-websocket-key")),
        ("GET", without(b"sec-websocket-version")),
        ("GET", without(b"host")),
        ("GET", [*without(b"sec-websocket-version"), (b"sec-websocket-version", b"8")]),
        ("GET", [*without(b"sec-websocket-key"), (b"sec-websocket-key", b"not base64!")]),
        ("GET", [*without(b"sec-websocket-key"), (b"sec-websocket-key", b"c2hvcnQ=")]),
        ("GET", [*GOOD, (b"sec-websocket-key", KEY)]),
        ("GET", [*GOOD, (b"content-length", b"5")]),
        ("GET", [*GOOD, (b"transfer-encoding", b"chunked")]),
        ("GET", [*GOOD, (b"Transfer-Encoding", b"identity")]),
    ],
)
def test_bad_handshakes_are_400(method: str, headers: list[tuple[bytes, bytes]]) -> None:
    assert status_of(method, headers) == 400


def test_a_handshake_with_a_body_is_refused_and_closes() -> None:
    with pytest.raises(HTTPError) as info:
        check_upgrade_request("GET", [*GOOD, (b"content-length", b"12")])
    assert info.value.status == 400
    assert "body" in info.value.message
    assert ("Connection", "close") in info.value.headers
    assert status_of("GET", [*GOOD, (b"content-length", b"0")]) is None


def test_wrong_version_names_the_supported_one() -> None:
    headers = [*without(b"sec-websocket-version"), (b"sec-websocket-version", b"8")]
    with pytest.raises(HTTPError) as info:
        check_upgrade_request("GET", headers)
    assert ("Sec-WebSocket-Version", "13") in info.value.headers


@given(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=40)), max_size=8))
def test_arbitrary_headers_give_pass_or_http_error(headers: list[tuple[bytes, bytes]]) -> None:
    assert status_of("GET", headers) in (None, 400, 426)


def test_options_defaults_and_validation() -> None:
    options = WebSocketOptions()
    assert (options.ping_interval, options.ping_timeout) == (20.0, 20.0)
    assert options.max_message_size == 1 << 20
    assert options.message_queue_size == 1
    assert WebSocketOptions(ping_interval=None).ping_interval is None
    assert options.send_timeout == 30.0
    assert options.compression == "deflate"
    assert (options.origins, options.require_origin) == (None, False)
    for bad in (
        {"ping_interval": 0},
        {"ping_timeout": -1},
        {"max_message_size": 0},
        {"send_timeout": 0},
        {"compression": "gzip"},
    ):
        with pytest.raises(ValueError):
            WebSocketOptions(**bad)


def test_route_options_are_checked_at_registration() -> None:
    from trio_h3 import H3

    app = H3()

    async def handler(ws: object) -> None:
        pass

    with pytest.raises(TypeError, match="unknown WebSocket route options: compress"):
        app.ws("/a", handler, compress=None)
    with pytest.raises(ValueError, match="compression"):
        app.ws("/b", handler, compression="brotli")
    with pytest.raises(ValueError, match="send_timeout"):
        app.ws("/c", handler, send_timeout=-1)
    app.ws("/d", handler, compression=None, send_timeout=None, origins=["*"])


def test_websocket_closed_carries_code_and_reason() -> None:
    exc = WebSocketClosed(4001, "bye")
    assert (exc.code, exc.close_reason) == (4001, "bye")
    assert exc.reason is not None and exc.reason.name == "PRIVATE_RESERVED"


def test_close_codes_match_wsproto_and_the_rfc_ranges() -> None:
    from wsproto.frame_protocol import CloseReason as WsprotoCloseReason

    import trio_h3
    from trio_h3.websocket import CloseCode
    from trio_h3.websocket.codes import NORMAL_CLOSE_CODES, may_send

    assert trio_h3.CloseCode is CloseCode
    for reason in WsprotoCloseReason:
        assert CloseCode[reason.name] == reason.value
    assert CloseCode.BAD_GATEWAY.value == 1014
    assert 1004 not in set(CloseCode)
    sendable = [c for c in range(0, 6000) if may_send(c)]
    assert sendable == [
        1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)
    ]  # fmt: skip
    assert NORMAL_CLOSE_CODES == {1000, 1001, 1005}


def test_codes_handshake_and_deflate_are_pure() -> None:
    import subprocess
    import sys

    blocked = (
        "import sys\nfor n in ('trio','h11','trio_websocket','wsproto'): sys.modules[n]=None\n"
    )
    code = blocked + (
        "import trio_h3.websocket.codes, trio_h3.websocket.handshake, trio_h3.websocket.deflate"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
