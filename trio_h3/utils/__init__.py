"""The h3 utilities, helpers that take an event: cookies, auth, proxy headers, forms,
files, static, cors, sessions, compress.

Only the pure ones are re-exported here; the others (they pull in Trio or an extra) are
imported from their own modules where they are used. The public names are all in
``trio_h3``.
"""

from .auth import basic_auth, basic_credentials, constant_time_equals
from .cookies import delete_cookie, set_cookie

__all__ = [
    "basic_auth",
    "basic_credentials",
    "constant_time_equals",
    "delete_cookie",
    "set_cookie",
]
