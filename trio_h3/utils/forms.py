"""``multipart/form-data`` (RFC 7578), parsed as it arrives, and the files it carries.

The server calls :func:`read_multipart` for ``await event.form()`` (through
:meth:`~trio_h3.types.RequestIO.read_multipart`, so the event stays free of Trio). The
body is fed chunk by chunk, as the connection receives it, to the sans-IO
``PushMultipartParser`` of PyPI's ``multipart`` (2.x). Memory stays bounded whatever the
upload: a text field is held in memory up to ``max_field_size``; a file up to
``spool_max_size``, then in a temp file written in batches from a worker thread, so the
event loop never waits on the disk. The server removes every temp file when the request
ends, however it ends (:func:`remove_uploads`), a client gone mid-upload included.

What is refused, and how (each with the JSON error body; the rest of the body is then
left unread and the connection closed after the answer):

- more than ``max_fields`` text fields or ``max_files`` files, a text field over
  ``max_field_size``: 413, as the body limit itself (RFC 9110 §15.5.14);
- a part header block past its limit (:data:`MAX_PART_HEADER_LINE` bytes per line,
  :data:`MAX_PART_HEADERS` lines): **400**, not 431. 431 (RFC 6585 §5) speaks of the
  request's header fields, and a client seeing it would look at its HTTP headers; a part's
  headers are content, and no browser sends a large block (two short lines per part);
- no boundary, a boundary RFC 2046 §5.1.1 does not allow (1 to 70 characters of
  ``bchars``), junk where a boundary must be, a body cut short or without its final
  boundary: 400.

A filename is taken as given (RFC 7578 §4.2), Windows paths included, and never used as
a path here: a file is saved only where :meth:`UploadFile.save` is told to.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from contextlib import aclosing
from typing import IO, TYPE_CHECKING, Any

import trio

from ..datastructures import FormData, Headers, parse_media_type
from ..errors import HTTPError
from ..event import form_charset
from ..types import FormLimits

if TYPE_CHECKING:
    from multipart import MultipartSegment

    from ..event import H3Event

__all__ = ["UploadFile"]

#: How the parser and the files run blocking file I/O: ``await run(fn, *args)``.
RunBlocking = Callable[..., Awaitable[Any]]

# RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace (RFC 7578 §4.1 refers to it).
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
#: Longest line of a part's header block (the multipart library's default, 4 KiB: a
#: Content-Disposition with a 255-character UTF-8 filename is about 1 KiB).
MAX_PART_HEADER_LINE = 4096
#: Most lines in a part's header block (the library's default; RFC 7578 §4.8 defines
#: three header fields for a part, and browsers send two).
MAX_PART_HEADERS = 8
#: Spooled bytes are written to disk in batches of this size, one worker-thread call
#: each (a 64 KiB read from the socket per call would cost 16 times as many hops).
WRITE_BATCH = 1024 * 1024
#: Parts parsed between two checkpoints, so that a form of many small fields never holds
#: the event loop for long (100 parts: well under a millisecond).
PARTS_PER_CHECKPOINT = 100
# RFC 7578 §4.4: a part without a Content-Type is text/plain.
_DEFAULT_CONTENT_TYPE = "text/plain"


def _multipart() -> Any:
    """PyPI's ``multipart`` (imported on the first multipart form, not with trio-h3)."""
    try:
        import multipart

        multipart.PushMultipartParser  # noqa: B018 - the 2.x API is there
    except (ImportError, AttributeError) as exc:  # pragma: no cover - the environment
        # python-multipart installs a module of the same name (its compatibility shim),
        # which shadows this one when both are installed.
        raise RuntimeError(
            "trio-h3 parses multipart/form-data with PyPI's `multipart` (2.x), but "
            "`import multipart` does not provide PushMultipartParser: is python-multipart "
            "installed beside it? They share the module name; uninstall python-multipart "
            "or use a separate environment"
        ) from exc
    return multipart


