"""Pure parts of trio_h3.websocket: the handshake check and the options."""

from __future__ import annotations

import base64
import collections

import pytest
from hypothesis import event, given, settings
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


# -- property: any request gets exactly the answer its headers call for ----------------------

Request = tuple[str, list[tuple[bytes, bytes]]]
#: The headers check_upgrade_request reads; noise headers never use these names.
HANDSHAKE_NAMES = {
    b"host",
    b"upgrade",
    b"connection",
    b"sec-websocket-key",
    b"sec-websocket-version",
    # An upgrade with a body is refused (its framing headers are checked too).
    b"content-length",
    b"transfer-encoding",
}
noise_headers = st.lists(
    st.tuples(st.binary(max_size=20), st.binary(max_size=40)).filter(
        lambda header: header[0].lower() not in HANDSHAKE_NAMES
    ),
    max_size=6,
)


@st.composite
def any_case(draw: st.DrawFn, word: bytes) -> bytes:
    """``word`` with each letter upper- or lower-case (header names and tokens are
    case-insensitive)."""
    upper = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return bytes(c - 32 if up and 97 <= c <= 122 else c for c, up in zip(word, upper, strict=True))


@st.composite
def token_list(draw: st.DrawFn, required: bytes | None, others: list[bytes]) -> bytes:
    """A comma-separated header value: ``required`` (any case) among other tokens."""
    tokens = draw(st.lists(st.sampled_from(others), max_size=3))
    if required is not None:
        tokens.insert(draw(st.integers(0, len(tokens))), draw(any_case(required)))
    separator = draw(st.sampled_from([b",", b", ", b" ,  "]))
    return separator.join(tokens)


@st.composite
def valid_handshake(draw: st.DrawFn) -> dict[bytes, list[bytes]]:
    """The five handshake headers, valid, each value in one of its accepted spellings."""
    return {
        b"host": [draw(st.binary(max_size=20))],
        b"upgrade": [draw(token_list(b"websocket", [b"h2c", b"foo/1"]))],
        b"connection": [draw(token_list(b"upgrade", [b"keep-alive", b"te"]))],
        b"sec-websocket-key": [base64.b64encode(draw(st.binary(min_size=16, max_size=16)))],
        b"sec-websocket-version": [draw(st.sampled_from([b"13", b" 13", b"13 "]))],
    }


not_sixteen_bytes = st.binary(max_size=15) | st.binary(min_size=17, max_size=40)
#: Ways to break a handshake that does ask for a WebSocket: each is a 400.
DEFECTS: dict[str, st.SearchStrategy[dict[bytes, list[bytes]]]] = {
    "no connection": st.just({b"connection": []}),
    "connection without upgrade": st.builds(
        lambda value: {b"connection": [value]}, token_list(None, [b"keep-alive", b"close"])
    ),
    "no version": st.just({b"sec-websocket-version": []}),
    "other version": st.builds(
        lambda value: {b"sec-websocket-version": [value]},
        st.sampled_from([b"8", b"12", b"14", b"13, 8", b""]),
    ),
    "two versions": st.just({b"sec-websocket-version": [b"13", b"13"]}),
    "no key": st.just({b"sec-websocket-key": []}),
    "two keys": st.just({b"sec-websocket-key": [KEY, KEY]}),
    "key not 16 bytes": st.builds(
        lambda raw: {b"sec-websocket-key": [base64.b64encode(raw)]}, not_sixteen_bytes
    ),
    "key not base64": st.just({b"sec-websocket-key": [b"not base64!"]}),
    "no host": st.just({b"host": []}),
}
OTHER_METHODS = ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT"]


@st.composite
def requests_and_expected(draw: st.DrawFn) -> tuple[Request, int | None, str]:
    """A request, the status it must get (None: accepted) and which kind it is."""
    fields = draw(valid_handshake())
    method = draw(st.sampled_from(["GET", "get", "Get"]))
    kind = draw(st.sampled_from(["valid", "broken", "plain"]))
    expected: int | None = None
    if kind == "broken":
        defect = draw(st.sampled_from([*DEFECTS, "not GET"]))
        kind = f"broken: {defect}"
        if defect == "not GET":
            method = draw(st.sampled_from(OTHER_METHODS))
        else:
            fields |= draw(DEFECTS[defect])
        expected = 400
    elif kind == "plain":
        # No "websocket" among the Upgrade tokens: whatever else is there, it is a 426.
        upgrade = draw(st.lists(token_list(None, [b"h2c", b"tls/1.0", b"websockets"])))
        fields[b"upgrade"] = upgrade
        for name in draw(st.sets(st.sampled_from(sorted(fields.keys() - {b"upgrade"})))):
            fields[name] = []
        method = draw(st.sampled_from(["GET", *OTHER_METHODS]))
        expected = 426
    headers = [(draw(any_case(name)), value) for name, values in fields.items() for value in values]
    headers = draw(st.permutations(headers + draw(noise_headers)))
    return (method, headers), expected, kind


@pytest.mark.slow
def test_arbitrary_headers_get_exactly_the_answer_they_call_for() -> None:
    outcomes: collections.Counter[int | None] = collections.Counter()

    @settings(max_examples=300)
    @given(requests_and_expected())
    def check(case: tuple[Request, int | None, str]) -> None:
        (method, headers), expected, kind = case
        event(kind)
        assert status_of(method, headers) == expected, kind
        outcomes[expected] += 1

    check()
    # Every answer was exercised, not only the one random headers would mostly get.
    assert set(outcomes) == {None, 400, 426}, outcomes


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
