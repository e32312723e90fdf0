"""``Set-Cookie``: building it right (RFC 6265, RFC 6265bis prefixes), and the helpers.

Reading cookies is ``event.cookies`` (parsed by
:func:`trio_h3.datastructures.parse_cookie_header`). Writing goes through
:func:`set_cookie` / :func:`delete_cookie`, which validate what browsers would otherwise
drop without a word:

- the name is an RFC 6265 token; the value is percent-encoded except for the characters
  a cookie value may hold as they are (RFC 6265 §4.1.1 ``cookie-octet``, minus ``%``), so
  base64 and JWT values stay readable and any text round-trips through ``event.cookies``;
- ``Path`` and ``Domain`` hold no ``;`` or control character (``av-octet``);
- a ``__Secure-`` cookie must be ``Secure``; a ``__Host-`` cookie must be ``Secure``, have
  no ``Domain`` and ``Path=/`` (RFC 6265bis §4.1.3);
- ``SameSite=None`` and ``Partitioned`` imply ``Secure`` (browsers reject them otherwise);
- name and value together fit the 4096 bytes every browser keeps (RFC 6265 §6.1).

Each problem is a ValueError naming it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

if TYPE_CHECKING:
    from ..event import H3Event

__all__ = ["delete_cookie", "set_cookie"]

#: The size (name + value) every browser keeps (RFC 6265 §6.1: "at least 4096 bytes").
MAX_COOKIE_SIZE = 4096

SameSite = Literal["lax", "strict", "none"]

# RFC 6265 §4.1.1: cookie-name = token (RFC 9110 §5.6.2).
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E, kept as they are but for
# "%", which starts an escape.
_VALUE_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%,;\\')
# av-octet = any CHAR except CTLs or ";".
_ATTRIBUTE = re.compile(r"[^\x00-\x1f\x7f;]*")
_SAME_SITE = ("lax", "strict", "none")


def serialize_cookie(
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    expires: datetime | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = True,
    samesite: SameSite | None = "lax",
    partitioned: bool = False,
) -> str:
    """One ``Set-Cookie`` header value (see the module docstring for the rules).

    Defaults are the safe ones: ``Path=/``, ``HttpOnly``, ``SameSite=Lax``.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"cookie name {name!r} is not a token (RFC 6265 §4.1.1)")
    if not isinstance(value, str):
        raise TypeError(f"cookie value must be str, not {type(value).__name__}")
    encoded = quote(value, safe=_VALUE_SAFE)
    if len(name) + len(encoded) > MAX_COOKIE_SIZE:
        raise ValueError(
            f"cookie {name!r} is {len(name) + len(encoded)} bytes; browsers keep "
            f"{MAX_COOKIE_SIZE} at most (RFC 6265 §6.1)"
        )
    if samesite is not None and samesite.lower() not in _SAME_SITE:
        raise ValueError(f"cookie SameSite must be 'lax', 'strict' or 'none', not {samesite!r}")
    same_site = samesite.lower() if samesite is not None else None
    secure = secure or same_site == "none" or partitioned
    if name.startswith("__Secure-") and not secure:
        raise ValueError(f"a {name!r} cookie must be Secure (the __Secure- prefix)")
    if name.startswith("__Host-") and (not secure or domain is not None or path != "/"):
        raise ValueError(
            f"a {name!r} cookie must be Secure, with no Domain and Path=/ (the __Host- prefix)"
        )
    parts = [f"{name}={encoded}"]
    if max_age is not None:
        if isinstance(max_age, bool) or not isinstance(max_age, int):
            raise ValueError(f"cookie Max-Age must be an int (seconds), not {max_age!r}")
        parts.append(f"Max-Age={max_age}")
    if expires is not None:
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        parts.append(f"Expires={format_datetime(expires.astimezone(UTC), usegmt=True)}")
    for label, attr in (("Path", path), ("Domain", domain)):
        if attr is not None:
            if not _ATTRIBUTE.fullmatch(attr):
                raise ValueError(f"cookie {label} {attr!r} contains ';' or a control character")
            parts.append(f"{label}={attr}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if same_site is not None:
        parts.append(f"SameSite={same_site.capitalize()}")
    if partitioned:
        parts.append("Partitioned")
    return "; ".join(parts)


def set_cookie(
    event: H3Event,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    expires: datetime | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = True,
    samesite: SameSite | None = "lax",
    partitioned: bool = False,
) -> None:
    """Add a ``Set-Cookie`` to the event's response (several cookies each get a header)."""
    event.response_headers.add(
        "set-cookie",
        serialize_cookie(
            name,
            value,
            max_age=max_age,
            expires=expires,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        ),
    )


def delete_cookie(
    event: H3Event,
    name: str,
    *,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = True,
    samesite: SameSite | None = "lax",
    partitioned: bool = False,
) -> None:
    """Expire cookie ``name`` on the client.

    Pass the attributes it was set with: a browser replaces a cookie only when name,
    ``Path`` and ``Domain`` match, and accepts a ``__Host-``/``__Secure-`` one only when
    ``Secure``.
    """
    event.response_headers.add(
        "set-cookie",
        serialize_cookie(
            name,
            "",
            max_age=0,
            expires=datetime(1970, 1, 1, tzinfo=UTC),
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        ),
    )
