"""The h3 utilities: helpers that take an event (cookies, and the kit to come)."""

from .cookies import delete_cookie, set_cookie

__all__ = ["delete_cookie", "set_cookie"]
