"""The request side of the test client: URLs against ``base_url``, query parameters,
headers, the request as sent, and the request a redirect leads to. Pure.

A path is sent exactly as written (no normalisation, no percent-encoding), so a test
can send the odd targets a server must refuse; only ``params=`` is encoded (as httpx:
``urlencode``, a list value repeats its key, its keys replace the same keys of the
target's own query).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlencode, urljoin

from ..datastructures import Headers
from .encoding import DataArg, FilesArg, encode_body, form_pairs

__all__ = ["RequestURL", "TestRequest"]

HeadersArg: TypeAlias = Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None
#: ``params=``: a mapping (a list value repeats its key), a list of pairs, or a query string.
ParamsArg: TypeAlias = Mapping[str, Any] | Iterable[tuple[str, Any]] | str | None

_ABSOLUTE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


class RequestURL(str):
    """The URL a request went to: a ``str`` (compares equal to its text) with its parts.

    ``RequestURL("http://testserver/a?b=1").path == "/a"``; ``.target`` is what the
    request line carries (``/a?b=1``).
    """

    __slots__ = ()

    @classmethod
    def build(cls, scheme: str, netloc: str, target: str) -> RequestURL:
        """``scheme://netloc`` + ``target`` (a default port is left out of the netloc)."""
        scheme = scheme.lower()
        host, _, port = netloc.rpartition(":") if _has_port(netloc) else (netloc, "", "")
        if port and int(port) == _DEFAULT_PORTS.get(scheme):
            netloc = host
        return cls(f"{scheme}://{netloc}{target}")

    def _split(self) -> tuple[str, str, str]:
        match = _ABSOLUTE.fullmatch(self)
        if match is None:
            raise ValueError(f"not an absolute URL: {str(self)!r}")
        return match.group(1), match.group(2), match.group(3)

    @property
    def scheme(self) -> str:
        """``http`` or ``https`` (lowercase)."""
        return self._split()[0]

    @property
    def netloc(self) -> str:
        """``host`` or ``host:port`` as the ``Host`` header carries it."""
        return self._split()[1]

    @property
    def host(self) -> str:
        """The host name, lowercase."""
        netloc = self.netloc
        return (netloc.rpartition(":")[0] if _has_port(netloc) else netloc).lower()

    @property
    def port(self) -> int:
        """The port: explicit, else the scheme's default."""
        netloc = self.netloc
        if _has_port(netloc):
            return int(netloc.rpartition(":")[2])
        return _DEFAULT_PORTS.get(self.scheme, 80)

    @property
    def target(self) -> str:
        """What the request line carries: the path and the query, as written."""
        return self._split()[2] or "/"

    @property
    def path(self) -> str:
        """The path, as written (still percent-encoded)."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The query string, without ``?``."""
        return self.target.partition("?")[2]


def _has_port(netloc: str) -> bool:
    head, sep, tail = netloc.rpartition(":")
    return bool(sep) and tail.isdigit() and not head.endswith(":")  # not a bare IPv6


def merge_url(base_url: RequestURL, url: str) -> RequestURL:
    """``url`` against ``base_url``, as httpx does: an absolute URL stands alone (less its
    fragment); anything else is a target under the base URL's path."""
    match = _ABSOLUTE.fullmatch(url)
    if match is not None:
        scheme, netloc, target = match.groups()
        return RequestURL.build(scheme, netloc, target.partition("#")[0] or "/")
    prefix = base_url.path.rstrip("/")
    if url == "*" and not prefix:
        target = "*"  # OPTIONS * (RFC 9112 §3.2.4)
    elif prefix:
        target = prefix + "/" + url.lstrip("/")
    else:
        target = url if url.startswith("/") else "/" + url
    return RequestURL.build(base_url.scheme, base_url.netloc, target)


def _param_pairs(params: ParamsArg) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, str):
        return parse_qsl(params, keep_blank_values=True)
    return form_pairs(params)


