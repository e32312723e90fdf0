"""The test client's cookie jar: what a browser keeps for the test host (RFC 6265 §5.3, §5.4).

Kept simple and correct for a client that talks to one app:

- ``Set-Cookie`` is read from every response; a cookie replaces the one with the same
  name, domain and path; ``Max-Age`` wins over ``Expires``; a lifetime of zero or less
  deletes it;
- ``Domain`` must domain-match the request host, or the cookie is ignored; without it
  the cookie is host-only;
- ``Path`` defaults to the directory of the request path; a cookie is sent when its
  path path-matches the request's, longest path first (§5.4 step 2);
- ``Secure`` cookies are kept and sent only over ``https``.

No wall clock: a lifetime runs on Trio's clock, so under ``MockClock`` an hour of
``trio.sleep`` expires a one-hour cookie. ``Expires`` is read against the response's
``Date`` (the server's idea of now), giving a lifetime; a response without ``Date``
keeps such a cookie for the session.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import trio

__all__ = ["Cookie", "Cookies"]

CookiesArg = Mapping[str, str] | Iterable[tuple[str, str]]

# RFC 6265 §5.2.2: a Max-Age is an optional "-" and digits; anything else is ignored.
_MAX_AGE = re.compile(r"-?[0-9]+")


@dataclass
class Cookie:
    """One stored cookie."""

    name: str
    value: str
    #: The host (host-only) or the ``Domain`` it applies to, lowercase, no leading dot.
    domain: str
    path: str = "/"
    #: True without a ``Domain`` attribute: sent to exactly ``domain``, no subdomain.
    host_only: bool = True
    secure: bool = False
    http_only: bool = False
    same_site: str | None = None
    #: When it expires on Trio's clock (``trio.current_time()``); None: end of session.
    expires_at: float | None = None


def _now() -> float | None:
    try:
        return trio.current_time()
    except RuntimeError:  # outside trio.run: no clock to expire anything by
        return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def domain_match(host: str, domain: str) -> bool:
    """RFC 6265 §5.1.3: ``host`` is ``domain`` or a (non-IP) subdomain of it."""
    return host == domain or (host.endswith("." + domain) and not _is_ip(host))


def default_path(request_path: str) -> str:
    """RFC 6265 §5.1.4: the request path up to, not including, its last ``/``."""
    if not request_path.startswith("/") or request_path.count("/") == 1:
        return "/"
    return request_path[: request_path.rindex("/")]


def path_match(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 §5.1.4: ``cookie_path`` is ``request_path`` or a directory prefix of it."""
    if request_path == cookie_path:
        return True
    return request_path.startswith(cookie_path) and (
        cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    )


def _http_date(value: str) -> float | None:
    try:
        moment = parsedate_to_datetime(value.replace("-", " "))
    except (TypeError, ValueError, IndexError):
        return None
    return moment.timestamp()


def parse_set_cookie(header: str) -> tuple[str, str, dict[str, str]] | None:
    """``(name, value, attributes)`` of one ``Set-Cookie`` (RFC 6265 §5.2), or None.

    Attribute names are lowercased; a flag (``Secure``) has the value ``""``; the last
    of a repeated attribute wins. A header without ``=`` or with an empty name is None.
    """
    pair, *rest = header.split(";")
    name, sep, value = pair.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        return None
    attributes: dict[str, str] = {}
    for attribute in rest:
        key, _, attribute_value = attribute.partition("=")
        if key.strip():
            attributes[key.strip().lower()] = attribute_value.strip()
    return name, value, attributes


