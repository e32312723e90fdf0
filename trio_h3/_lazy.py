"""PEP 562 lazy re-exports: a package's names are imported on first use, not at import.

So ``import trio_h3`` (or ``trio_h3.sse``) loads neither Trio nor h11, and the pure core
stays importable without them; the names are the same objects either way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, origins: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``origins`` map name -> module.

    A module path starting with ``.`` is relative to ``package``.
    """

    def __getattr__(name: str) -> Any:
        origin = origins.get(name)
        if origin is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(origin, package)
        value = getattr(module, name)
        # Cache it: later lookups are plain attribute reads.
        importlib.import_module(package).__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(importlib.import_module(package).__dict__) | set(origins))

    return __getattr__, __dir__
