"""``FileResponse``: one file from disk, with validators, conditionals and ranges.

The response is decided in two steps. :meth:`FileResponse.prepare` (the app calls it when
a handler returns the response; the server does if nobody did) stats the file in a
worker thread and settles the status and the head: 200, 206 for ranges, 304 when the
client's copy is current, 412 for a failed precondition, 416 for ranges past the end,
404 when there is no such file (RFC 9110 §13, §14; :mod:`.conditional`). The server then
opens the file (in a thread too), checks that it is still the file that was stat'ed
(else decides again with the new stat, so the head always matches the bytes) and sends
the body: with ``os.sendfile`` on plain TCP, in chunks read in a thread over TLS. The
file is never read whole.
"""

from __future__ import annotations

import mimetypes
import os
import secrets
import stat as stat_module
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..errors import HTTPError
from ..response import HeadersArg, Response
from .conditional import (
    ByteRange,
    Outcome,
    Unsatisfiable,
    evaluate_preconditions,
    http_date,
    if_range_holds,
    make_etag,
    parse_range,
)

if TYPE_CHECKING:
    from ..event import H3Event

__all__ = ["FileResponse"]

# Python's own table only: /etc/mime.types differs from one machine to the next, and a
# .js served as text/plain by one of them is a script the browser refuses.
_MIME = mimetypes.MimeTypes(filenames=())
# What browsers expect today where the table is old or silent.
_MIME_OVERRIDES = {
    ".js": "text/javascript",  # RFC 9239
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".avif": "image/avif",
    ".webp": "image/webp",
    ".md": "text/markdown",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".ico": "image/vnd.microsoft.icon",
}


def guess_media_type(path: str) -> str:
    """The Content-Type for ``path`` by its extension, ``charset=utf-8`` for text."""
    ext = os.path.splitext(path)[1].lower()
    media = _MIME_OVERRIDES.get(ext) or _MIME.guess_type(path, strict=False)[0]
    if media is None:
        return "application/octet-stream"
    if media.startswith("text/"):
        media += "; charset=utf-8"
    return media


def cache_control(max_age: int | None, immutable: bool) -> str:
    """The ``Cache-Control`` of a file.

    Without ``max_age``: ``no-cache``, so browsers revalidate every time (a cheap 304)
    instead of guessing a lifetime from Last-Modified (RFC 9111 §4.2.2) and showing a
    stale stylesheet after a deploy. ``immutable`` (RFC 8246) for fingerprinted names.
    """
    if max_age is None:
        return "no-cache"
    value = f"public, max-age={max_age}"
    return value + ", immutable" if immutable else value


def _content_disposition(filename: str, kind: str) -> str:
    # RFC 6266 §4.3: an ASCII fallback, and filename* (RFC 8187) for the real name.
    fallback = filename.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "_")
    if fallback == filename:
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


#: What the body of a prepared file response is: bytes to write as they are (the part
#: headers of multipart/byteranges), or ``(offset, count)`` slices of the file.
BodyPlan = list[bytes | tuple[int, int]]