def merge_params(url: RequestURL, *params: ParamsArg) -> RequestURL:
    """``url`` with ``params`` merged into its query; a later key replaces an earlier one."""
    merged: dict[str, list[str]] = {}
    given = False
    for layer in params:
        pairs = _param_pairs(layer)
        given = given or bool(pairs)
        replaced: dict[str, list[str]] = {}
        for key, value in pairs:
            replaced.setdefault(key, []).append(value)
        merged.update(replaced)
    if not given:
        return url
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(url.query, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    query.update(merged)
    pairs = [(key, value) for key, values in query.items() for value in values]
    return RequestURL.build(url.scheme, url.netloc, f"{url.path}?{urlencode(pairs)}")


def merge_headers(default: HeadersArg, given: HeadersArg) -> Headers:
    """``default`` headers with ``given`` ones replacing every value of the same name."""
    override = Headers(given)
    merged = Headers(default)
    for name in override.keys():
        merged.delete(name)
    for name, value in override.items():
        merged.add(name, value)
    return merged


@dataclass
class TestRequest:
    """A request as the test client sent it (``response.request``)."""

    __test__ = False  # not a pytest test class

    method: str
    url: RequestURL
    #: Every header sent except ``Cookie``, which comes from the jar at send time
    #: (unless the caller gave one).
    headers: Headers
    #: The body; ``b""`` for none and for a streamed one.
    content: bytes = b""
    #: A streamed body (``content=`` an iterable), sent chunked and once only.
    stream: AsyncIterable[bytes] | None = field(default=None, repr=False)
    #: The request's own ``cookies=``: sent after the jar's, never stored.
    cookies: dict[str, str] = field(default_factory=dict)


# RFC 9110 §8.6: a user agent SHOULD send Content-Length when a method defines a body
# and there is none; httpx sends 0 for these three.
_BODY_METHODS = ("POST", "PUT", "PATCH")


def build_request(
    method: str,
    url: RequestURL,
    headers: Headers,
    *,
    content: bytes | str | Iterable[bytes] | AsyncIterable[bytes] | None = None,
    data: DataArg | None = None,
    files: FilesArg | None = None,
    json: object = None,
    cookies: Mapping[str, str] | None = None,
) -> TestRequest:
    """The request to send: ``Host`` first, the caller's headers, then the body's
    defaults (Content-Type, Content-Length or chunked) where the caller gave none."""
    body_headers, body = encode_body(
        content=content,
        data=data,
        files=files,
        json_value=json,
        content_type=headers.get("content-type"),
    )
    sent = Headers()
    if "host" not in headers:
        sent.add("host", url.netloc)
    for name, value in headers.items():
        sent.add(name, value)
    framed = "content-length" in headers or "transfer-encoding" in headers
    for name, value in body_headers.items():
        if name in ("content-length", "transfer-encoding"):
            if not framed:
                sent.add(name, value)
        elif name not in headers:
            sent.add(name, value)
    if (
        method.upper() in _BODY_METHODS
        and not framed
        and not body_headers.keys() & {"content-length", "transfer-encoding"}
    ):
        sent.add("content-length", "0")
    if body is None or isinstance(body, bytes):
        return TestRequest(method, url, sent, body or b"", None, dict(cookies or {}))
    return TestRequest(method, url, sent, b"", body, dict(cookies or {}))


# The framing of a body dropped when a redirect becomes a GET. Like httpx (and unlike
# the Fetch standard, which also drops Content-Type and the other body headers), every
# other header is kept.
_BODY_HEADERS = ("content-length", "transfer-encoding")


def redirect_method(method: str, status: int) -> str:
    """httpx's (and browsers') rule: 303 and 302 become GET (HEAD stays HEAD), a POST
    answered with 301 becomes GET; 307 and 308 keep the method and the body."""
    if status in (302, 303) and method != "HEAD":
        return "GET"
    if status == 301 and method == "POST":
        return "GET"
    return method


def redirect_request(request: TestRequest, status: int, location: str) -> TestRequest:
    """The request a ``status`` response with ``location`` leads to.

    Raises RuntimeError for a streamed body the redirect would have to send again.
    """
    joined = urljoin(request.url, location.strip())
    url = merge_url(request.url, joined.partition("#")[0])
    method = redirect_method(request.method, status)
    headers = request.headers.copy()
    headers.delete("cookie")  # recomputed from the jar, as httpx does
    if url.netloc != request.url.netloc or url.scheme != request.url.scheme:
        headers.set("host", url.netloc)
        upgrade = request.url.scheme == "http" and url.scheme == "https"
        if url.host != request.url.host or not upgrade:
            headers.delete("authorization")  # not sent to another origin
    content, stream = request.content, request.stream
    if method != request.method and method == "GET":
        content, stream = b"", None
        for name in _BODY_HEADERS:
            headers.delete(name)
    elif stream is not None:
        raise RuntimeError(
            f"cannot follow a {status} redirect: the request's streamed body was already sent"
        )
    return TestRequest(method, url, headers, content, stream, dict(request.cookies))
