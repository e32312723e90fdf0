"""The SSE wire encoder, tested without Trio, against the WHATWG parsing rules.

Two independent parsers check the encoder: ``httpx-sse`` (through a real
``httpx.Response`` built from the encoded bytes) and our own
``trio_h3.testing.SSEParser``. The spec cannot carry a CR in data: every CR LF, CR and
LF of ``data`` becomes one line break, and the parser joins ``data`` lines with LF. So
round trips compare against the data with its line breaks normalised to LF, and
exactly against the data itself when it has no CR.
"""

from __future__ import annotations

import collections
import re

import httpx
import pytest
from httpx_sse import EventSource
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_h3 import SSEEvent, encode_comment, encode_event
from trio_h3.testing import ServerSentEvent, SSEParser

_BREAKS = re.compile(r"\r\n|\r|\n")


def normalise(data: str) -> str:
    """What an EventSource sees for ``data``: CR LF, CR and LF all become LF."""
    return _BREAKS.sub("\n", data)


def parse_ours(
    payload: bytes, *, chunk: int | None = None
) -> tuple[list[ServerSentEvent], SSEParser]:
    parser = SSEParser()
    events: list[ServerSentEvent] = []
    if chunk is None:
        events.extend(parser.feed(payload))
    else:
        for start in range(0, len(payload), chunk):
            events.extend(parser.feed(payload[start : start + chunk]))
    return events, parser


def parse_httpx_sse(payload: bytes) -> list[tuple[str, str, str, int | None]]:
    """(event, data, id, retry) of each event, as httpx-sse decodes a real response.

    httpx-sse reports an event without a type as ``"message"``, like EventSource.
    """
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream; charset=utf-8"}, content=payload
    )
    return [(sse.event, sse.data, sse.id, sse.retry) for sse in EventSource(response).iter_sse()]


# -- the exact bytes ------------------------------------------------------------------


def test_plain_event_bytes() -> None:
    assert encode_event("hello") == b"data: hello\n\n"


def test_all_fields_in_order() -> None:
    assert (
        encode_event("x", event="update", id="7", retry=1500)
        == b"event: update\nid: 7\nretry: 1500\ndata: x\n\n"
    )


def test_sse_event_encode_matches_function() -> None:
    event = SSEEvent(data="a\nb", event="e", id="1", retry=0)
    assert event.encode() == encode_event("a\nb", event="e", id="1", retry=0)
    assert event.encode() == b"event: e\nid: 1\nretry: 0\ndata: a\ndata: b\n\n"


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        ("a\r\nb", [b"a", b"b"]),
        ("a\rb", [b"a", b"b"]),
        ("a\nb", [b"a", b"b"]),
        ("a\r\rb", [b"a", b"", b"b"]),
        ("a\n\r\nb", [b"a", b"", b"b"]),
        ("a\r\n\rb", [b"a", b"", b"b"]),
        ("\na", [b"", b"a"]),
        ("a\r", [b"a", b""]),
        ("a\n", [b"a", b""]),
        ("\r\n", [b"", b""]),
        ("", [b""]),
    ],
)
def test_data_split_on_every_line_break(data: str, lines: list[bytes]) -> None:
    expected = b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
    assert encode_event(data) == expected
    # No CR survives into the output: the only line terminator is LF.
    assert b"\r" not in encode_event(data)


def test_other_unicode_breaks_are_not_line_breaks() -> None:
    # The SSE parser splits only on CR and LF; NEL, LS, PS, VT and FF are data.
    data = "a\x85b\u2028c\u2029d\x0be\x0cf"
    assert encode_event(data) == f"data: {data}\n\n".encode()
    events, _ = parse_ours(encode_event(data))
    assert [e.data for e in events] == [data]


def test_data_is_utf8() -> None:
    assert encode_event("héllo ☃ 🎉") == "data: héllo ☃ 🎉\n\n".encode()


def test_data_must_be_str() -> None:
    with pytest.raises(TypeError, match="data"):
        encode_event(b"bytes")  # type: ignore[arg-type]


# -- single-line fields -----------------------------------------------------------------


@pytest.mark.parametrize("field", ["event", "id"])
@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "\n", "\r", "x\n"])
def test_line_break_in_single_line_field_is_value_error(field: str, bad: str) -> None:
    with pytest.raises(ValueError, match=f"'{field}'"):
        encode_event("data", **{field: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["\x00", "a\x00b", "1\x00"])
def test_nul_in_id_is_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match=r"'id'.*NUL"):
        encode_event("data", id=bad)


def test_nul_in_event_and_data_is_allowed() -> None:
    # The spec ignores only an id with NUL; NUL in data or event type is delivered.
    payload = encode_event("a\x00b", event="t\x00")
    events, _ = parse_ours(payload)
    assert events == [ServerSentEvent(data="a\x00b", event="t\x00")]


