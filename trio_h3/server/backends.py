"""Which wire backend a server uses: ``ServeOptions.http`` resolved, imported on demand.

``"h11"`` is the reference (a dependency); ``"httptools"`` is llhttp (the ``[fast]``
extra); ``"auto"`` takes httptools when it is installed, as uvicorn's ``--http auto``
does. httptools is imported only here, and only when it is chosen.
"""

from __future__ import annotations

import importlib.util

from .wire import Wire

__all__: list[str] = []


def httptools_available() -> bool:
    """Whether the ``httptools`` backend can be used (the ``[fast]`` extra is installed)."""
    return importlib.util.find_spec("httptools") is not None


def wire_class(http: str) -> type[Wire]:
    """The backend for ``ServeOptions.http``: ``"h11"``, ``"httptools"`` or ``"auto"``."""
    if http == "httptools" or (http == "auto" and httptools_available()):
        if not httptools_available():
            raise RuntimeError(
                "ServeOptions(http='httptools') needs httptools: pip install 'trio-h3[fast]'"
            )
        from .wire_httptools import HttptoolsWire

        return HttptoolsWire
    from .wire_h11 import H11Wire

    return H11Wire