class UploadFile:
    """A file from a ``multipart/form-data`` form.

    ``filename`` as the client sent it (never a safe path: pick your own),
    ``content_type`` (the part's media type, lowercased; ``text/plain`` when absent, RFC
    7578 §4.4), the part's ``headers``, ``size`` in bytes and ``name``, the form field.
    The content is in memory up to the form's ``spool_max_size``, else in a temp file;
    :meth:`read`, :meth:`seek` and :meth:`save` never block the event loop. It lives as
    long as its request: save what you keep.
    """

    __slots__ = (
        "_batch",
        "_batched",
        "_closed",
        "_file",
        "_lock",
        "_path",
        "_run",
        "_spool_dir",
        "_spool_max_size",
        "content_type",
        "filename",
        "headers",
        "name",
        "size",
    )

    def __init__(
        self,
        name: str,
        filename: str,
        content_type: str,
        headers: Headers,
        *,
        run: RunBlocking,
        spool_max_size: int,
        spool_dir: str | None = None,
    ) -> None:
        #: The form field's name.
        self.name = name
        #: The filename as sent (RFC 7578 §4.2): untrusted, possibly empty (a file
        #: input left empty), never a path to use as it is.
        self.filename = filename
        #: The part's media type, lowercased, without parameters.
        self.content_type = content_type
        #: The part's own headers.
        self.headers = headers
        #: Bytes received.
        self.size = 0
        self._run = run
        self._spool_max_size = spool_max_size
        self._spool_dir = spool_dir
        self._file: IO[bytes] = io.BytesIO()
        self._path: str | None = None
        self._batch: list[bytes] = []
        self._batched = 0
        self._closed = False
        self._lock = trio.Lock()

    @property
    def in_memory(self) -> bool:
        """True while the content is held in memory (not spooled to a temp file)."""
        return self._path is None

    def __repr__(self) -> str:
        return (
            f"UploadFile(name={self.name!r}, filename={self.filename!r}, "
            f"content_type={self.content_type!r}, size={self.size})"
        )

    # -- written by the parser ------------------------------------------------------------

    async def _write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._path is None:
            if self.size <= self._spool_max_size:
                self._file.write(chunk)
                return
            await self._roll_over()
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._batched >= WRITE_BATCH:
            await self._flush()

    async def _roll_over(self) -> None:
        memory = self._file
        assert isinstance(memory, io.BytesIO)
        self._file, self._path = await self._run(_open_spool, self._spool_dir)
        self._batch = [memory.getvalue()]
        self._batched = len(self._batch[0])

    async def _flush(self) -> None:
        if self._batch:
            batch, self._batch, self._batched = self._batch, [], 0
            await self._run(self._file.writelines, batch)

    async def _complete(self) -> None:
        await self._flush()
        await self.seek(0)

    # -- for the handler ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                f"the upload {self.filename!r} was removed when its request ended; "
                "save() it during the request to keep it"
            )

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all of the rest if negative)."""
        async with self._lock:
            self._check_open()
            if self._path is None:
                return self._file.read(size)
            data: bytes = await self._run(self._file.read, size)
            return data

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the read position (as ``io.IOBase.seek``); the new position."""
        async with self._lock:
            self._check_open()
            if self._path is None:
                return self._file.seek(offset, whence)
            position: int = await self._run(self._file.seek, offset, whence)
            return position

    def tell(self) -> int:
        """The read position."""
        self._check_open()
        return self._file.tell()

    async def save(self, destination: str | os.PathLike[str]) -> int:
        """Copy the whole content to ``destination`` (a new or truncated file); its size.

        The copy runs in a worker thread; the read position is kept.
        """
        async with self._lock:
            self._check_open()
            copied: int = await self._run(_copy_to, self._file, os.fspath(destination))
            return copied

    async def aclose(self) -> None:
        """Release the content now (the server does it when the request ends)."""
        if self._closed:
            return
        self._closed = True
        file, path = self._file, self._path
        self._batch = []
        if path is None:
            file.close()
        else:
            await self._run(_remove_spool, file, path)


def _open_spool(directory: str | None) -> tuple[IO[bytes], str]:
    descriptor, path = tempfile.mkstemp(prefix="trio-h3-upload-", dir=directory)
    try:
        return os.fdopen(descriptor, "w+b"), path
    except BaseException:
        os.close(descriptor)
        os.unlink(path)
        raise


def _remove_spool(file: IO[bytes], path: str) -> None:
    try:
        file.close()
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _copy_to(file: IO[bytes], destination: str) -> int:
    position = file.tell()
    file.seek(0)
    try:
        with open(destination, "wb") as target:
            shutil.copyfileobj(file, target, WRITE_BATCH)
            return target.tell()
    finally:
        file.seek(position)


async def remove_uploads(files: Iterable[UploadFile]) -> None:
    """Release every file (the server calls it when the request ends); never raises."""
    for file in files:
        try:
            await file.aclose()
        except OSError:
            # A temp file someone else removed, a read-only /tmp...: nothing to do now.
            pass


# -- parsing ------------------------------------------------------------------------------


def _filename(segment: MultipartSegment) -> str:
    multipart = _multipart()
    filename: str = segment.filename or ""
    raw = segment.header("Content-Disposition", "")
    if "\\" in raw:
        # The library drops the directory of a Windows path (old IE sent one); RFC
        # 7578 §4.2 says a filename is taken as given, so read it again without that.
        _, options = multipart.parse_options_header(
            raw, unquote=lambda value, _is_filename: multipart.content_disposition_unquote(value)
        )
        filename = options.get("filename", filename)
    return filename


def _part_headers(segment: MultipartSegment) -> Headers:
    # The library decoded the part's header block as UTF-8; as bytes again, it reads like
    # any request header (latin-1), while ``filename`` and ``name`` are the decoded text.
    return Headers.from_raw(
        [
            (name.lower().encode("latin-1"), value.encode("utf-8"))
            for name, value in segment.headerlist
        ]
    )