def test_empty_id_is_allowed_and_resets_last_event_id() -> None:
    assert encode_event("x", id="") == b"id: \ndata: x\n\n"
    _, parser = parse_ours(encode_event("a", id="5") + encode_event("b", id=""))
    assert parser.last_event_id == ""


@pytest.mark.parametrize("field", ["event", "id"])
def test_single_line_field_must_be_str(field: str) -> None:
    with pytest.raises(TypeError, match=field):
        encode_event("x", **{field: 5})  # type: ignore[arg-type]


@pytest.mark.parametrize("retry", [0, 1, 3000, 2**40])
def test_retry_non_negative_int(retry: int) -> None:
    payload = encode_event("x", retry=retry)
    assert f"retry: {retry}\n".encode() in payload
    _, parser = parse_ours(payload)
    assert parser.retry == retry


@pytest.mark.parametrize("retry", [-1, 1.5, "100", True, False, "1\ndata: x"])
def test_retry_rejected(retry: object) -> None:
    with pytest.raises(ValueError, match="'retry'"):
        encode_event("x", retry=retry)  # type: ignore[arg-type]


# -- comments ------------------------------------------------------------------------


def test_comment_bytes() -> None:
    assert encode_comment("ping") == b": ping\n\n"
    assert encode_comment() == b":\n\n"
    assert encode_comment("") == b":\n\n"


@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\r\nb"])
def test_multiline_comment_stays_comment(text: str) -> None:
    assert encode_comment(text) == b": a\n: b\n\n"


def test_comment_injection_yields_no_event() -> None:
    payload = encode_comment("x\ndata: injected\n\nevent: spoofed\r\rdata: y")
    events, parser = parse_ours(payload)
    assert events == []
    assert parse_httpx_sse(payload) == []
    assert parser.comments == ["x", "data: injected", "", "event: spoofed", "", "data: y"]


def test_comment_must_be_str() -> None:
    with pytest.raises(TypeError, match="comment"):
        encode_comment(b"x")  # type: ignore[arg-type]


# -- injection attempts ------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "x\revent: spoofed",
        "x\nevent: spoofed",
        "x\r\nevent: spoofed",
        "x\r\rdata: second event",
        "x\n\ndata: second event",
        "x\r\n\r\nid: 666\r\n\r\ndata: y",
        "ok\rretry: 1\r",
        "\r\nid: forged\n",
    ],
)
def test_data_cannot_forge_fields_or_events(data: str) -> None:
    payload = encode_event(data, event="real", id="1")
    ours, parser = parse_ours(payload)
    assert ours == [ServerSentEvent(data=normalise(data), event="real", id="1")]
    assert parser.retry is None
    assert parse_httpx_sse(payload) == [("real", normalise(data), "1", None)]
    # Every line of the payload is one of our own fields.
    for line in payload.split(b"\n")[:-2]:
        assert line.split(b":", 1)[0] in (b"event", b"id", b"data")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event", "a\ndata: injected"),
        ("event", "a\revent: spoofed"),
        ("event", "a\r\n\r\ndata: own event"),
        ("id", "1\ndata: injected"),
        ("id", "1\rretry: 0"),
        ("id", "1\r\n\r\n"),
    ],
)
def test_single_line_field_injection_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"SSE field '{field}'"):
        encode_event("x", **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"SSE field '{field}'"):
        SSEEvent(data="x", **{field: value}).encode()  # type: ignore[arg-type]


# -- the spec's edge cases -----------------------------------------------------------------


def test_trailing_cr_is_one_line_break_not_lost() -> None:
    # A lone CR at the end of data is a line break: the event ends with an empty data
    # line, so the data the client sees ends with LF (the spec's parser never sees a
    # CR). It must not eat the blank line that ends the event.
    payload = encode_event("a\r") + encode_event("b")
    assert parse_httpx_sse(payload) == [
        ("message", "a\n", "", None),
        ("message", "b", "", None),
    ]
    events, _ = parse_ours(payload)
    assert [e.data for e in events] == ["a\n", "b"]


def test_cr_lf_split_across_chunks_is_one_break() -> None:
    # A CR at a chunk boundary may be the first half of CR LF: a parser that treats it
    # as a line end at once would see a spurious blank line and dispatch early.
    payload = b"data: a\r\ndata: b\r\n\r\n"
    for chunk in range(1, len(payload) + 1):
        events, _ = parse_ours(payload, chunk=chunk)
        assert [e.data for e in events] == ["a\nb"], chunk


@pytest.mark.parametrize("data", [" x", "  x", " ", "x ", "\ufeffx", ": x", "data: x"])
def test_leading_space_bom_and_colons_survive(data: str) -> None:
    # The encoder writes "data: " + value and the parser removes exactly one space,
    # so a leading space of the data is kept. A BOM is stripped only at the very start
    # of the stream, which is always a field name, never data.
    payload = encode_event(data)
    assert payload.startswith(b"data: ")
    events, _ = parse_ours(payload)
    assert [e.data for e in events] == [data]
    assert [e[1] for e in parse_httpx_sse(payload)] == [data]


