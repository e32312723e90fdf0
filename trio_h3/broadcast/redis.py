"""The Redis backend: a Stream per topic for history and fan-out, one reader per process.

Layout per topic (keys hash-tagged on the topic, so both land on one slot):

- ``<prefix>:{<topic>}:s`` -- a Redis Stream. Every entry: ``d`` (the encoded data),
  ``v`` (the event name, ``""`` for none), ``e`` (the epoch) and ``p`` (the previous
  entry's id), added by one Lua script, so the ids Redis assigns *are* our positions
  and a subscriber can tell a hole from a continuation. ``XADD MAXLEN ~ history``
  trims by count (approximately, whole radix-tree nodes -- ``stream-node-max-entries``
  is 100 -- as the Redis docs recommend for speed); ``XTRIM MINID ~`` by age, on
  Redis's own clock, since entry ids are milliseconds.
- ``<prefix>:{<topic>}:m`` -- a hash: ``e`` the epoch, ``t`` the latest id. A store
  that lost it (flushed, restarted without persistence, evicted, expired) gets a new
  random epoch the next time anyone reads or writes, and every id issued before is
  then known to be from another life: a ``reset``, never a silent hole. This is the
  scheme of Centrifugo's Redis broker (an epoch in a meta hash kept for
  ``history_meta_ttl``, 30 days by default, much longer than the history itself).

Live delivery: one reader task per process, on its own connection, ``XREAD BLOCK``
over every topic that has a local subscriber, from a cursor per topic. 10,000
subscribers cost one connection and one command in flight. Why not pub/sub: the
Stream is already where the messages are, in order; reading it from a cursor makes
catching up after a reconnect the same code as following live, so nothing published
while the reader was away can be skipped (pub/sub drops whatever is sent while a
subscriber is disconnected, and would need a second, catch-up path). When a topic
gets its first local subscriber, the blocked ``XREAD`` is interrupted with
``CLIENT UNBLOCK`` -- the use the Redis docs give for that command -- and re-issued
with the new key.

Redis going away: :meth:`RedisBackend.publish` raises :class:`BroadcastUnavailable`
(after at most ``publish_timeout``) and is not retried, since a publish whose reply
was lost may have been stored; subscribers stay connected; the reader reconnects with
capped exponential backoff and jitter (redis-py's and Centrifugo's reconnect policy)
and resumes from its cursors.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import coredis
import coredis.exceptions
import coredis.retry
import trio

from .._groups import leaves
from .backend import Deliver
from .message import (
    ORIGIN,
    RESET_OTHER_EPOCH,
    RESET_TRIMMED,
    BroadcastUnavailable,
    Entry,
    Position,
    Start,
    format_id,
    new_epoch,
)

__all__: list[str] = []

logger = logging.getLogger("trio_h3")

#: How long one XREAD blocks before it is re-issued (it also ends on CLIENT UNBLOCK).
BLOCK_MS = 5000
#: Entries one XREAD may return: a reader far behind catches up in batches.
READ_COUNT = 1000
#: Reconnect backoff: first delay and cap, in seconds (redis-py's ExponentialBackoff
#: caps at 10 s; we cap lower by default: subscribers are waiting).
RECONNECT_FIRST_DELAY = 0.05
RECONNECT_MAX_DELAY = 2.0
#: How long the epoch and latest id outlive a topic's last publish: Centrifugo's
#: ``history_meta_ttl`` default, 720 h.
META_TTL = 30 * 24 * 3600
#: Bound on a publish (connect + script): a handler waits at most this for Redis.
PUBLISH_TIMEOUT = 5.0

_ERRORS = (coredis.exceptions.ConnectionError, TimeoutError, OSError)

PUBLISH = """
local meta = redis.call('hmget', KEYS[2], 'e', 't')
local epoch, top = meta[1], meta[2]
if not epoch then
  epoch = ARGV[6]
  top = '0-0'
  redis.call('del', KEYS[1])
end
local id = redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[3], '*',
  'd', ARGV[1], 'v', ARGV[2], 'e', epoch, 'p', top)
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  local ms = tonumber(string.match(id, '^(%d+)'))
  redis.call('xtrim', KEYS[1], 'MINID', '~', tostring(ms - ttl))
  redis.call('pexpire', KEYS[1], ttl)
