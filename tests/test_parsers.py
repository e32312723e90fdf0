"""The two parser backends answer alike: one corpus of odd requests, fed to both.

For every request in :data:`CORPUS` the h11 and the httptools backend must give the
same statuses, close the connection at the same moment (at once, or only when the
keep-alive timeout ends it), and, for what they serve, the same bytes (but ``Date``).

Where the parsers themselves disagree, the stricter answer wins on both backends
(trio_h3/server/checks.py says why for each rule): :data:`DISAGREEMENTS` lists those
requests, the answer both give, and the raw parsers' own verdicts, so a test shows the
disagreement is real and that the strict answer is the one that goes out.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import h11
import httptools
import pytest
import trio
from helpers import read_until_eof
from trio.testing import MockClock

from trio_h3 import H3, H3Event, Response, StreamingResponse
from trio_h3.testing import TestClient

H = b"Host: a\r\n"
GET = b"GET / HTTP/1.1\r\n" + H + b"\r\n"
CHUNKED = b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"


def post(headers: bytes, body: bytes = b"") -> bytes:
    return b"POST /echo HTTP/1.1\r\n" + H + headers + b"\r\n" + body


def get(head: bytes) -> bytes:
    return b"GET / HTTP/1.1\r\n" + H + head + b"\r\n"


#: name -> the bytes a client sends (and then waits: the server decides when to close).
CORPUS: dict[str, bytes] = {
    "plain": GET,
    "pipelined": GET * 3,
    "HTTP/1.0": b"GET / HTTP/1.0\r\n\r\n",
    "HTTP/1.0 keep-alive asked": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + GET,
    "close": get(b"Connection: close\r\n") + GET,
    "close, upper case": get(b"Connection: CLOSE\r\n") + GET,
    "keep-alive, close": get(b"Connection: keep-alive, close\r\n") + GET,
    "HEAD": b"HEAD / HTTP/1.1\r\n" + H + b"\r\n",
    "HEAD of a stream": b"HEAD /stream HTTP/1.1\r\n" + H + b"\r\n",
    "stream": b"GET /stream HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n",
    "stream, HTTP/1.0": b"GET /stream HTTP/1.0\r\n\r\n",
    "stream of declared length": b"GET /sized HTTP/1.1\r\n" + H + b"\r\n" + GET,
    "204, 205, 304": b"".join(
        b"GET /status/%d HTTP/1.1\r\n" % s + H + b"\r\n" for s in (204, 205, 304)
    ),
    "headers set twice": b"GET /cookies HTTP/1.1\r\n" + H + b"\r\n",
    "Content-Length body": post(b"Content-Length: 3\r\n", b"abc") + GET,
    "chunked body": CHUNKED + b"3\r\nabc\r\n0\r\n\r\n" + GET,
    "chunk extension and trailer": CHUNKED + b"3;x=1\r\nabc\r\n0\r\nT: v\r\n\r\n" + GET,
    "chunked, then pipelined": CHUNKED
    + b"3\r\nabc\r\n0\r\n\r\n"
    + post(b"Content-Length: 2\r\n", b"xy")
    + GET,
    "chunk size not hex": CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n",
    "chunk without CRLF": CHUNKED + b"3\r\nabcX0\r\n\r\n",
    "chunk size overflow": CHUNKED + b"ffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "chunk lines with bare LF": CHUNKED + b"3\nabc\n0\n\n",
    "CL and TE": post(b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "TE list ending in chunked": post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
    "TE chunked, identity": post(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"),
    "TE xchunked": post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"),
    "TE identity": post(b"Transfer-Encoding: identity\r\n"),
    "TE twice": post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "TE with OWS, any case": post(b"Transfer-Encoding:  Chunked \r\n", b"0\r\n\r\n") + GET,
    "TE with a space before the colon": post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"),
    "CL twice, same value": post(b"Content-Length: 1\r\nContent-Length: 1\r\n", b"a"),
    "CL list": post(b"Content-Length: 1, 1\r\n", b"a"),
    "CL negative": post(b"Content-Length: -1\r\n"),
    "CL with a sign": post(b"Content-Length: +1\r\n", b"a"),
    "CL in hex": post(b"Content-Length: 0x1\r\n", b"a"),
    "CL with a space inside": post(b"Content-Length: 1 2\r\n", b"a"),
    "CL huge": post(b"Content-Length: 99999999999999999999999\r\n", b"a"),
    "no Host": b"GET / HTTP/1.1\r\n\r\n",
    "two Hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "invalid Host": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "empty Host": b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: a\n\n",
    "bare LF after a field": b"GET / HTTP/1.1\r\nHost: a\n\r\n",
    "bare CR": b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
    "obs-fold": get(b"X: a\r\n b\r\n"),
    "obs-fold with a tab": get(b"X: a\r\n\tb\r\n"),
    "empty line first": b"\r\n" + GET,
    "two empty lines first": b"\r\n\r\n" + GET,
    "field without a colon": get(b"Bad Header\r\n"),
    "space in a field name": get(b"X Y: z\r\n"),
    "space before the colon": get(b"X : z\r\n"),
    "empty field name": get(b": z\r\n"),
    "NUL in a value": get(b"X: a\x00b\r\n"),
    "control character in a value": get(b"X: a\x01b\r\n"),
    "DEL in a value": get(b"X: a\x7fb\r\n"),
    "VT in a value": get(b"X: a\x0bb\r\n"),
    "obs-text in a value": get(b"X: caf\xe9\r\n"),
    "tab in a value": get(b"X: a\tb\r\n"),
    "empty value": get(b"X:\r\n"),
    "trailing whitespace in a value": b"GET /echo-x HTTP/1.1\r\n" + H + b"X: a  \r\n\r\n",
    "UTF-8 field name": get(b"\xc3\xa9: a\r\n"),
    "lower-case method": b"get / HTTP/1.1\r\n" + H + b"\r\n",
    "unknown method": b"FOO / HTTP/1.1\r\n" + H + b"\r\n",
    "PRI": b"PRI / HTTP/1.1\r\n" + H + b"\r\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "RTSP method": b"DESCRIBE / HTTP/1.1\r\n" + H + b"\r\n",
    "PURGE": b"PURGE / HTTP/1.1\r\n" + H + b"\r\n",
    "invalid method character": b"G(T / HTTP/1.1\r\n" + H + b"\r\n",
    "two spaces after the method": b"GET  / HTTP/1.1\r\n" + H + b"\r\n",
    "tab after the method": b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n",
    "no version (HTTP/0.9's line)": b"GET /\r\n" + H + b"\r\n",
    "HTTP/1.2": b"GET / HTTP/1.2\r\n" + H + b"\r\n",
    "HTTP/2.0": b"GET / HTTP/2.0\r\n" + H + b"\r\n",
    "HTTP/0.9": b"GET / HTTP/0.9\r\n" + H + b"\r\n",
    "HTTP/3.0": b"GET / HTTP/3.0\r\n" + H + b"\r\n",
    "HTTP/1.10": b"GET / HTTP/1.10\r\n" + H + b"\r\n",
    "lower-case version": b"GET / http/1.1\r\n" + H + b"\r\n",
    "space in the target": b"GET /a b HTTP/1.1\r\n" + H + b"\r\n",
    "control character in the target": b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n",
    "UTF-8 in the target": b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n",
    "quote and braces in the target": b'GET /a"{b}|c^ HTTP/1.1\r\n' + H + b"\r\n",
    "asterisk-form": b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n",
    "absolute-form": b"GET http://a/x HTTP/1.1\r\n" + H + b"\r\n",
    "absolute-form, upper-case scheme": b"GET HTTP://A/x HTTP/1.1\r\n" + H + b"\r\n",
    "scheme without //": b"GET http:/x HTTP/1.1\r\n" + H + b"\r\n",
    "authority-form for CONNECT": b"CONNECT a:443 HTTP/1.1\r\n" + H + b"\r\n",
    "origin-form for CONNECT": b"CONNECT /x HTTP/1.1\r\n" + H + b"\r\n",
    "authority-form for GET": b"GET a:443 HTTP/1.1\r\n" + H + b"\r\n",
    "target without a slash": b"GET x HTTP/1.1\r\n" + H + b"\r\n",
    "fragment in the target": b"GET /x#frag HTTP/1.1\r\n" + H + b"\r\n",
    "encoded NUL in the path": b"GET /a%00b HTTP/1.1\r\n" + H + b"\r\n",
    "dot segments above the root": b"GET /a/../../b HTTP/1.1\r\n" + H + b"\r\n",
    "garbage": b"\x00\x01\x02garbage\r\n\r\n",
    "a TLS ClientHello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "h2c upgrade without a body": get(
        b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n"
    )
    + GET,
    "h2c upgrade with a body": post(
        b"Connection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 3\r\n", b"abc"
    )
    + GET,
    "h2c upgrade with a chunked body": post(
        b"Connection: Upgrade\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n",
        b"3\r\nabc\r\n0\r\n\r\n",
    )
    + GET,
    "Upgrade without Connection: upgrade": get(b"Upgrade: websocket\r\n") + GET,
    "WebSocket upgrade to a plain route": get(
        b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    ),
    "Expect: 100-continue, body sent": post(
        b"Expect: 100-continue\r\nContent-Length: 3\r\n", b"abc"
    ),
    "Expect: 100-continue from HTTP/1.0": b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\n"
    b"Content-Length: 3\r\n\r\nabc",
    "another expectation": post(b"Expect: foo\r\nContent-Length: 3\r\n", b"abc"),
    "a bad second request": GET + b"BAD\r\n\r\n",
    "a body after Connection: close": get(b"Connection: close\r\n")
    + post(b"Content-Length: 3\r\n", b"abc"),
    "many fields": get(b"".join(b"X%d: y\r\n" % i for i in range(200))),
    "head over the limit": get(b"X: " + b"a" * 20000 + b"\r\n"),
    "request line over the limit": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n",
}

#: Requests the client sends and then ends with EOF (half-close).
CORPUS_EOF: dict[str, bytes] = {
    "nothing": b"",
    "a head cut short": b"GET / HTTP/1.1\r\nHost: a\r\n",
    "a body cut short": post(b"Content-Length: 10\r\n", b"abc"),
    "Expect: 100-continue, no body": post(b"Expect: 100-continue\r\nContent-Length: 3\r\n"),
    "request line over the limit, unfinished": b"GET /" + b"a" * 20000,
    "head over the limit, unfinished": get(b"X: " + b"a" * 20000)[:-2],
}


def app() -> H3:
    application = H3()
    application.get("/", lambda event: "hello")

    @application.post("/echo")
    async def echo(event: H3Event) -> dict[str, int]:
        return {"received": len(await event.body())}

    @application.get("/echo-x")
    async def echo_x(event: H3Event) -> dict[str, str | None]:
        return {"x": event.headers.get("x")}

    async def chunks() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    application.get("/stream", lambda event: StreamingResponse(chunks()))
    application.get(
        "/sized", lambda event: StreamingResponse(chunks(), headers={"content-length": "4"})
    )

    @application.get("/status/:code")
    async def status(event: H3Event) -> Response:
        return Response("ignored", status=int(event.params["code"]))

    @application.get("/cookies")
    async def cookies(event: H3Event) -> Response:
        return Response("c", headers=[("set-cookie", "a=1"), ("set-cookie", "b=2")])

    return application


async def answer(raw: bytes, http: str, *, eof: bool) -> tuple[bytes, float]:
    """What the server sends back to ``raw``, and after how long it closed."""
    async with TestClient(app(), http=http) as client:
        stream = await client.open_stream()
        start = trio.current_time()
        try:
            await stream.send_all(raw)
            if eof:
                await stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        data = await read_until_eof(stream)
        return data, trio.current_time() - start


def statuses(data: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]


def without_date(data: bytes) -> bytes:
    return re.sub(rb"date: [^\r]*", b"date: -", data)


CASES = [(name, raw, False) for name, raw in CORPUS.items()]
CASES += [(name, raw, True) for name, raw in CORPUS_EOF.items()]


@pytest.mark.parametrize(("name", "raw", "eof"), CASES, ids=[c[0] for c in CASES])
async def test_both_backends_answer_alike(
    name: str, raw: bytes, eof: bool, autojump_clock: MockClock
) -> None:
    h11_data, h11_closed = await answer(raw, "h11", eof=eof)
    llhttp_data, llhttp_closed = await answer(raw, "httptools", eof=eof)
    assert statuses(llhttp_data) == statuses(h11_data), name
    # At once after a refusal or a close, or when the keep-alive timeout ends it.
    assert llhttp_closed == h11_closed, name
    if not any(status >= 400 for status in statuses(h11_data)):
        # Served: byte for byte (refusals may word their message differently).
        assert without_date(llhttp_data) == without_date(h11_data), name


# -- where the parsers disagree --------------------------------------------------------------


def h11_accepts(raw: bytes) -> bool:
    """Whether h11 alone reads ``raw`` as complete requests without an error."""
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(raw)
    try:
        while True:
            event = connection.next_event()
            if type(event) is h11.EndOfMessage:
                return True
            if event is h11.NEED_DATA:
                return False
    except h11.RemoteProtocolError:
        return False


def llhttp_accepts(raw: bytes) -> bool:
    """Whether llhttp alone (strict, no lenient flag) reads ``raw`` without an error."""

    class Sink:
        complete = False

        def on_message_complete(self) -> None:
            self.complete = True

    sink = Sink()
    try:
        httptools.HttpRequestParser(sink).feed_data(raw)
    except httptools.HttpParserUpgrade:
        return True
    except httptools.HttpParserError:
        return False
    return sink.complete


#: name -> (the request, what h11 alone does, what llhttp alone does, the status both give)
DISAGREEMENTS: dict[str, tuple[bytes, bool, bool, int]] = {
    "empty line first": (b"\r\n" + GET, False, True, 400),
    "two spaces after the method": (CORPUS["two spaces after the method"], False, True, 400),
    "no version (HTTP/0.9's line)": (CORPUS["no version (HTTP/0.9's line)"], False, True, 400),
    "bare LF": (CORPUS["bare LF"], True, False, 400),
    "obs-fold": (CORPUS["obs-fold"], True, False, 400),
    "control character in a value": (CORPUS["control character in a value"], True, False, 400),
    "DEL in a value": (CORPUS["DEL in a value"], True, False, 400),
    "target without a slash": (CORPUS["target without a slash"], True, False, 400),
    "authority-form for GET": (CORPUS["authority-form for GET"], True, False, 400),
    "chunk size with a space": (CHUNKED + b"3 \r\nabc\r\n0\r\n\r\n", True, False, 400),
    "chunk extension with a space": (CHUNKED + b"3; x=1\r\nabc\r\n0\r\n\r\n", True, False, 400),
    "TE list ending in chunked": (CORPUS["TE list ending in chunked"], False, True, 501),
    "HTTP/1.2": (CORPUS["HTTP/1.2"], True, False, 505),
    "unknown method": (CORPUS["unknown method"], True, False, 501),
    "lower-case method": (CORPUS["lower-case method"], True, False, 501),
}


@pytest.mark.parametrize("name", sorted(DISAGREEMENTS))
async def test_where_the_parsers_disagree_the_stricter_answer_wins(
    name: str, autojump_clock: MockClock
) -> None:
    raw, by_h11, by_llhttp, status = DISAGREEMENTS[name]
    # The disagreement is real (should a parser change its mind, this says so).
    assert (h11_accepts(raw), llhttp_accepts(raw)) == (by_h11, by_llhttp), name
    for http in ("h11", "httptools"):
        data, _ = await answer(raw, http, eof=False)
        assert statuses(data) == [status], (name, http)
        assert data.count(b"HTTP/1.1 ") == 1  # nothing after it is read as a request