def _boundary(event: H3Event) -> bytes:
    _, params = parse_media_type(event.headers.get("content-type", ""))
    boundary = params.get("boundary")
    if not boundary:
        raise HTTPError(400, "multipart/form-data without a boundary parameter")
    if not _BOUNDARY.fullmatch(boundary):
        raise HTTPError(
            400,
            "Invalid multipart boundary: 1 to 70 characters of RFC 2046 §5.1.1",
            data={"length": len(boundary)},
        )
    return boundary.encode("ascii")


class _Builder:
    """The form being built from the parser's events, under the form's limits."""

    __slots__ = ("created", "field", "fields", "files", "limits", "parts", "run", "track", "upload")

    def __init__(
        self, limits: FormLimits, run: RunBlocking, track: Callable[[UploadFile], None]
    ) -> None:
        self.limits = limits
        self.run = run
        self.track = track
        # (name, value bytes, part charset) for text, (name, file, None) for files.
        self.parts: list[tuple[str, bytearray | UploadFile, str | None]] = []
        self.fields = self.files = 0
        self.field: bytearray | None = None
        self.upload: UploadFile | None = None
        self.created: list[UploadFile] = []

    def start(self, segment: MultipartSegment) -> None:
        limits = self.limits
        name = segment.name or ""
        if segment.filename is None:
            self.fields += 1
            if self.fields > limits.max_fields:
                raise HTTPError(413, "Too many form fields", data={"limit": limits.max_fields})
            self.field, self.upload = bytearray(), None
            self.parts.append((name, self.field, segment.charset))
            return
        self.files += 1
        if self.files > limits.max_files:
            raise HTTPError(413, "Too many files", data={"limit": limits.max_files})
        self.field = None
        self.upload = upload = UploadFile(
            name,
            _filename(segment),
            segment.content_type or _DEFAULT_CONTENT_TYPE,
            _part_headers(segment),
            run=self.run,
            spool_max_size=limits.spool_max_size,
            spool_dir=limits.spool_dir,
        )
        self.created.append(upload)
        self.track(upload)
        self.parts.append((name, upload, None))

    async def data(self, chunk: bytes) -> None:
        if self.upload is not None:
            await self.upload._write(chunk)
            return
        field = self.field
        assert field is not None
        if len(field) + len(chunk) > self.limits.max_field_size:
            raise HTTPError(
                413,
                "Form field too large",
                data={"field": self.parts[-1][0], "limit": self.limits.max_field_size},
            )
        field += chunk

    async def end(self) -> None:
        if self.upload is not None:
            await self.upload._complete()
            self.upload = None


async def read_multipart(
    event: H3Event,
    limits: FormLimits,
    *,
    run: RunBlocking,
    track: Callable[[UploadFile], None],
) -> FormData:
    """Parse the ``multipart/form-data`` body of ``event`` as it arrives (module docstring).

    ``run`` runs blocking file I/O (a worker thread); ``track`` receives every file as it
    is created, for the server to remove when the request ends.
    """
    multipart = _multipart()
    parser = multipart.PushMultipartParser(
        _boundary(event), max_header_size=MAX_PART_HEADER_LINE, max_header_count=MAX_PART_HEADERS
    )
    builder = _Builder(limits, run, track)
    try:
        try:
            async with aclosing(event.stream()) as body:
                async for chunk in body:
                    for item in parser.parse(chunk):
                        if isinstance(item, bytes):
                            await builder.data(item)
                        elif isinstance(item, multipart.MultipartSegment):
                            builder.start(item)
                            if (builder.fields + builder.files) % PARTS_PER_CHECKPOINT == 0:
                                # 64 KiB of tiny fields is ~700 parts, a few ms of
                                # parsing: let other tasks in now and then.
                                await trio.lowlevel.checkpoint()
                        else:  # None: the end of a part
                            await builder.end()
            parser.close()
        except multipart.ParserLimitReached as exc:
            raise HTTPError(400, "Part header block too large", data={"error": str(exc)}) from None
        except multipart.MultipartError as exc:
            raise HTTPError(400, "Malformed multipart body", data={"error": str(exc)}) from None
        return _form(builder.parts)
    except BaseException:
        # Free the disk at once; the server's own cleanup when the request ends is the
        # backstop (this one may itself be cancelled).
        with trio.CancelScope(shield=True):
            await remove_uploads(builder.created)
        raise


def _form(parts: list[tuple[str, bytearray | UploadFile, str | None]]) -> FormData:
    # RFC 7578 §4.6: a text field named _charset_ is the default charset of the text
    # fields without their own; it may come after them, so text is decoded at the end.
    default: str | None = None
    for name, value, _ in parts:
        if name == "_charset_" and isinstance(value, bytearray):
            default = value.decode("ascii", "replace").strip()
            break
    codecs: dict[str | None, str] = {}
    items: list[tuple[str, str | UploadFile]] = []
    for name, value, charset in parts:
        if isinstance(value, bytearray):
            wanted = charset or default
            codec = codecs.get(wanted)
            if codec is None:
                codec = codecs[wanted] = form_charset(wanted)
            items.append((name, value.decode(codec, "replace")))
        else:
            items.append((name, value))
    return FormData(items)
