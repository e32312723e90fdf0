"""``StaticFiles``: a folder served over HTTP, with no way out of it.

``app.mount("/assets", StaticFiles("public"))``. The path it gets is the app's canonical
one (:mod:`trio_h3.paths`: decoded once, dot segments resolved or refused before any
routing), and each segment is checked again here: no segment holding a ``/`` (an encoded
``%2F``), a backslash, a NUL, a drive letter or a dot segment; no hidden name (a segment
starting with ``.``) unless ``hidden=True``, ``.well-known`` (RFC 8615) excepted; and
the file found must resolve, symlinks followed, inside the folder unless
``follow_symlinks=True``. Anything else is a 404, never a file outside.

Everything that touches the disk (stat, realpath, the ``.br``/``.gz`` siblings) runs in
one worker thread call per request; the body goes out as :class:`~trio_h3.FileResponse`
sends it.
"""

from __future__ import annotations

import dataclasses
import os
import stat as stat_module
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from ..errors import HTTPError
from ..event import H3Event
from ..response import RedirectResponse, Response
from .files import FileResponse, guess_media_type
from .negotiation import choose_encoding

__all__ = ["StaticFiles"]

#: Precompressed siblings, in the order of preference: (Content-Encoding, suffix).
_PRECOMPRESSED = (("br", ".br"), ("gzip", ".gz"))


@dataclass(frozen=True, slots=True)
class _Found:
    path: str
    stat: os.stat_result
    #: The file asked for (its name gives the Content-Type of a precompressed sibling).
    original: str
    encoding: str | None = None
    #: Whether any precompressed sibling exists (the answer then varies on Accept-Encoding).
    varies: bool = False
    #: A folder asked for without its trailing slash.
    redirect: bool = False
    #: The file, opened where it was found (-1 for a redirect).
    fd: int = -1


