"""Reading a request body, with its limit and its deadlines.

One path for every body, declared (``Content-Length``) or chunked: the limit is the
route's (``max_body_size``, else the server's) and it is checked when the handler first
reads, so ``on_error`` and middleware see a 413 like any other error. A declared length
over the limit is refused before a byte is read (and before ``100 Continue`` is sent);
a chunked body when it crosses the limit. Two deadlines: each read must arrive within
``request_head_timeout`` (a stalled client), the whole body within ``body_timeout``
(one that trickles a byte at a time); either is a 408. After any refusal the rest of
the body is unread, so the response closes the connection.
"""

from __future__ import annotations

import math

import trio

from ..errors import HTTPError
from .checks import WireError
from .wire import BodyEvent, Wire

__all__: list[str] = []


class BodyReader:
    """The body of one request, as the handler reads it."""

    __slots__ = (
        "_deadline",
        "_done",
        "_read_timeout",
        "_received",
        "_wire",
        "declared",
        "limit",
        "timeout",
    )

    def __init__(
        self,
        wire: Wire,
        *,
        declared: int | None,
        limit: int | None,
        read_timeout: float,
        timeout: float | None,
    ) -> None:
        self._wire = wire
        #: The Content-Length the client declared, if any.
        self.declared = declared
        #: The limit in force (the route may change it before the first read).
        self.limit = limit
        #: The whole-body deadline, from the first read (None: none).
        self.timeout = timeout
        self._read_timeout = read_timeout
        self._received = 0
        self._deadline: float | None = None
        self._done = not wire.body_pending

    @property
    def done(self) -> bool:
        """True once the whole body has been received."""
        return self._done

    def _refuse(self, error: HTTPError) -> HTTPError:
        self._wire.close_after = True
        return error

    def _too_large(self) -> HTTPError:
        return self._refuse(HTTPError(413, "Request body too large", data={"limit": self.limit}))

    async def receive(self) -> bytes:
        """The next chunk of the body, ``b""`` at its end (HTTPError 400/408/413)."""
        if self._done:
            return b""
        wire = self._wire
        if self._deadline is None:
            if self.limit is not None and self.declared is not None and self.declared > self.limit:
                raise self._too_large()
            self._deadline = trio.current_time() + (
                self.timeout if self.timeout is not None else math.inf
            )
            if wire.waiting_for_100_continue:
                await wire.send_continue()
        while True:
            try:
                event = wire.next_body_event()
            except WireError as exc:
                raise self._refuse(HTTPError(exc.status, exc.message)) from None
            if event is BodyEvent.END:
                self._done = True
                return b""
            if event is BodyEvent.NEED_DATA:
                with trio.move_on_at(
                    min(self._deadline, trio.current_time() + self._read_timeout)
                ) as scope:
                    # At EOF the parser reports the body as cut short on the next turn.
                    await wire.receive()
                if scope.cancelled_caught:
                    message = (
                        "Timed out reading the request body"
                        if trio.current_time() < self._deadline
                        else "The request body took longer than its deadline"
                    )
                    raise self._refuse(HTTPError(408, message))
                continue
            if not event:
                continue
            self._received += len(event)
            if self.limit is not None and self._received > self.limit:
                raise self._too_large()
            return event

    async def discard(self) -> None:
        """Read and drop what the handler left unread, so the connection can be reused.

        Only what is within the limit is read; a client still waiting for ``100
        Continue`` is not invited to send at all. Otherwise the connection closes.
        """
        if self._done or self._wire.close_after:
            return
        if self._wire.waiting_for_100_continue or (
            self.limit is not None and self.declared is not None and self.declared > self.limit
        ):
            self._wire.close_after = True
            return
        try:
            while await self.receive():
                pass
        except HTTPError:
            self._wire.close_after = True
