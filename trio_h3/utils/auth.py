"""HTTP Basic authentication (RFC 7617) as middleware, and constant-time comparison.

::

    async def check(user: str, password: str) -> bool:
        return constant_time_equals(user, "admin") & constant_time_equals(password, SECRET)

    app.use("/admin/**", basic_auth(verify=check, realm="admin"))

A request without credentials, with malformed ones or with wrong ones is a **401** with
``WWW-Authenticate: Basic realm="admin", charset="UTF-8"`` (RFC 7617 §2, §2.1: the only
charset defined, and what browsers then encode the credentials in), and the JSON error
body; the handler never runs. Afterwards ``event.context["user"]`` is the user: the
user-id, or what ``verify`` returned if that is not simply ``True`` (a user record).

``verify(user, password)`` may be ``async def`` or a plain ``def``; a plain one runs in a
worker thread like a plain handler (a password hash such as bcrypt takes ~100 ms, which
must not stall the loop). ``users={"admin": "secret"}`` checks a fixed table instead,
every entry compared in constant time. Compare secrets with :func:`constant_time_equals`
(``hmac.compare_digest``): ``==`` stops at the first differing byte, which a client can
time.

Basic authentication sends the password with every request, merely encoded: serve it
over HTTPS only.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import HTTPError

if TYPE_CHECKING:
    from ..event import H3Event
    from ..types import Middleware, Next

__all__ = ["basic_auth", "basic_credentials", "constant_time_equals"]

#: ``verify(user, password)``: true (or the user record) to let the request through.
Verify = Callable[[str, str], Any] | Callable[[str, str], Awaitable[Any]]

# RFC 9110 §11.2: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ], the scheme
# case-insensitive; RFC 7617 §2: the token68 is RFC 4648 §4 base64.
_BASIC = re.compile(r"[Bb][Aa][Ss][Ii][Cc] +([A-Za-z0-9+/]+=*) *")
# RFC 7617 §2: "The user-id and password MUST NOT contain any control characters".
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """``a == b`` in a time that does not depend on where they differ (text as UTF-8).

    Combine several with ``&``, not ``and``, so that every comparison runs.
    """
    left = a.encode("utf-8") if isinstance(a, str) else a
    right = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


def basic_credentials(event: H3Event) -> tuple[str, str] | None:
    """``(user, password)`` from the request's ``Authorization: Basic``, or None.

    None as well for malformed credentials: not base64, not UTF-8 (RFC 7617 §2.1), no
    colon, or a control character in either part.
    """
    header = event.headers.get("authorization")
    if header is None:
        return None
    match = _BASIC.fullmatch(header)
    if match is None:
        return None
    token = match.group(1)
    try:
        # Padding is required by RFC 4648 §4, but some clients leave it out.
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = text.partition(":")
    if not colon or _CONTROL.search(text):
        return None
    return user, password


def _challenge(realm: str) -> str:
    # RFC 7617 §2: realm is a quoted-string (RFC 9110 §5.6.4).
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    return f'Basic realm="{quoted}", charset="UTF-8"'


def basic_auth(
    verify: Verify | None = None,
    *,
    users: Mapping[str, str] | None = None,
    realm: str = "Restricted",
) -> Middleware:
    """Middleware that lets a request through only with valid Basic credentials.

    Give ``verify(user, password)`` (sync or async; see the module docstring) or a fixed
    ``users`` table. ``realm`` names the protected space in the browser's prompt.
    """
    if (verify is None) == (users is None):
        raise TypeError("basic_auth() takes verify= or users=, one of them")
    if _CONTROL.search(realm):
        raise ValueError(f"realm {realm!r} must not contain control characters")
    challenge = _challenge(realm)
    table = dict(users) if users is not None else None
    is_async = verify is not None and (
        inspect.iscoroutinefunction(verify)
        or inspect.iscoroutinefunction(getattr(verify, "__call__", None))  # noqa: B004
    )

    async def check(event: H3Event, user: str, password: str) -> Any:
        if table is not None:
            found = False
            for name, secret in table.items():
                # Every entry, every time: the answer's timing says nothing of which
                # user exists or how much of a password matched.
                found |= constant_time_equals(name, user) & constant_time_equals(secret, password)
            return found
        assert verify is not None
        if is_async:
            return await verify(user, password)
        result = await event.run_sync(verify, user, password)
        if inspect.isawaitable(result):  # a lambda returning a coroutine
            result = await result
        return result

    async def middleware(event: H3Event, next: Next) -> Any:
        credentials = basic_credentials(event)
        if credentials is None:
            raise HTTPError(401, "Authentication required", headers={"www-authenticate": challenge})
        outcome = await check(event, *credentials)
        if not outcome:
            raise HTTPError(401, "Invalid credentials", headers={"www-authenticate": challenge})
        event.context["user"] = credentials[0] if outcome is True else outcome
        return await next()

    return middleware
