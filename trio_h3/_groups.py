"""Turning Trio's ExceptionGroups back into the single error a caller expects.

Trio's nurseries wrap whatever leaves them in an ExceptionGroup (strict groups). An
API that fails for one reason should raise that reason, not a group (peer pitfall:
groups leaking out of trio-websocket and quart-trio).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

import trio

__all__ = ["leaves", "raise_single"]


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` itself, or every non-group exception inside it, depth first."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise a group holding one real exception (or only Cancelled) as that exception.

    Cancelled leaves next to one real error are dropped: the error is what happened,
    the cancellations are its consequence. Anything else re-raises the group.
    """
    found = list(leaves(group))
    real = [exc for exc in found if not isinstance(exc, trio.Cancelled)]
    chosen = real[0] if len(real) == 1 else (found[0] if not real else None)
    if chosen is None:
        raise group
    context = chosen.__context__
    try:
        raise chosen
    finally:
        # Raising sets __context__ to the group being handled; keep the original.
        chosen.__context__ = context
        del chosen, context
