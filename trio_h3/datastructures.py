"""Request and response values: headers, query parameters, forms, cookies, URL, address. Pure.

Everything here is plain data with no I/O and no Trio, so it can be built and tested on
its own. :class:`Headers`, :class:`QueryParams` and :class:`FormData` share one
read-only multi-value mapping API, :class:`MultiMapping`:
``m[key]`` and ``m.get(key)`` give the first value, ``m.get_all(key)`` (also spelled
``getall``) every value in order, ``m.items()`` every pair with repeats kept.

Header names and values are validated where they are set, with the rules h11 applies on
the way out (RFC 9110 §5.1 and §5.5): a name is a token; a value has no leading or
trailing whitespace and no control characters (CR, LF, NUL, VT, FF...). So a value that
would forge a header or split a response is a ValueError naming the header at the line
that set it, never a dropped connection later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar, overload
from urllib.parse import parse_qsl, unquote

if TYPE_CHECKING:
    from .utils.forms import UploadFile

__all__ = ["URL", "Address", "FormData", "Headers", "MultiMapping", "QueryParams"]

V = TypeVar("V")
D = TypeVar("D")

# RFC 9110 §5.6.2: token = 1*tchar (the same expression as h11's _abnf.token).
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# RFC 9110 §5.5: field-value = *field-content, field-content = field-vchar
# [ 1*( SP / HTAB / field-vchar ) field-vchar ]; field-vchar = VCHAR / obs-text.
# As in h11's _abnf.field_value: no leading/trailing whitespace, no control characters.
_FIELD_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?")
# RFC 9110 §8.6: Content-Length = 1*DIGIT.
_DIGITS = re.compile(rb"[0-9]+")


def _latin1(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    # latin-1 maps HTTP's header octets one-to-one (RFC 9110 §5.5); a character beyond
    # it cannot be sent in a header at all.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"header text {value!r} has characters outside latin-1; percent-encode it"
        ) from None


def check_header(name: bytes, value: bytes) -> None:
    """Raise ValueError unless ``name: value`` is a header h11 would send (RFC 9110 §5).

    ``name`` is expected lowercased. ``content-length`` must also be all digits.
    """
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name.decode('latin-1')!r}: it must be a token")
    if not _FIELD_VALUE.fullmatch(value):
        raise ValueError(
            f"invalid value for header {name.decode('latin-1')!r}: {value!r} "
            "(no control characters such as CR, LF, NUL, VT or FF, and no leading "
            "or trailing whitespace)"
        )
    if name == b"content-length" and not _DIGITS.fullmatch(value):
        raise ValueError(f"invalid Content-Length {value!r}: it must be a whole number")


class MultiMapping(Generic[V]):
    """A read-only, ordered, multi-value mapping of ``str`` keys (the shared API).

    Subclasses provide :meth:`_pairs`; keys are compared after :meth:`_normalise`.
    """

    __slots__ = ()

    def _pairs(self) -> Iterable[tuple[str, V]]:
        raise NotImplementedError

    def items(self) -> list[tuple[str, V]]:
        """Every ``(key, value)`` pair in order, repeated keys kept."""
        return list(self._pairs())

    def _normalise(self, key: str) -> str:
        return key

    @overload
    def get(self, key: str) -> V | None: ...
    @overload
    def get(self, key: str, default: D) -> V | D: ...
    def get(self, key: str, default: Any = None) -> Any:
        """The first value of ``key``, or ``default``."""
        key = self._normalise(key)
        for k, v in self._pairs():
            if k == key:
                return v
        return default

    def get_all(self, key: str) -> list[V]:
        """Every value of ``key``, in order (an empty list if absent)."""
        key = self._normalise(key)
        return [v for k, v in self._pairs() if k == key]

    getall = get_all

    def __getitem__(self, key: str) -> V:
        marker: Any = _MISSING
        value = self.get(key, marker)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        key = self._normalise(key)
        return any(k == key for k, _ in self._pairs())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.items())

    def keys(self) -> list[str]:
        """The distinct keys, in order of first appearance."""
        return list(dict.fromkeys(k for k, _ in self._pairs()))

    def values(self) -> list[V]:
        """Every value, in order."""
        return [v for _, v in self._pairs()]

    def to_dict(self) -> dict[str, V]:
        """A plain dict; the last value of a repeated key wins (h3's ``getQuery``)."""
        return dict(self._pairs())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.items()!r})"


_MISSING: Any = object()


HeadersInit = (
    "Headers | Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]] | None"
)