class FileResponse(Response):
    """A file from disk: ``return FileResponse("report.pdf", filename="report.pdf")``.

    Sends ``ETag`` (strong, from size and mtime) and ``Last-Modified``, answers
    ``If-None-Match`` / ``If-Modified-Since`` with 304 and ``If-Match`` /
    ``If-Unmodified-Since`` with 412 (RFC 9110 §13), ``Range`` with 206 (one range, or
    several as ``multipart/byteranges``), ``If-Range``, and 416 past the end (RFC 9110
    §14); ``Accept-Ranges: bytes``; HEAD sends the head alone. A missing file is a 404.

    ``media_type`` defaults to the extension's (``charset=utf-8`` for text);
    ``filename`` adds ``Content-Disposition: attachment`` (``inline=True``: shown in the
    browser); ``max_age`` / ``immutable`` set ``Cache-Control`` (default ``no-cache``:
    revalidate every time). A ``status`` other than 200 sends the whole file with that
    status and no conditionals (a custom 404 page, say).
    """

    streaming = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        status: int = 200,
        headers: HeadersArg = None,
        media_type: str | None = None,
        *,
        filename: str | None = None,
        inline: bool = False,
        max_age: int | None = None,
        immutable: bool = False,
        stat_result: os.stat_result | None = None,
    ) -> None:
        path = os.fspath(path)
        super().__init__(
            b"", status, headers, media_type if media_type is not None else guess_media_type(path)
        )
        self.path = path
        #: The file's media type (kept here too: a 304 sends no Content-Type).
        self.content_type = self.headers.get("content-type")
        self.content_status = status
        self.max_age = max_age
        self.immutable = immutable
        if filename is not None:
            self.headers.set(
                "content-disposition",
                _content_disposition(filename, "inline" if inline else "attachment"),
            )
        #: The stat the head was decided from (None until :meth:`prepare`).
        self.stat_result = stat_result
        #: The body to send, once prepared (empty for HEAD, 304 and friends).
        self.plan: BodyPlan = []
        self.prepared = False
        self._fd: int | None = None

    @classmethod
    def opened(
        cls, path: str, fd: int, stat_result: os.stat_result, **options: Any
    ) -> FileResponse:
        """A response for a file already open as ``fd`` (``stat_result`` its fstat).

        The response owns ``fd``: the server sends from it and closes it, and so does
        the response if it is dropped unsent. (How ``StaticFiles`` saves a thread hop:
        it opens the file in the same worker-thread call that found it.)
        """
        response = cls(path, stat_result=stat_result, **options)
        response._fd = fd
        return response

    def take_fd(self) -> int | None:
        """The open descriptor, if the response holds one; the caller now owns it."""
        fd, self._fd = self._fd, None
        return fd

    def __copy__(self) -> FileResponse:
        # A copy (the app adds the event's headers to one) takes the descriptor over:
        # two owners would close it twice, the second time maybe someone else's.
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        self._fd = None
        return clone

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)

    async def prepare(self, event: H3Event) -> Response:
        """Stat the file (in a worker thread) and decide the status and head.

        Raises :class:`~trio_h3.HTTPError` 404 for a missing file (or one that is not a
        regular file), 412 and 416 as RFC 9110 says.
        """
        if self.prepared:
            return self
        stat_result = self.stat_result
        if stat_result is None:
            try:
                stat_result = await event.run_sync(os.stat, self.path)
            except OSError:
                raise HTTPError(404, "Not Found") from None
        self.decide(stat_result, event.method, event.headers.get)
        return self

    def decide(self, stat_result: os.stat_result, method: str, header: Any) -> None:
        """Settle status, head and body plan for this stat of the file (pure).

        ``header(name)`` reads a request header (None when absent).
        """
        if not stat_module.S_ISREG(stat_result.st_mode):
            raise HTTPError(404, "Not Found")
        self.stat_result = stat_result
        self.prepared = True
        size = stat_result.st_size
        etag = make_etag(size, stat_result.st_mtime_ns)
        last_modified = int(stat_result.st_mtime)
        headers = self.headers
        headers.set("etag", etag)
        headers.set("last-modified", http_date(last_modified))
        headers.set("accept-ranges", "bytes")
        if "cache-control" not in headers:
            headers.set("cache-control", cache_control(self.max_age, self.immutable))
        self.status = self.content_status
        whole: BodyPlan = [(0, size)] if size else []
        if self.content_status != 200:
            self._full(size, whole)
            return
        outcome = evaluate_preconditions(
            method,
            header("if-match"),
            header("if-unmodified-since"),
            header("if-none-match"),
            header("if-modified-since"),
            etag,
            last_modified,
        )
        if outcome is Outcome.FAILED:
            raise HTTPError(412, "Precondition Failed")
        if outcome is Outcome.NOT_MODIFIED:
            # RFC 9110 §15.4.5: the validators and Cache-Control, no representation data.
            self.status = 304
            for name in ("content-type", "content-length", "content-disposition"):
                headers.delete(name)
            self.plan = []
            return
        range_header = header("range")
        # §14.2: Range is defined for GET only; If-Range failing means "send it all".
        if (
            range_header is None
            or method != "GET"
            or not if_range_holds(header("if-range"), etag, last_modified)
        ):
            self._full(size, whole)
            return
        try:
            ranges = parse_range(range_header, size)
        except Unsatisfiable:
            raise HTTPError(
                416, "Range Not Satisfiable", headers=[("content-range", f"bytes */{size}")]
            ) from None
        if ranges is None:
            self._full(size, whole)
        elif len(ranges) == 1:
            only = ranges[0]
            self.status = 206
            headers.set("content-range", f"bytes {only.start}-{only.end}/{size}")
            headers.set("content-length", str(only.length))
            self.plan = [(only.start, only.length)]
        else:
            self._multipart(ranges, size)

    def _full(self, size: int, whole: BodyPlan) -> None:
        self.headers.delete("content-range")
        self.headers.set("content-length", str(size))
        self.plan = whole

    def _multipart(self, ranges: list[ByteRange], size: int) -> None:
        # RFC 9110 §14.6: each part carries its own Content-Type and Content-Range.
        boundary = secrets.token_hex(16)
        media = self.headers.get("content-type", "application/octet-stream")
        plan: BodyPlan = []
        length = 0
        for index, byte_range in enumerate(ranges):
            lead = "" if index == 0 else "\r\n"
            part_head = (
                f"{lead}--{boundary}\r\n"
                f"content-type: {media}\r\n"
                f"content-range: bytes {byte_range.start}-{byte_range.end}/{size}\r\n\r\n"
            ).encode("latin-1")
            plan += [part_head, (byte_range.start, byte_range.length)]
            length += len(part_head) + byte_range.length
        tail = f"\r\n--{boundary}--\r\n".encode("latin-1")
        plan.append(tail)
        length += len(tail)
        self.status = 206
        self.headers.set("content-type", f"multipart/byteranges; boundary={boundary}")
        self.headers.set("content-length", str(length))
        self.plan = plan

    def __repr__(self) -> str:
        return f"FileResponse({self.path!r}, status={self.status})"
