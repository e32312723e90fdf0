"""The h3 utilities: helpers that take an event (cookies, forms, auth, proxy headers).

Only the pure ones are re-exported here; ``forms`` (Trio: it spools uploads) is imported
by the server where a form is read. The public names are all in ``trio_h3``.
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