class Headers(MultiMapping[str]):
    """An ordered, case-insensitive, multi-value header list.

    Request headers arrive from the parser as ``(lowercased name, value)`` byte pairs;
    :class:`Headers` keeps them in that form (``raw``) and decodes on access, because
    most handlers read two or three headers out of a dozen. ``headers["content-type"]``
    and ``headers.get("Content-Type")`` give the first value, ``get_all("set-cookie")``
    every one. ``set``, ``add`` and ``delete`` are for response headers; they validate
    (see the module docstring).
    """

    # ``raw``: the underlying ``(lowercased name, value)`` byte pairs, in order. Read it
    # freely; change headers through add()/set(), which validate. (A plain attribute,
    # not a property: the server reads it for every response.)
    __slots__ = ("raw",)

    def __init__(
        self,
        init: Headers
        | Mapping[str, str]
        | Iterable[tuple[str, str]]
        | Iterable[tuple[bytes, bytes]]
        | None = None,
    ) -> None:
        self.raw: list[tuple[bytes, bytes]] = []
        if init is None:
            return
        if isinstance(init, Headers):
            self.raw = list(init.raw)
            return
        pairs = init.items() if isinstance(init, Mapping) else init
        for name, value in pairs:
            self.add(name, value)

    @classmethod
    def from_raw(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """Wrap a parser's list of lowercased ``(name, value)`` pairs, trusted, uncopied."""
        headers = cls.__new__(cls)
        headers.raw = raw
        return headers

    def _pairs(self) -> list[tuple[str, str]]:
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw]

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, names lowercased, repeated names kept."""
        return self._pairs()

    def _normalise(self, key: str) -> str:
        return key.lower()

    # The per-request paths (a handler reading one header) skip the generic decoding.
    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: D) -> str | D: ...
    def get(self, key: str, default: Any = None) -> Any:
        """The first value of ``key`` (case-insensitive), or ``default``."""
        name = _latin1(key.lower())
        for k, v in self.raw:
            if k == name:
                return v.decode("latin-1")
        return default

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key`` (case-insensitive), in order."""
        name = _latin1(key.lower())
        return [v.decode("latin-1") for k, v in self.raw if k == name]

    getall = get_all

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        name = _latin1(key.lower())
        return any(k == name for k, _ in self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``."""
        key = _latin1(name).lower()
        raw = _latin1(value)
        check_header(key, raw)
        self.raw = [(k, v) for k, v in self.raw if k != key]
        self.raw.append((key, raw))

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def add(self, name: str | bytes, value: str | bytes) -> None:
        """Append a value for ``name``, keeping earlier ones (several ``Set-Cookie``)."""
        key = _latin1(name).lower()
        raw = _latin1(value)
        check_header(key, raw)
        self.raw.append((key, raw))

    append = add

    def setdefault(self, name: str, value: str) -> str:
        """Set ``name`` to ``value`` unless present; return the value in force."""
        current = self.get(name)
        if current is None:
            self.add(name, value)
            return value
        return current

    def delete(self, name: str) -> None:
        """Remove every value of ``name`` (no error if absent)."""
        key = _latin1(name).lower()
        self.raw = [(k, v) for k, v in self.raw if k != key]

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def update(self, other: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        """:meth:`set` each name from ``other``."""
        pairs = other.items() if isinstance(other, Mapping) else other
        for name, value in pairs:
            self.set(name, value)

    def copy(self) -> Headers:
        """A shallow copy."""
        return Headers(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self.raw) == sorted(other.raw)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class QueryParams(MultiMapping[str]):
    """Multi-value query parameters, percent-decoded (``+`` is a space, as in forms)."""

    __slots__ = ("_items",)

    def __init__(self, query: str | Iterable[tuple[str, str]] = "") -> None:
        if isinstance(query, str):
            self._items = parse_qsl(query, keep_blank_values=True)
        else:
            self._items = list(query)

    def _pairs(self) -> list[tuple[str, str]]:
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, QueryParams):
            return self._items == other._items
        if isinstance(other, dict):
            return self.to_dict() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class FormData(MultiMapping["str | UploadFile"]):
    """A submitted form: ``form["name"]`` is a text field (``str``) or a file
    (:class:`~trio_h3.UploadFile`), repeated names kept in order (``form.get_all``).

    Built by ``await event.form()``; the files in it live as long as the request.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str | UploadFile]] = ()) -> None:
        self._items = list(items)

    def _pairs(self) -> list[tuple[str, str | UploadFile]]:
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    def fields(self) -> list[tuple[str, str]]:
        """The text fields, ``(name, value)`` in order."""
        return [(k, v) for k, v in self._items if isinstance(v, str)]

    def files(self) -> list[tuple[str, UploadFile]]:
        """The files, ``(name, file)`` in order."""
        return [(k, v) for k, v in self._items if not isinstance(v, str)]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FormData):
            return self._items == other._items
        if isinstance(other, dict):
            return self.to_dict() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


# RFC 9110 §8.3.1: media-type = type "/" subtype parameters; parameters = *( OWS ";" OWS
# [ parameter ] ), parameter = token "=" ( token / quoted-string ).
_PARAMETER = re.compile(r';\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """``"multipart/form-data; boundary=x"`` -> ``("multipart/form-data", {"boundary": "x"})``.

    The type and parameter names are lowercased (RFC 9110 §8.3.1: case-insensitive); a
    quoted-string value is unquoted (RFC 9110 §5.6.4); the first of a repeated name wins.
    """
    media_type, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAMETER.finditer(";" + rest):
        name, raw = match.group(1).lower(), match.group(2).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(name, raw)
    return media_type.strip().lower(), params


class Address(NamedTuple):
    """A peer's address: ``host`` and ``port``."""

    host: str
    port: int


class URL(NamedTuple):
    """The request URL as the client addressed it: scheme, host[:port], path, query."""

    scheme: str
    host: str
    path: str
    query: str

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}{self.path}{query}"


def parse_cookie_header(header: str) -> dict[str, str]:
    """``"a=1; b=two"`` -> ``{"a": "1", "b": "two"}``, as browsers send it (RFC 6265 §5.4).

    Pairs without ``=`` or with an empty name are skipped; a value in double quotes is
    unquoted; ``%XX`` escapes are decoded; the first of a repeated name wins (the most
    specific cookie comes first, RFC 6265 §5.4 step 2).
    """
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(name, unquote(value) if "%" in value else value)
    return cookies
