"""``Sessions``: a dict-like per-visitor session, sealed into a cookie.

``app.use(Sessions(secret=os.environ["SESSION_SECRET"]))``, then ``event.session["user"] =
"ada"`` in any handler. Sealed, not just signed: the cookie is Fernet (AES-128-CBC with
HMAC-SHA256, from ``cryptography``: the ``[sessions]`` extra), so the client can neither
read nor change what is in it. There is no server-side store.

- ``secret`` may be a list: the first seals, every one unseals, and a session unsealed
  with an older secret is sealed again with the first (key rotation without logging
  anyone out). Each secret (at least 32 characters) goes through HKDF-SHA256 to a Fernet
  key.
- ``max_age`` is absolute (from the session's creation), ``idle_timeout`` sliding (from
  its last use: the cookie is sealed again once a tenth of it has passed). An expired,
  tampered, truncated or foreign cookie is an empty session, never an error; the stale
  cookie is deleted.
- The cookie is ``HttpOnly; SameSite=Lax; Path=/``, and ``Secure`` on HTTPS
  (RFC 6265bis), set as the response head goes out (an ``event.before_head`` hook), so
  it is there for every kind of response, an SSE stream's head included.
- A sealed session longer than a cookie may be (4096 bytes, RFC 6265 §6.1) is split
  across numbered cookies (``session.1``, ``session.2``... with ``session`` saying how
  many) and joined back, as h3 does; cookies left over from a longer session are deleted.
- The session is unsealed only when a handler first touches it; a response that read it
  gets ``Vary: Cookie``. ``event.session.clear()`` deletes the cookie(s).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import trio

from ..event import SESSION_KEY
from .cookies import MAX_COOKIE_SIZE, SameSite, serialize_cookie
from .negotiation import add_vary

if TYPE_CHECKING:
    from ..event import H3Event
    from ..response import Response
    from ..types import Next

__all__ = ["Session", "Sessions"]

_CHUNKED = "__chunked__"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_SECRET = 32
_CLOCK: trio.lowlevel.RunVar[tuple[float, float]] = trio.lowlevel.RunVar("trio_h3_session_clock")


def wall_time() -> float:
    """Seconds since the epoch, moving with the Trio clock of the run.

    Anchored once per run to ``time.time()``, then advanced by ``trio.current_time()``,
    so a test under ``MockClock`` moves session expiry with the clock it jumps.
    """
    try:
        wall, trio_time = _CLOCK.get()
    except LookupError:
        wall, trio_time = time.time(), trio.current_time()
        _CLOCK.set((wall, trio_time))
    return wall + (trio.current_time() - trio_time)


def _fernet_keys(secret: str | bytes | Sequence[str | bytes]) -> list[bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    secrets = [secret] if isinstance(secret, str | bytes) else list(secret)
    if not secrets:
        raise ValueError("Sessions needs at least one secret")
    keys = []
    for one in secrets:
        raw = one.encode() if isinstance(one, str) else one
        if not isinstance(raw, bytes) or len(raw) < _MIN_SECRET:
            raise ValueError(
                f"a session secret must be at least {_MIN_SECRET} characters; make one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"trio-h3 sessions", info=b"fernet"
        ).derive(raw)
        keys.append(base64.urlsafe_b64encode(derived))
    return keys


class Sessions:
    """Middleware giving every request ``event.session`` (see the module docstring).

    ``secret``: a string of 32+ characters, or a list of them (the first seals).
    ``cookie_name`` (default ``"session"``; ``"__Host-session"`` on HTTPS pins it to
    the host). ``max_age``: seconds from creation (default 14 days; None: until the
    browser closes, unless ``idle_timeout``). ``idle_timeout``: seconds since last use
    (None: no idle limit). ``secure`` (None: on HTTPS), ``httponly``, ``samesite``,
    ``path``, ``domain``, ``partitioned``: the cookie's attributes.
    """

    def __init__(
        self,
        secret: str | bytes | Sequence[str | bytes],
        *,
        cookie_name: str = "session",
        max_age: int | None = 14 * 86400,
        idle_timeout: int | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool | None = None,
        httponly: bool = True,
        samesite: SameSite | None = "lax",
        partitioned: bool = False,
    ) -> None:
        try:
            from cryptography.fernet import Fernet
        except ImportError:  # pragma: no cover - the extra is in the test environment
            raise ImportError(
                "Sessions needs the cryptography package: pip install 'trio-h3[sessions]'"
            ) from None
        for name, value in (("max_age", max_age), ("idle_timeout", idle_timeout)):
            if value is not None and (isinstance(value, bool) or value <= 0):
                raise ValueError(f"{name} must be a positive int (seconds) or None, not {value!r}")
        self._fernets = [Fernet(key) for key in _fernet_keys(secret)]
        self.cookie_name = cookie_name
        self.max_age = max_age
        self.idle_timeout = idle_timeout
        self.path = path
        self.domain = domain
        self.secure = secure
        self.httponly = httponly
        self.samesite = samesite
        self.partitioned = partitioned
        # The attributes are checked now (a __Host- name without Secure...), not on the
        # first response.
        serialize_cookie(cookie_name, "x", **self._attributes(secure is not False))

    def _attributes(self, secure: bool) -> dict[str, Any]:
        return {
            "path": self.path,
            "domain": self.domain,
            "secure": secure,
            "httponly": self.httponly,
            "samesite": self.samesite,
            "partitioned": self.partitioned,
        }

    async def __call__(self, event: H3Event, next: Next) -> Any:
        """The middleware: a lazy session in ``event.context``, committed at the head."""
        session = Session(self, event)
        event.context[SESSION_KEY] = session
        event.before_head(session._commit)
        return await next()

    # -- sealing ---------------------------------------------------------------------------

    def seal(self, data: dict[str, Any], created: float, now: float) -> str:
        """The cookie value for ``data`` (JSON), sealed with the first secret."""
        payload = json.dumps({"c": created, "s": now, "d": data}, separators=(",", ":"))
        return self._fernets[0].encrypt(payload.encode()).decode("ascii")

    def unseal(self, token: str, now: float) -> tuple[dict[str, Any], float, float, bool] | None:
        """``(data, created, sealed_at, rotated)`` for a valid unexpired token, else None.

        ``rotated``: it was sealed with a secret other than the first.
        """
        from cryptography.fernet import InvalidToken

        raw = token.encode("ascii", "replace")
        for index, fernet in enumerate(self._fernets):
            try:
                payload = json.loads(fernet.decrypt(raw))
            except (InvalidToken, ValueError):
                continue
            if not isinstance(payload, dict):
                return None
            data, created, sealed = payload.get("d"), payload.get("c"), payload.get("s")
            if not (
                isinstance(data, dict)
                and isinstance(created, int | float)
                and isinstance(sealed, int | float)
            ):
                return None
            if self.max_age is not None and now - created > self.max_age:
                return None
            if self.idle_timeout is not None and now - sealed > self.idle_timeout:
                return None
            return data, created, sealed, index > 0
        return None


class Session(MutableMapping[str, Any]):
    """``event.session``: a dict of JSON values, unsealed on first use.

    Changing a nested value in place (``session["cart"].append(item)``) is not seen:
    assign it again, or set ``session.modified = True``.
    """

    def __init__(self, sessions: Sessions, event: H3Event) -> None:
        self._sessions = sessions
        self._event = event
        self._data: dict[str, Any] | None = None
        self._created = 0.0
        self._sealed = 0.0
        self._rotated = False
        #: Set by any change; the cookie is sealed again when it is.
        self.modified = False
        #: Set once the session has been read (the response then varies on Cookie).
        self.accessed = False
        #: Names of the session cookies the request carried (to delete leftovers).
        self._present: list[str] = []

    # -- loading -----------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        self.accessed = True
        if self._data is not None:
            return self._data
        sessions = self._sessions
        cookies = self._event.cookies
        name = sessions.cookie_name
        now = wall_time()
        self._data, self._created = {}, now
        self._present = [n for n in cookies if n == name or n.startswith(name + ".")]
        token = cookies.get(name)
        if token is None:
            return self._data
        if token.startswith(_CHUNKED):
            count = token[len(_CHUNKED) :]
            parts = (
                [cookies.get(f"{name}.{i}") for i in range(1, int(count) + 1)]
                if (count.isdigit() and 0 < int(count) <= 64)
                else [None]
            )
            if any(part is None for part in parts):
                return self._data
            token = "".join(part for part in parts if part is not None)
        opened = sessions.unseal(token, now)
        if opened is not None:
            self._data, self._created, self._sealed, self._rotated = opened
        return self._data

    # -- the mapping -------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._load()[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._load()[key]
        self.modified = True

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, key: object) -> bool:
        return key in self._load()

    def clear(self) -> None:
        """Empty the session: its cookie(s) are deleted with the response."""
        self._load().clear()
        self.modified = True

    def __repr__(self) -> str:
        return f"Session({self._load()!r})"

    # -- the response ------------------------------------------------------------------------

    def _commit(self, response: Response) -> None:
        if self._data is None:
            return  # never touched: the cookie stays as it is
        sessions = self._sessions
        headers = response.headers
        add_vary(headers, "Cookie")
        secure = sessions.secure if sessions.secure is not None else self._event.scheme == "https"
        attributes = sessions._attributes(secure)
        name = sessions.cookie_name
        if not self._data:
            for present in self._present:
                headers.add("set-cookie", _deletion(present, attributes))
            return
        now = wall_time()
        refresh = sessions.idle_timeout is not None and (
            now - self._sealed >= sessions.idle_timeout / 10
        )
        if not (self.modified or self._rotated or refresh or not self._present):
            return
        token = sessions.seal(self._data, self._created, now)
        max_age: int | None = None
        if sessions.max_age is not None:
            max_age = max(1, int(sessions.max_age - (now - self._created)))
        elif sessions.idle_timeout is not None:
            max_age = sessions.idle_timeout
        values = _chunks(name, token)
        written = set()
        for cookie, value in values:
            headers.add(
                "set-cookie", serialize_cookie(cookie, value, max_age=max_age, **attributes)
            )
            written.add(cookie)
        for present in self._present:
            if present not in written:
                headers.add("set-cookie", _deletion(present, attributes))


def _chunks(name: str, token: str) -> list[tuple[str, str]]:
    """The cookies holding ``token``: one, or a count and numbered pieces."""
    if len(name) + len(token) <= MAX_COOKIE_SIZE:
        return [(name, token)]
    size = MAX_COOKIE_SIZE - len(name) - 4  # room for ".NN"
    pieces = [token[i : i + size] for i in range(0, len(token), size)]
    return [(name, f"{_CHUNKED}{len(pieces)}")] + [
        (f"{name}.{index}", piece) for index, piece in enumerate(pieces, 1)
    ]


def _deletion(name: str, attributes: dict[str, Any]) -> str:
    # What delete_cookie writes, for a response rather than an event.
    return serialize_cookie(name, "", max_age=0, expires=_EPOCH, **attributes)
