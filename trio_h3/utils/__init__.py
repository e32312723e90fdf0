"""h3-style helpers built on H3Event: cookies and friends."""

from .cookies import delete_cookie, parse_cookie_header, serialize_cookie, set_cookie

__all__ = ["delete_cookie", "parse_cookie_header", "serialize_cookie", "set_cookie"]