class Cookies(MutableMapping[str, str]):
    """The cookies a browser would hold for the test host: ``client.cookies``.

    A mapping of name to value (``client.cookies["sid"]``; the most specific cookie of a
    name when several paths hold one); :meth:`set` and item assignment store a cookie
    for the test host and path ``/``; :meth:`all` lists every :class:`Cookie` with its
    attributes.
    """

    def __init__(self, cookies: CookiesArg | None = None, *, host: str = "testserver") -> None:
        self.host = host
        self._cookies: list[Cookie] = []
        if cookies is not None:
            self.update(cookies)

    # -- the mapping --------------------------------------------------------------------

    def all(self) -> list[Cookie]:
        """Every unexpired cookie, most specific path first."""
        now = _now()
        if now is not None:
            self._cookies = [c for c in self._cookies if c.expires_at is None or c.expires_at > now]
        return sorted(self._cookies, key=lambda c: -len(c.path))

    def set(self, name: str, value: str, *, domain: str = "", path: str = "/") -> None:
        """Store a cookie (host-only for the test host unless ``domain`` is given)."""
        self._store(
            Cookie(name, value, (domain or self.host).lower().lstrip("."), path, not domain)
        )

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """The value of the most specific cookie called ``name``, else ``default``."""
        for cookie in self.all():
            if cookie.name == name:
                return cookie.value
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        if not self.delete(name):
            raise KeyError(name)

    def delete(self, name: str, *, domain: str | None = None, path: str | None = None) -> bool:
        """Remove every cookie ``name`` (only that domain/path when given); True if any."""
        before = len(self._cookies)
        self._cookies = [
            c
            for c in self._cookies
            if not (
                c.name == name
                and (domain is None or c.domain == domain.lower().lstrip("."))
                and (path is None or c.path == path)
            )
        ]
        return len(self._cookies) != before

    def clear(self) -> None:
        """Forget every cookie."""
        self._cookies.clear()

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(c.name for c in self.all()))

    def __len__(self) -> int:
        return len(dict.fromkeys(c.name for c in self.all()))

    def __repr__(self) -> str:
        return f"<Cookies {dict(self.items())!r}>"

    # -- what the client does with it -----------------------------------------------------

    def _store(self, cookie: Cookie) -> None:
        for index, old in enumerate(self._cookies):
            if (old.name, old.domain, old.path) == (cookie.name, cookie.domain, cookie.path):
                self._cookies[index] = cookie  # keeps the old one's place (creation order)
                return
        self._cookies.append(cookie)

    def extract(
        self,
        set_cookies: Iterable[str],
        *,
        scheme: str,
        host: str,
        path: str,
        date: str | None = None,
    ) -> dict[str, str]:
        """Apply a response's ``Set-Cookie`` headers; returns the cookies it stored.

        ``scheme``, ``host`` and ``path`` are the request's; ``date`` is the response's
        ``Date`` header, the reference an ``Expires`` is measured against.
        """
        stored: dict[str, str] = {}
        host = host.lower()
        reference = _http_date(date) if date else None
        for header in set_cookies:
            cookie = self._cookie_from(header, scheme, host, path, reference)
            if cookie is None:
                continue
            if cookie.expires_at is not None and cookie.expires_at <= (_now() or 0.0):
                self.delete(cookie.name, domain=cookie.domain, path=cookie.path)
                stored.pop(cookie.name, None)
                continue
            self._store(cookie)
            stored[cookie.name] = cookie.value
        return stored

    def _cookie_from(
        self, header: str, scheme: str, host: str, path: str, reference: float | None
    ) -> Cookie | None:
        parsed = parse_set_cookie(header)
        if parsed is None:
            return None
        name, value, attributes = parsed
        secure = "secure" in attributes
        if secure and scheme != "https":
            return None  # RFC 6265bis §5.7: only a secure origin sets a Secure cookie
        domain = attributes.get("domain", "").lower().lstrip(".")
        if domain and not domain_match(host, domain):
            return None
        cookie_path = attributes.get("path", "")
        if not cookie_path.startswith("/"):
            cookie_path = default_path(path)
        now = _now() or 0.0
        expires_at: float | None = None
        max_age = attributes.get("max-age", "")
        if _MAX_AGE.fullmatch(max_age):
            expires_at = now + int(max_age) if int(max_age) > 0 else now
        elif "expires" in attributes and reference is not None:
            expires = _http_date(attributes["expires"])
            if expires is not None:
                lifetime = expires - reference
                expires_at = now + lifetime if lifetime > 0 else now
        return Cookie(
            name,
            value,
            domain or host,
            cookie_path,
            host_only=not domain,
            secure=secure,
            http_only="httponly" in attributes,
            same_site=attributes.get("samesite"),
            expires_at=expires_at,
        )

    def header(
        self, *, scheme: str, host: str, path: str, extra: Mapping[str, str] | None = None
    ) -> str | None:
        """The ``Cookie`` header for a request (None: no cookie applies).

        ``extra`` (a request's own ``cookies=``) is sent after the jar's cookies and
        replaces any of the same name, for that request only.
        """
        host = host.lower()
        extra = dict(extra or {})
        pairs = [
            (c.name, c.value)
            for c in self.all()
            if c.name not in extra
            and (c.domain == host if c.host_only else domain_match(host, c.domain))
            and path_match(path or "/", c.path)
            and (scheme == "https" or not c.secure)
        ]
        pairs.extend(extra.items())
        return "; ".join(f"{name}={value}" for name, value in pairs) or None