class StaticFiles:
    """Serve the files under ``directory``: ``app.mount("/assets", StaticFiles("public"))``.

    ``index`` is the file sent for a folder (None: folders are 404); a folder asked
    without its trailing ``/`` is redirected (307) to it, so relative links in its index
    resolve. ``max_age`` / ``immutable`` set ``Cache-Control`` (default ``no-cache``:
    revalidate every time, a 304 when unchanged). ``precompressed=True`` sends
    ``name.br`` / ``name.gz`` beside ``name`` to a client that accepts them, with
    ``Vary: Accept-Encoding`` (a Range request always gets the file itself).
    ``follow_symlinks=True`` allows symlinks that leave the folder; ``hidden=True``
    serves names starting with ``.``. Only GET and HEAD: anything else is a 405.

    Every answer is a :class:`~trio_h3.FileResponse`: ETag, Last-Modified, 304, Range,
    If-Range, HEAD.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        index: str | None = "index.html",
        max_age: int | None = None,
        immutable: bool = False,
        precompressed: bool = False,
        follow_symlinks: bool = False,
        hidden: bool = False,
    ) -> None:
        root = os.path.realpath(os.fspath(directory))
        if not os.path.isdir(root):
            raise ValueError(f"StaticFiles: {os.fspath(directory)!r} is not a directory")
        if max_age is not None and (isinstance(max_age, bool) or max_age < 0):
            raise ValueError(f"max_age must be a non-negative int (seconds), not {max_age!r}")
        self.directory = root
        self.index = index
        self.max_age = max_age
        self.immutable = immutable
        self.precompressed = precompressed
        self.follow_symlinks = follow_symlinks
        self.hidden = hidden

    def __repr__(self) -> str:
        return f"StaticFiles({self.directory!r})"

    # -- the path ----------------------------------------------------------------------

    def _allowed_segments(self, segments: Sequence[str]) -> bool:
        for segment in segments:
            if (
                segment in ("", ".", "..")
                or "/" in segment
                or "\\" in segment
                or "\x00" in segment
                or (len(segment) >= 2 and segment[1] == ":")  # a drive letter (C:)
                or os.path.isabs(segment)
            ):
                return False
            if segment.startswith(".") and not self.hidden and segment != ".well-known":
                return False
        return True

    def _inside(self, path: str) -> bool:
        if self.follow_symlinks:
            return True
        real = os.path.realpath(path)
        return real == self.directory or real.startswith(self.directory + os.sep)

    def _file(self, path: str) -> os.stat_result | None:
        try:
            found = os.stat(path)
        except (OSError, ValueError):
            return None
        if not self._inside(path):
            return None
        return found

    def _lookup(
        self, segments: Sequence[str], slash: bool, accept_encoding: str | None
    ) -> _Found | None:
        # In a worker thread: every stat and realpath of the request in one go.
        path = os.path.join(self.directory, *segments)
        found = self._file(path)
        if found is None:
            return None
        if stat_module.S_ISDIR(found.st_mode):
            if self.index is None:
                return None
            if not slash:
                return _Found(path, found, path, redirect=True)
            path = os.path.join(path, self.index)
            found = self._file(path)
            if found is None:
                return None
        if not stat_module.S_ISREG(found.st_mode):
            return None
        chosen = _Found(path, found, path)
        if self.precompressed:
            chosen = self._sibling(path, found, accept_encoding)
        # Opened here, in the same thread call: the response owns the descriptor, and
        # its fstat is the stat the head is decided from (what is sent is what was seen).
        try:
            fd = os.open(chosen.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            opened = os.fstat(fd)
        except OSError:
            os.close(fd)
            return None
        if not stat_module.S_ISREG(opened.st_mode):
            os.close(fd)
            return None
        return dataclasses.replace(chosen, stat=opened, fd=fd)

    def _sibling(self, path: str, found: os.stat_result, accept_encoding: str | None) -> _Found:
        siblings: dict[str, tuple[str, os.stat_result]] = {}
        for encoding, suffix in _PRECOMPRESSED:
            sibling = self._file(path + suffix)
            if sibling is not None and stat_module.S_ISREG(sibling.st_mode):
                siblings[encoding] = (path + suffix, sibling)
        if not siblings:
            return _Found(path, found, path)
        chosen = choose_encoding(accept_encoding, list(siblings))
        if chosen is None:
            return _Found(path, found, path, varies=True)
        sibling_path, sibling_stat = siblings[chosen]
        return _Found(sibling_path, sibling_stat, path, chosen, varies=True)

    # -- Mountable -----------------------------------------------------------------------

    async def handle_segments(
        self, event: H3Event, segments: Sequence[str], path: str | None = None
    ) -> Response:
        """Answer ``event`` with the file at ``segments`` under the folder, or a 404."""
        if event.method not in ("GET", "HEAD"):
            raise HTTPError(
                405,
                f"Method {event.method} is not allowed for {event.path}",
                headers=[("allow", "GET, HEAD")],
            )
        if not self._allowed_segments(segments):
            raise HTTPError(404, "Not Found")
        # A Range asks for bytes of the file itself, never of a compressed sibling (the
        # offsets and If-Range validators must mean one thing).
        accept = None if "range" in event.headers else event.headers.get("accept-encoding")
        slash = event.raw_path.endswith("/")
        found = await event.run_sync(self._lookup, segments, slash, accept)
        if found is None:
            raise HTTPError(404, "Not Found")
        if found.redirect:
            # The canonical path, not the raw one: "//evil.example/x" must not become a
            # protocol-relative Location.
            location = quote(event.path, safe="/%") + "/"
            if event.query_string:
                location += "?" + event.query_string
            return RedirectResponse(location, status=307)
        response = FileResponse.opened(
            found.path,
            found.fd,
            found.stat,
            media_type=guess_media_type(found.original),
            max_age=self.max_age,
            immutable=self.immutable,
        )
        if found.encoding is not None:
            response.headers.set("content-encoding", found.encoding)
        if found.varies:
            response.headers.add("vary", "Accept-Encoding")
        await response.prepare(event)
        return response
