"""``compress()``: gzip and br content coding, streams flushed per write (RFC 9110 §8.4).

``app.use(compress())``. The coding is chosen from ``Accept-Encoding`` with its q-values
(:mod:`.negotiation`) as the response head goes out (an ``event.before_head`` hook, so it
sees the final response of any kind, error responses and inline SSE streams included):

- a complete response at least ``minimum_size`` bytes long is compressed whole, and kept
  as it was if that does not make it smaller;
- a stream (SSE, ``StreamingResponse``) gets an encoder the server runs on every write:
  each SSE event or body chunk is compressed and *flushed* (``Z_SYNC_FLUSH``, brotli's
  flush), so it reaches the browser at once instead of waiting in a 32 KiB deflate
  buffer (Starlette's GZipMiddleware until 1.10, tower-http and Django still);
- left alone: a response that already has a ``Content-Encoding`` (a precompressed file),
  ``Cache-Control: no-transform`` (RFC 9111 §5.2.2.6), partial content (206, or any
  ``Content-Range``: ranges are of the identity representation, RFC 9110 §14), media
  types that do not compress (images, video, audio, archives, fonts already compressed:
  only the types :func:`is_compressible` lists are) and statuses without content.

A ``FileResponse`` (``StaticFiles``) of a compressible type is coded too, read in chunks
instead of going out by ``os.sendfile``; a Range request still gets the file itself, and
a precompressed sibling (``StaticFiles(precompressed=True)``) is sent as it is, with no
work at all: the better choice for assets known at build time. ``files=False`` keeps
every file on the zero-copy path.

Whenever the answer could have been compressed, ``Vary: Accept-Encoding`` is added (304s
included, RFC 9110 §15.4.5), so a cache never hands gzip to a client that did not ask for
it; a strong ``ETag`` becomes weak on a compressed response (RFC 9110 §8.8.3: the bytes
are no longer those the tag named).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from ..response import Response
from .files import FileResponse
from .negotiation import add_vary, choose_encoding

try:
    import brotli
except ImportError:  # the optional [brotli] extra
    brotli = None

if TYPE_CHECKING:
    from ..event import H3Event
    from ..types import ContentEncoder, Middleware, Next

__all__ = ["compress"]

_TEXTUAL = (
    "application/json",
    "application/javascript",
    "application/ecmascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/ld+json",
    "application/manifest+json",
    "application/geo+json",
    "application/x-ndjson",
    "application/graphql-response+json",
    "application/wasm",
    "application/x-javascript",
    "application/yaml",
    "application/toml",
    "application/x-www-form-urlencoded",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
    "font/ttf",
    "font/otf",
    "application/vnd.ms-fontobject",
)


def is_compressible(media_type: str) -> bool:
    """Whether a body of ``media_type`` is worth compressing: text, JSON, XML, JS, SVG,
    wasm, uncompressed fonts and the like; not images, video, audio or archives."""
    media = media_type.partition(";")[0].strip().lower()
    return media.startswith("text/") or media in _TEXTUAL or media.endswith(("+json", "+xml"))


class GzipEncoder:
    """gzip, each write sync-flushed (``Z_SYNC_FLUSH``: a byte-aligned block end)."""

    __slots__ = ("_zlib",)

    def __init__(self, level: int = 6, window_bits: int = 15, mem_level: int = 8) -> None:
        # 16 + window bits: the gzip wrapper (RFC 1952), what "gzip" means (§8.4.1.3).
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, 16 + window_bits, mem_level)

    def encode(self, data: bytes) -> bytes:
        """``data`` compressed, then flushed to a byte boundary."""
        return self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        """The last block and the gzip trailer (CRC-32, length)."""
        return self._zlib.flush(zlib.Z_FINISH)


class BrotliEncoder:
    """br (RFC 7932), each write flushed."""

    __slots__ = ("_brotli",)

    def __init__(self, quality: int = 4, window_bits: int = 22) -> None:
        assert brotli is not None
        self._brotli = brotli.Compressor(quality=quality, lgwin=window_bits)

    def encode(self, data: bytes) -> bytes:
        """``data`` compressed, then flushed."""
        return self._brotli.process(data) + self._brotli.flush()  # type: ignore[no-any-return]

    def finish(self) -> bytes:
        """The end of the brotli stream."""
        return self._brotli.finish()  # type: ignore[no-any-return]


def _weaken_etag(response: Response) -> None:
    etag = response.headers.get("etag")
    if etag is not None and not etag.startswith("W/"):
        response.headers.set("etag", "W/" + etag)


class _Settings:
    __slots__ = (
        "brotli_quality",
        "files",
        "full",
        "gzip_level",
        "media_types",
        "minimum_size",
        "streams",
    )

    def __init__(
        self,
        minimum_size: int,
        gzip_level: int,
        brotli_quality: int,
        use_brotli: bool,
        media_types: Callable[[str], bool],
        files: bool,
    ) -> None:
        self.files = files
        self.minimum_size = minimum_size
        self.gzip_level = gzip_level
        self.brotli_quality = brotli_quality
        self.media_types = media_types
        with_brotli = use_brotli and brotli is not None
        # Complete bodies: br first (smaller for the same CPU at these qualities).
        # Streams: gzip first, with a 4 KiB window: an encoder lives as long as its
        # stream, and br's hash tables cost ~0.5 MiB per stream against ~30 KiB.
        self.full = ("br", "gzip") if with_brotli else ("gzip",)
        self.streams = ("gzip", "br") if with_brotli else ("gzip",)

    def encoder(self, coding: str, *, small: bool) -> ContentEncoder:
        # ``small``: a long-lived stream of small writes (SSE), where memory per stream
        # counts more than the last percent of ratio; a file gets the full windows.
        if coding == "br":
            return BrotliEncoder(self.brotli_quality, window_bits=16 if small else 22)
        if small:
            return GzipEncoder(self.gzip_level, window_bits=12, mem_level=5)
        return GzipEncoder(self.gzip_level)

    def compress_whole(self, coding: str, body: bytes) -> bytes:
        if coding == "br":
            assert brotli is not None
            return brotli.compress(body, quality=self.brotli_quality)  # type: ignore[no-any-return]
        encoder = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)
        return encoder.compress(body) + encoder.flush()


def _known_size(response: Response) -> int | None:
    """The body's size when it is known before sending (None: a stream's)."""
    if isinstance(response, FileResponse):
        stat_result = response.stat_result
        return None if stat_result is None else stat_result.st_size
    return None if response.streaming else len(response.body)


def _on_head(settings: _Settings, accept: str | None, response: Response) -> None:
    status = response.status
    if status in (204, 205):
        return
    is_file = isinstance(response, FileResponse)
    if is_file and not settings.files:
        return
    headers = response.headers
    if status == 206 or "content-range" in headers or "content-encoding" in headers:
        return
    if "no-transform" in headers.get("cache-control", "").lower():
        return
    if isinstance(response, FileResponse):
        media = response.content_type  # a 304 sends none, and still varies
    else:
        media = headers.get("content-type")
    if media is None or not settings.media_types(media):
        return
    size = _known_size(response)
    if size is not None and status != 304 and size < settings.minimum_size:
        return
    add_vary(headers, "Accept-Encoding")
    if status == 304:
        return
    streamed = response.streaming and not is_file
    coding = choose_encoding(accept, settings.streams if streamed else settings.full)
    if coding is None:
        return
    if response.streaming:
        response.encoder = settings.encoder(coding, small=streamed)
    else:
        compressed = settings.compress_whole(coding, response.body)
        if len(compressed) >= len(response.body):
            return
        response.body = compressed
    headers.delete("content-length")
    headers.set("content-encoding", coding)
    _weaken_etag(response)


def compress(
    *,
    minimum_size: int = 500,
    gzip_level: int = 6,
    brotli_quality: int = 4,
    brotli: bool = True,
    media_types: Callable[[str], bool] = is_compressible,
    files: bool = True,
) -> Middleware:
    """Middleware: gzip (and br, with the ``brotli`` package) as ``Accept-Encoding`` asks.

    ``minimum_size`` (bytes, default 500 as Starlette's): smaller complete bodies are
    sent as they are (streams are always coded, their size is unknown). ``gzip_level``
    1-9 (default 6, zlib's); ``brotli_quality`` 0-11 (default 4: close to gzip's speed,
    smaller output; 11 is for build-time compression). ``brotli=False`` offers gzip
    only. ``media_types(content_type) -> bool`` decides what is worth compressing
    (default :func:`is_compressible`). ``files=False`` leaves ``FileResponse`` /
    ``StaticFiles`` bodies to ``os.sendfile`` (ship ``.br``/``.gz`` files with
    ``precompressed=True`` instead). Every SSE event and ``StreamingResponse`` chunk is
    flushed as it is written. See the module docstring for what is left alone.
    """
    if isinstance(minimum_size, bool) or minimum_size < 0:
        raise ValueError(f"minimum_size must be a non-negative int, not {minimum_size!r}")
    if not 1 <= gzip_level <= 9:
        raise ValueError(f"gzip_level must be 1 to 9, not {gzip_level!r}")
    if not 0 <= brotli_quality <= 11:
        raise ValueError(f"brotli_quality must be 0 to 11, not {brotli_quality!r}")
    settings = _Settings(minimum_size, gzip_level, brotli_quality, brotli, media_types, files)

    async def compression(event: H3Event, next: Next) -> Any:
        event.before_head(partial(_on_head, settings, event.headers.get("accept-encoding")))
        return await next()

    return compression
