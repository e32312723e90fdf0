"""Case-insensitive, multi-value HTTP headers.

Pure module. Request headers arrive from h11 as a list of ``(name, value)`` byte pairs
with lowercased names; :class:`Headers` keeps them in that form and decodes on access,
because most handlers look at two or three headers out of a dozen. Response headers
are built with the same class and handed back to h11 without another copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import overload

__all__ = ["Headers", "HeadersInit"]

HeadersInit = (
    "Headers | Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]] | None"
)


def _b(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    # latin-1 is what HTTP/1.1 header octets map to one-to-one (RFC 9110 section 5.5).
    return value.encode("latin-1")


def _check_value(name: bytes, value: bytes) -> None:
    # A CR or LF in a header we emit would let a value forge a header or a response.
    if b"\r" in value or b"\n" in value or b"\x00" in value:
        raise ValueError(f"header {name.decode('latin-1')!r} contains CR, LF or NUL")


class Headers:
    """An ordered, case-insensitive, multi-value header list.

    ``headers["content-type"]`` and ``headers.get("Content-Type")`` give the first
    value; ``headers.get_all("set-cookie")`` gives every value. Mutating methods
    (``set``, ``add``, ``delete``) are for response headers.
    """

    __slots__ = ("_list",)

    def __init__(
        self,
        init: Headers
        | Mapping[str, str]
        | Iterable[tuple[str, str]]
        | Iterable[tuple[bytes, bytes]]
        | None = None,
    ) -> None:
        self._list: list[tuple[bytes, bytes]] = []
        if init is None:
            return
        if isinstance(init, Headers):
            self._list = list(init._list)
            return
        items = init.items() if isinstance(init, Mapping) else init
        for name, value in items:
            self.add(name, value)

    @classmethod
    def from_raw(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """Wrap h11's list of lowercased ``(name, value)`` byte pairs without copying."""
        headers = cls.__new__(cls)
        headers._list = raw
        return headers

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The underlying ``(lowercased name, value)`` byte pairs, in order."""
        return self._list

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        key = _b(name.lower())
        for k, v in self._list:
            if k == key:
                return v.decode("latin-1")
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        key = _b(name.lower())
        return [v.decode("latin-1") for k, v in self._list if k == key]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _b(name.lower())
        return any(k == key for k, _ in self._list)

    def __iter__(self) -> Iterator[str]:
        seen: set[bytes] = set()
        for k, _ in self._list:
            if k not in seen:
                seen.add(k)
                yield k.decode("latin-1")

    def __len__(self) -> int:
        return len(self._list)

    def items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, names lowercased, repeated names kept."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._list]

    def keys(self) -> list[str]:
        """The distinct header names, lowercased."""
        return list(self)

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``."""
        key = _b(name.lower())
        raw = _b(value)
        _check_value(key, raw)
        self._list = [(k, v) for k, v in self._list if k != key]
        self._list.append((key, raw))

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def add(self, name: str | bytes, value: str | bytes) -> None:
        """Append a value for ``name`` (keeps earlier ones: several ``Set-Cookie``)."""
        key = _b(name).lower()
        raw = _b(value)
        _check_value(key, raw)
        self._list.append((key, raw))

    append = add

    def setdefault(self, name: str, value: str) -> str:
        """Set ``name`` to ``value`` unless it is present; return the value in force."""
        current = self.get(name)
        if current is None:
            self.add(name, value)
            return value
        return current

    def delete(self, name: str) -> None:
        """Remove every value of ``name`` (no error if absent)."""
        key = _b(name.lower())
        self._list = [(k, v) for k, v in self._list if k != key]

    def __delitem__(self, name: str) -> None:
        self.delete(name)

    def update(self, other: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        """``set`` each name from ``other``."""
        items = other.items() if isinstance(other, Mapping) else other
        for name, value in items:
            self.set(name, value)

    def copy(self) -> Headers:
        """A shallow copy."""
        return Headers(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._list) == sorted(other._list)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"
