"""Cookie parsing and ``Set-Cookie`` serialisation (RFC 6265). Pure functions."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

if TYPE_CHECKING:
    from ..event import H3Event

__all__ = ["delete_cookie", "serialize_cookie", "set_cookie"]

# RFC 6265 token characters for a cookie name.
_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def serialize_cookie(
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    expires: datetime | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    http_only: bool = True,
    same_site: Literal["lax", "strict", "none"] | None = "lax",
    partitioned: bool = False,
) -> str:
    """One ``Set-Cookie`` header value. The value is percent-encoded where it must be."""
    if not _NAME.match(name):
        raise ValueError(f"cookie name {name!r} is not a valid token")
    parts = [f"{name}={quote(value, safe='')}"]
    if max_age is not None:
        parts.append(f"Max-Age={int(max_age)}")
    if expires is not None:
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        parts.append(f"Expires={format_datetime(expires.astimezone(UTC), usegmt=True)}")
    for label, attr in (("Path", path), ("Domain", domain)):
        if attr is not None:
            if any(c in attr for c in ";\r\n"):
                raise ValueError(f"cookie {label} {attr!r} contains ';', CR or LF")
            parts.append(f"{label}={attr}")
    if secure or same_site == "none" or partitioned:
        parts.append("Secure")
    if http_only:
        parts.append("HttpOnly")
    if same_site is not None:
        parts.append(f"SameSite={same_site.capitalize()}")
    if partitioned:
        parts.append("Partitioned")
    return "; ".join(parts)


def set_cookie(event: H3Event, name: str, value: str, **options: object) -> None:
    """Add a ``Set-Cookie`` to the event's response (several cookies each get a header)."""
    event.response_headers.add("set-cookie", serialize_cookie(name, value, **options))  # type: ignore[arg-type]


def delete_cookie(
    event: H3Event, name: str, *, path: str | None = "/", domain: str | None = None
) -> None:
    """Expire cookie ``name`` on the client."""
    event.response_headers.add(
        "set-cookie",
        serialize_cookie(
            name, "", max_age=0, expires=datetime(1970, 1, 1, tzinfo=UTC), path=path, domain=domain
        ),
    )