end
redis.call('hset', KEYS[2], 'e', epoch, 't', id)
redis.call('expire', KEYS[2], ARGV[5])
return {epoch, id}
"""

START = """
local meta = redis.call('hmget', KEYS[2], 'e', 't')
local epoch, top = meta[1], meta[2]
if not epoch then
  epoch = ARGV[1]
  top = '0-0'
  redis.call('del', KEYS[1])
  redis.call('hset', KEYS[2], 'e', epoch, 't', top)
  redis.call('expire', KEYS[2], ARGV[2])
end
if ARGV[3] == '' or ARGV[4] == top then
  return {epoch, top, '', {}}
end
if ARGV[3] ~= epoch then
  return {epoch, top, 'other_epoch', {}}
end
local entries = redis.call('xrange', KEYS[1], '(' .. ARGV[4], '+')
if #entries == 0 then
  return {epoch, top, 'trimmed', {}}
end
local fields = entries[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 'p' and fields[i + 1] ~= ARGV[4] then
    return {epoch, top, 'trimmed', {}}
  end
end
return {epoch, top, '', entries}
"""


def connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or every error in its group: coredis's task groups wrap them)
    says Redis could not be reached or the connection was lost."""
    found = list(leaves(exc))
    return bool(found) and all(isinstance(e, _ERRORS) for e in found)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_entry_id(value: Any) -> Position:
    """``b"1700000000000-3"`` -> ``(1700000000000, 3)``."""
    first, _, second = _text(value).partition("-")
    return int(first), int(second or 0)


def _format_position(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username + '@' if parts.username else ''}{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class RedisBackend:
    """Topics on Redis Streams (internal; see :meth:`Broadcast.from_url`)."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        history: int,
        history_ttl: float | None,
        key_prefix: str = "trio-h3",
        publish_timeout: float = PUBLISH_TIMEOUT,
        reconnect_max_delay: float = RECONNECT_MAX_DELAY,
        meta_ttl: int = META_TTL,
        encode: Callable[[Any], str] = json.dumps,
        decode: Callable[[str], Any] = json.loads,
        **redis_options: Any,
    ) -> None:
        if history < 1:
            # The Stream is also the reader's transport: an entry must outlive the
            # moment between XADD and the readers' XREAD.
            raise ValueError(f"history must be at least 1 with Redis, not {history!r}")
        self.url = url
        self.history = history
        self.history_ttl = history_ttl
        self.key_prefix = key_prefix
        self.publish_timeout = publish_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.meta_ttl = max(meta_ttl, int(history_ttl or 0) + 1)
        self.encode = encode
        self.decode = decode
        options: dict[str, Any] = {
            "connect_timeout": publish_timeout,
            "stream_timeout": publish_timeout,
            # Never retried: a command whose reply was lost may have been applied.
            "retry_policy": coredis.retry.NoRetryPolicy(),
            **redis_options,
        }
        self._client: coredis.Redis[bytes] = coredis.Redis.from_url(url, **options)
        reader_options = {**options, "stream_timeout": BLOCK_MS / 1000 + publish_timeout}
        self._reader_options = reader_options
        self._publish_script = self._client.register_script(PUBLISH)
        self._start_script = self._client.register_script(START)
        self._deliver: Deliver = _nowhere
        # The reader's cursor per watched topic: (epoch, last position read).
        self._cursors: dict[str, tuple[str, Position]] = {}
        self._reading: frozenset[str] | None = None  # topics of the XREAD in flight
        self._reader_id: int | None = None
        self._watch_changed = trio.Event()
        self._wake = trio.Event()
        self._entered = False
        self.connected = trio.Event()

    # -- keys and entries -----------------------------------------------------------------

    def _keys(self, topic: Hashable) -> tuple[str, str]:
        if not isinstance(topic, str):
            raise TypeError(f"Redis topics are str, not {type(topic).__name__}: {topic!r}")
        base = f"{self.key_prefix}:{{{topic}}}"
        return f"{base}:s", f"{base}:m"

    def _entry(self, topic: str, entry_id: Any, fields: Mapping[Any, Any]) -> Entry:
        values = {_text(k): v for k, v in fields.items()}
        position = parse_entry_id(entry_id)
        epoch = _text(values.get("e", b""))
        event = _text(values.get("v", b"")) or None
        data = self.decode(_text(values.get("d", b"null")))
        previous = parse_entry_id(values.get("p", b"0-0"))
        identifier = format_id(epoch, position, compact=False)
        return Entry(topic, epoch, position, previous, identifier, event, data)

    def _entries(self, topic: str, raw: Sequence[Any]) -> tuple[Entry, ...]:
        """Entries as a Lua script returns them: ``[id, [field, value, ...]]``."""
        out = []
        for entry_id, flat in raw:
            fields = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
            out.append(self._entry(topic, entry_id, fields))
        return tuple(out)

    def _unavailable(self, exc: BaseException | None, doing: str) -> BroadcastUnavailable:
        cause = f": {exc}" if exc is not None else f" within {self.publish_timeout:g}s"
        return BroadcastUnavailable(f"Redis at {safe_url(self.url)} unavailable ({doing}){cause}")

    # -- the hub's calls --------------------------------------------------------------------

    def bind(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def publish(self, topic: Hashable, data: Any, event: str | None) -> Entry:
        self._check_entered()
        stream, meta = self._keys(topic)
        ttl_ms = 0 if self.history_ttl is None else max(1, int(self.history_ttl * 1000))
        args: list[str | int] = [
            self.encode(data),
            event or "",
            self.history,
            ttl_ms,
            self.meta_ttl,
            new_epoch(),
        ]
        result: Any = None
        with trio.move_on_after(self.publish_timeout):
            try:
                result = await self._publish_script(keys=[stream, meta], args=args)
            except Exception as exc:
                if not connection_failure(exc):
                    raise
                raise self._unavailable(exc, "publish") from exc
        if result is None:
            raise self._unavailable(None, "publish")
        epoch, entry_id = _text(result[0]), result[1]
        position = parse_entry_id(entry_id)
        identifier = format_id(epoch, position, compact=False)
        # Delivery is the reader's: it sees this entry like any other process's.
        return Entry(topic, epoch, position, ORIGIN, identifier, event, data)

    async def start(self, topic: Hashable, after: tuple[str, Position] | None) -> Start:
        self._check_entered()
        stream, meta = self._keys(topic)
        assert isinstance(topic, str)
        epoch_arg, after_arg = ("", "") if after is None else (after[0], _format_position(after[1]))
        args: list[str | int] = [new_epoch(), self.meta_ttl, epoch_arg, after_arg]
        result: Any = None
        with trio.move_on_after(self.publish_timeout):
            try:
                result = await self._start_script(keys=[stream, meta], args=args)
            except Exception as exc:
                if not connection_failure(exc):
                    raise
                raise self._unavailable(exc, "subscribe") from exc
        if result is None:
            raise self._unavailable(None, "subscribe")
        epoch, top = _text(result[0]), parse_entry_id(result[1])
        top_id = format_id(epoch, top, compact=False)
        verdict = _text(result[2])
        if verdict == "other_epoch":
            return Start(epoch, top, top_id, reset=RESET_OTHER_EPOCH)
        if verdict == "trimmed":
            return Start(epoch, top, top_id, reset=RESET_TRIMMED)
        return Start(epoch, top, top_id, replay=self._entries(topic, result[3]))

    async def fill(
        self, topic: Hashable, epoch: str, after: Position, before: Position
    ) -> tuple[Entry, ...] | None:
        stream, _ = self._keys(topic)
        assert isinstance(topic, str)
        try:
            with trio.fail_after(self.publish_timeout):
                raw = await self._client.xrange(
                    stream, f"({_format_position(after)}", f"({_format_position(before)}"
                )
        except Exception as exc:
            if isinstance(exc, trio.TooSlowError) or connection_failure(exc):
                return None  # the subscriber gets a reset rather than a silent hole
            raise
        entries = tuple(self._entry(topic, e.identifier, e.field_values) for e in raw)
        previous = after
        for entry in entries:
            if entry.epoch != epoch or entry.previous != previous:
                return None
            previous = entry.position
        return entries

    def watch(self, topic: Hashable, epoch: str, top: Position) -> None:
        assert isinstance(topic, str)
        if topic in self._cursors:
            return
        self._cursors[topic] = (epoch, top)
        self._watch_changed.set()
        self._wake.set()

    def unwatch(self, topic: Hashable) -> None:
        self._cursors.pop(topic, None)  # type: ignore[call-overload]

    def describe(self) -> str:
        ttl = "no ttl" if self.history_ttl is None else f"ttl {self.history_ttl:g}s"
        return f"redis {safe_url(self.url)}, history ~{self.history} ({ttl})"

    def _check_entered(self) -> None:
        if not self._entered:
            raise RuntimeError(
                "a Redis Broadcast must be entered first: `async with hub:` in the lifespan"
            )

    # -- the background tasks -------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        async with self._client:
            self._entered = True
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read_forever)
                    nursery.start_soon(self._wake_reader)
                    task_status.started()
            finally:
                self._entered = False

    async def _read_forever(self) -> None:
        delay = RECONNECT_FIRST_DELAY
        while True:
            try:
                await self._read_connected()
            except Exception as exc:
                if self.connected.is_set():  # it was up: reconnect quickly first
                    delay = RECONNECT_FIRST_DELAY
                self.connected = trio.Event()
                self._reading = None
                if connection_failure(exc):
                    logger.warning(
                        "broadcast: Redis reader lost %s (%s); reconnecting in %.2fs",
                        safe_url(self.url),
                        next(iter(leaves(exc))),
                        delay,
                    )
                else:
                    # Never let the reader die silently (peer pitfall: a listener that
                    # died left every subscriber waiting forever): log, back off, go on.
                    logger.exception("broadcast: Redis reader failed; restarting in %.2fs", delay)
            # "Equal jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"):
            # reconnecting processes do not all knock at the same moment.
            await trio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self.reconnect_max_delay)

    async def _read_connected(self) -> None:
        reader: coredis.Redis[bytes] = coredis.Redis.from_url(
            self.url, max_connections=1, **self._reader_options
        )
        async with reader:
            self._reader_id = int(await reader.client_id())
            await self._check_epochs()
            self.connected.set()
            logger.debug("broadcast: Redis reader connected to %s", safe_url(self.url))
            while True:
                if not self._cursors:
                    await self._watch_changed.wait()
                self._watch_changed = trio.Event()
                cursors = dict(self._cursors)
                if not cursors:
                    continue
                streams = {self._keys(t)[0]: _format_position(c[1]) for t, c in cursors.items()}
                self._reading = frozenset(cursors)
                try:
                    result = await reader.xread(streams, count=READ_COUNT, block=BLOCK_MS)
                finally:
                    self._reading = None
                if not result:
                    continue
                by_key = {self._keys(t)[0]: t for t in cursors}
                for key, raw_entries in result.items():
                    topic = by_key.get(_text(key))
                    if topic is None:
                        continue
                    for raw in raw_entries:
                        entry = self._entry(topic, raw.identifier, raw.field_values)
                        if topic in self._cursors:
                            self._cursors[topic] = (entry.epoch, entry.position)
                            self._deliver(entry)

    async def _check_epochs(self) -> None:
        """After a (re)connect: a topic whose store was reset is read from its start."""
        for topic in list(self._cursors):
            _, meta = self._keys(topic)
            epoch = await self._client.hget(meta, "e")
            cursor = self._cursors.get(topic)
            if cursor is not None and (epoch is None or _text(epoch) != cursor[0]):
                self._cursors[topic] = (_text(epoch) if epoch is not None else "", ORIGIN)

    async def _wake_reader(self) -> None:
        """Interrupt a blocked XREAD that lacks a newly watched topic (CLIENT UNBLOCK)."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            # Bounded: the reader re-issues its XREAD within a round trip of an unblock;
            # an unblock that arrived just before the XREAD blocked is sent again.
            for _ in range(100):
                reading = self._reading
                if reading is None or set(self._cursors) <= reading:
                    break
                if self._reader_id is not None:
                    try:
                        await self._client.client_unblock(self._reader_id)
                    except Exception:  # never take the hub down: the reader copes
                        logger.debug("broadcast: CLIENT UNBLOCK failed", exc_info=True)
                        break
                await trio.sleep(0.02)


def _nowhere(entry: Entry) -> None:
    pass
