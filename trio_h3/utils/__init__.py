"""The h3 utilities, helpers that take an event: cookies (here), and, each imported from
its own module (they pull in Trio or an extra): files, static, cors, sessions, compress."""

from .cookies import delete_cookie, set_cookie

__all__ = ["delete_cookie", "set_cookie"]
