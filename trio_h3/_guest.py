"""The boundary around app code: whatever app code raises, the server carries on.

App code (handlers, middleware, hooks, SSE callbacks, ``on_close`` hooks, WebSocket
handlers) is a guest. Whatever leaves it, ``BaseException`` included, is *contained*:

- a real cancellation of one of the server's own scopes (a client that left, a shutdown)
  propagates, as Trio requires;
- anything else is the guest's own failure: logged with its traceback on ``trio_h3``,
  answered by the caller (a 500, the end of that stream, a 1011 close), and every other
  connection carries on. That includes a ``trio.Cancelled`` that belongs to no cancelled
  scope (one saved and re-raised later), which would otherwise unwind the server quietly;
- ``KeyboardInterrupt`` and ``SystemExit`` raised by app code also start a graceful
  shutdown, which is what a person pressing Ctrl-C or code calling ``sys.exit()`` meant.

Telling the two kinds of Cancelled apart needs no private API: after catching it, a
checkpoint raises again if and only if one of our scopes really is cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from ._groups import leaves

__all__ = ["Guest"]

logger = logging.getLogger("trio_h3")


class Guest:
    """The containment policy of one server (or test client)."""

    def __init__(self, request_shutdown: Callable[[str], None] | None = None) -> None:
        self._request_shutdown = request_shutdown

    async def contain(self, exc: BaseException, what: str) -> None:
        """Deal with ``exc``, which escaped ``what`` (say ``"GET /x"``); see the module doc.

        Returns normally when ``exc`` was the guest's own failure (now logged); raises
        ``trio.Cancelled`` when one of the server's scopes is really cancelled.
        """
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
        except trio.Cancelled:
            if not all(isinstance(leaf, trio.Cancelled) for leaf in leaves(exc)):
                # An error raised while the scope was being cancelled: say so, then
                # let the cancellation do its work.
                logger.error("%s failed while being cancelled", what, exc_info=exc)
            raise
        exits = [leaf for leaf in leaves(exc) if isinstance(leaf, KeyboardInterrupt | SystemExit)]
        if exits:
            logger.error(
                "%s raised %s: starting a graceful shutdown",
                what,
                type(exits[0]).__name__,
                exc_info=exc,
            )
            if self._request_shutdown is not None:
                self._request_shutdown(f"{type(exits[0]).__name__} in {what}")
            return
        if any(isinstance(leaf, trio.Cancelled) for leaf in leaves(exc)):
            logger.error(
                "%s raised a trio.Cancelled that belongs to no cancelled scope "
                "(was it saved and re-raised?); treated as an error",
                what,
                exc_info=exc,
            )
            return
        logger.error("%s failed", what, exc_info=exc)
