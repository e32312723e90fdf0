"""Validators, conditional requests and byte ranges (RFC 9110 §8.8, §13, §14). Pure.

What :class:`~trio_h3.FileResponse` and :class:`~trio_h3.StaticFiles` decide before a
byte of a file goes out:

- validators: a strong ``ETag`` from the file's size and ``mtime_ns`` (a file changed
  on disk gets a new one), ``Last-Modified`` from its mtime (RFC 9110 §8.8.2, §8.8.3);
- preconditions in the order RFC 9110 §13.2.2 fixes: ``If-Match``, then
  ``If-Unmodified-Since`` (412), ``If-None-Match``, then ``If-Modified-Since`` (304 for
  GET and HEAD, 412 for other methods), then ``If-Range``;
- ``Range: bytes=`` (RFC 9110 §14.1.2): first-last, open (``500-``) and suffix (``-500``)
  ranges; a set no range of which is satisfiable is a 416 (§15.5.17), a header this
  server cannot make sense of is ignored (a full 200, as §14.2 allows).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate, mktime_tz, parsedate_tz

__all__: list[str] = []

#: At most this many parts in a ``multipart/byteranges`` answer; a request for more
#: (after overlapping and adjacent ranges are merged) gets the whole file instead. RFC
#: 9110 §14.2 lets a server ignore a Range it finds abusive: many small ranges cost a
#: part header and a syscall each (the "Apache Killer", CVE-2011-3192), while the
#: clients that ask for several ranges at all (PDF readers) ask for a handful.
MAX_RANGES = 16


def http_date(timestamp: float) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7): ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(timestamp, usegmt=True)


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch of an HTTP-date (any of the three forms), None if invalid."""
    parsed = parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return int(mktime_tz(parsed))
    except (OverflowError, ValueError):
        return None


def make_etag(size: int, mtime_ns: int) -> str:
    """The strong ETag of a file: its size and modification time, both to the byte/ns."""
    return f'"{size:x}-{mtime_ns:x}"'


def _etags(header: str) -> list[str]:
    """The entity-tags of an ``If-Match`` / ``If-None-Match`` list (``*`` kept as is)."""
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _weak_match(tags: Sequence[str], etag: str) -> bool:
    # RFC 9110 §8.8.3.2: the weak comparison ignores the W/ prefix on either side.
    bare = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == bare for tag in tags)


def _strong_match(tags: Sequence[str], etag: str) -> bool:
    # Strong comparison: both tags strong and identical (a weak tag never matches).
    if etag.startswith("W/"):
        return False
    return any(tag == "*" or tag == etag for tag in tags)


class Outcome(enum.Enum):
    """What the preconditions of a request decide."""

    #: Go on: send the representation (or its ranges).
    PROCEED = "proceed"
    #: 304 Not Modified (GET/HEAD whose cached copy is current).
    NOT_MODIFIED = "not_modified"
    #: 412 Precondition Failed.
    FAILED = "failed"


def evaluate_preconditions(
    method: str,
    if_match: str | None,
    if_unmodified_since: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
    etag: str,
    last_modified: int,
) -> Outcome:
    """RFC 9110 §13.2.2, steps 1-4, for a representation that exists."""
    if if_match is not None:
        if not _strong_match(_etags(if_match), etag):
            return Outcome.FAILED
    elif if_unmodified_since is not None:
        since = parse_http_date(if_unmodified_since)
        if since is not None and last_modified > since:
            return Outcome.FAILED
    safe = method in ("GET", "HEAD")
    if if_none_match is not None:
        if _weak_match(_etags(if_none_match), etag):
            return Outcome.NOT_MODIFIED if safe else Outcome.FAILED
    elif if_modified_since is not None and safe:
        since = parse_http_date(if_modified_since)
        if since is not None and last_modified <= since:
            return Outcome.NOT_MODIFIED
    return Outcome.PROCEED


def if_range_holds(if_range: str | None, etag: str, last_modified: int) -> bool:
    """Whether a ``Range`` may be honoured under ``If-Range`` (RFC 9110 §13.1.5).

    An entity-tag must match strongly; a date must be exactly the Last-Modified date
    (the only date this server could have sent as a validator).
    """
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return _strong_match([value], etag)
    return parse_http_date(value) == last_modified


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` inclusive (as ``Content-Range`` writes them)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """How many bytes the range holds."""
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """No range of the set overlaps the representation: a 416."""


def parse_range(header: str, size: int) -> list[ByteRange] | None:
    """The ranges a ``Range`` header asks of a ``size``-byte representation.

    None means "ignore the header, send it all": not a ``bytes`` range, a syntax error,
    or more than :data:`MAX_RANGES` parts once merged. Raises :class:`Unsatisfiable` when
    none of the ranges overlaps the representation (RFC 9110 §14.1.2). Overlapping and
    adjacent ranges are merged (§14.2 allows it), in ascending order.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[ByteRange] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        first, dash, last = item.partition("-")
        first, last = first.strip(), last.strip()
        if not dash or not (first.isdigit() or (not first and last.isdigit())):
            return None
        if last and not last.isdigit():
            return None
        if not first:
            suffix = int(last)
            if suffix == 0 or size == 0:
                continue  # a zero-length suffix selects nothing
            ranges.append(ByteRange(max(0, size - suffix), size - 1))
            continue
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None  # RFC 9110 §14.1.1: an invalid range-spec; the header is ignored
        if start >= size:
            continue  # unsatisfiable on its own
        ranges.append(ByteRange(start, min(end, size - 1)))
    if not ranges:
        raise Unsatisfiable
    ranges.sort(key=lambda r: r.start)
    merged = [ranges[0]]
    for byte_range in ranges[1:]:
        last_range = merged[-1]
        if byte_range.start <= last_range.end + 1:
            merged[-1] = ByteRange(last_range.start, max(last_range.end, byte_range.end))
        else:
            merged.append(byte_range)
    if len(merged) > MAX_RANGES:
        return None
    return merged