def test_event_and_id_keep_their_spaces() -> None:
    payload = encode_event("x", event=" spaced ", id=" 1 ")
    events, _ = parse_ours(payload)
    assert events == [ServerSentEvent(data="x", event=" spaced ", id=" 1 ")]
    assert parse_httpx_sse(payload) == [(" spaced ", "x", " 1 ", None)]


def test_parser_strips_bom_only_at_stream_start() -> None:
    events, _ = parse_ours(b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n")
    # The second BOM is part of a field name "\ufeffdata", which is ignored.
    assert [e.data for e in events] == ["a"]


def test_multibyte_character_split_across_chunks() -> None:
    payload = encode_event("☃🎉é")
    for chunk in range(1, 6):
        events, _ = parse_ours(payload, chunk=chunk)
        assert [e.data for e in events] == ["☃🎉é"]


# -- property tests: any data survives the round trip ------------------------------------------

# Text biased towards the characters that matter: line breaks, spaces, colons, BOM, NUL.
_tricky = st.sampled_from(["\r", "\n", "\r\n", " ", ":", "\ufeff", "\x00", "data: ", "\x85"])
_data = st.lists(st.one_of(st.text(), _tricky), max_size=12).map("".join)
_ids = st.text().filter(lambda s: not ({"\r", "\n", "\x00"} & set(s)))
_names = st.text().filter(lambda s: not ({"\r", "\n"} & set(s)))


@pytest.mark.slow
@settings(max_examples=400)
@given(data=_data)
@example(data="a\r")
@example(data="\r")
@example(data="\r\r\n\n")
@example(data=" leading space")
@example(data="\ufeffbom")
@example(data="x\revent: spoofed")
def test_any_data_round_trips(data: str) -> None:
    payload = encode_event(data)
    expected = normalise(data)
    assert parse_httpx_sse(payload) == [("message", expected, "", None)]
    ours, _ = parse_ours(payload)
    assert ours == [ServerSentEvent(data=expected)]
    if "\r" not in data:
        assert ours[0].data == data


@pytest.mark.slow
@settings(max_examples=200)
@given(data=_data, event=_names, id=_ids, retry=st.none() | st.integers(min_value=0))
def test_any_event_round_trips(data: str, event: str, id: str, retry: int | None) -> None:
    payload = encode_event(data, event=event, id=id, retry=retry)
    assert parse_httpx_sse(payload) == [(event or "message", normalise(data), id, retry)]
    ours, parser = parse_ours(payload)
    expected = ServerSentEvent(data=normalise(data), event=event or "message", id=id, retry=retry)
    assert ours == [expected]
    assert parser.last_event_id == id


@pytest.mark.slow
@settings(max_examples=200)
@given(items=st.lists(_data, min_size=1, max_size=6), chunk=st.integers(min_value=1, max_value=17))
def test_event_sequences_round_trip_in_any_chunking(items: list[str], chunk: int) -> None:
    payload = b"".join(encode_event(d, id=str(i)) for i, d in enumerate(items))
    expected = [normalise(d) for d in items]
    assert [e[1] for e in parse_httpx_sse(payload)] == expected
    ours, parser = parse_ours(payload, chunk=chunk)
    assert [e.data for e in ours] == expected
    assert [e.id for e in ours] == [str(i) for i in range(len(items))]
    assert parser.last_event_id == str(len(items) - 1)


@pytest.mark.slow
@settings(max_examples=200)
@given(text=_data, data=_data)
def test_any_comment_is_invisible(text: str, data: str) -> None:
    payload = encode_comment(text) + encode_event(data)
    assert [e[1] for e in parse_httpx_sse(payload)] == [normalise(data)]
    ours, parser = parse_ours(payload)
    assert [e.data for e in ours] == [normalise(data)]
    assert parser.comments == normalise(text).split("\n")


@pytest.mark.slow
def test_single_line_fields_never_inject() -> None:
    outcomes: collections.Counter[str] = collections.Counter()

    @given(value=_data)  # biased towards CR, LF and NUL: both outcomes come up
    def check(value: str) -> None:
        for field in ("event", "id"):
            refused = bool({"\r", "\n"} & set(value)) or (field == "id" and "\x00" in value)
            try:
                payload = encode_event("x", **{field: value})  # type: ignore[arg-type]
            except ValueError as exc:
                assert refused, f"{field}={value!r} was refused: {exc}"
                assert field in str(exc)
                outcomes["refused"] += 1
                continue
            assert not refused, f"{field}={value!r} was encoded: {payload!r}"
            assert payload.count(b"\n") == 3  # the field, the data line, the blank line
            assert len(parse_httpx_sse(payload)) == 1
            outcomes["encoded"] += 1

    check()
    assert set(outcomes) == {"refused", "encoded"}, outcomes


def test_lone_surrogate_is_a_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match="'data'"):
        encode_event("ok \ud800")
    with pytest.raises(ValueError, match="'event'"):
        encode_event("ok", event="\udfff")
