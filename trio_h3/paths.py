"""The canonical request path, and joining a client-supplied path under a folder. Pure.

One canonical path serves the router, path-scoped middleware and ``mount`` alike, so a
rule that guards ``/admin/**`` sees exactly the segments the route will see. It is made
once per request, from the request target as received (``event.raw_path``):

1. split on ``/``; empty segments are dropped (``//a///b/`` is ``/a/b``);
2. each segment is percent-decoded once, as UTF-8 (invalid UTF-8 is a 400); an encoded
   ``%2F`` therefore stays *inside* its segment and never separates two;
3. dot segments are resolved as RFC 3986 §5.2.4 describes, whether written ``.``/``..``
   or encoded (``%2e``, ``%2E%2e``...: RFC 3986 §6.2.2.2 makes them the same); a ``..``
   that would climb above the root is a 400, and so is a segment that hides a dot
   segment behind an encoded slash (``..%2F..``);
4. a NUL (``%00``) anywhere is a 400.

``event.path`` is the result written back as a string: the decoded segments joined by
``/``, where a ``/`` or ``%`` that was *inside* a segment is written ``%2F`` / ``%25``,
so the string splits back into exactly the same segments. No route, middleware or
param ever sees a dot segment.
"""

from __future__ import annotations

import os
from urllib.parse import unquote_to_bytes

from .errors import HTTPError

__all__ = ["safe_join"]

_DOTS = frozenset({".", ".."})


def encode_segment(segment: str) -> str:
    """A decoded segment as it appears in ``event.path`` (``/`` and ``%`` kept encoded)."""
    if "%" in segment or "/" in segment:
        return segment.replace("%", "%25").replace("/", "%2F")
    return segment


def canonical_path(raw_path: str) -> tuple[str, tuple[str, ...]]:
    """``(path, segments)`` for a request target's path (still percent-encoded).

    Raises :class:`~trio_h3.errors.HTTPError` 400 for a path that cannot be made
    canonical (see the module docstring).

    >>> canonical_path("/users//42/")
    ('/users/42', ('users', '42'))
    >>> canonical_path("/a/b/../c%2Fd")
    ('/a/c%2Fd', ('a', 'c/d'))
    """
    if "%" not in raw_path and "//" not in raw_path and "/." not in raw_path:
        # The common case: nothing to decode, fold or resolve.
        if raw_path == "/":
            return "/", ()
        path = raw_path.rstrip("/") if raw_path.endswith("/") else raw_path
        if "\x00" in path:
            raise HTTPError(400, "The request path contains a NUL character")
        return path, tuple(path[1:].split("/"))
    segments: list[str] = []
    for part in raw_path.split("/"):
        if not part:
            continue
        if "%" in part or not part.isascii():
            try:
                segment = unquote_to_bytes(part.encode("latin-1")).decode("utf-8")
            except UnicodeDecodeError:
                raise HTTPError(400, "The request path is not valid UTF-8") from None
        else:
            segment = part
        if "\x00" in segment:
            raise HTTPError(400, "The request path contains a NUL character")
        if segment == ".":
            continue
        if segment == "..":
            if not segments:
                raise HTTPError(400, "The request path climbs above the root ('..')")
            segments.pop()
            continue
        if "/" in segment and not _DOTS.isdisjoint(segment.split("/")):
            raise HTTPError(400, "The request path hides a dot segment behind an encoded '/'")
        segments.append(segment)
    path = "/" + "/".join(encode_segment(s) for s in segments)
    return path, tuple(segments)


def safe_join(root: str | os.PathLike[str], *parts: str) -> str | None:
    """``root`` joined with ``parts`` if the result stays inside ``root``, else None.

    For turning a route param into a file path::

        @app.get("/files/**:name")
        async def download(event: H3Event) -> Response:
            path = safe_join("public", event.params["name"])
            if path is None:
                raise HTTPError(404)
            ...

    Each part is split on ``/`` (and ``\\``); empty and ``.`` pieces are skipped; a
    ``..`` piece, an absolute piece, a drive letter or a NUL gives None. Symlinks are
    not resolved here (``StaticFiles`` checks them); the result is an absolute path.
    """
    base = os.path.abspath(root)
    pieces: list[str] = []
    for part in parts:
        if "\x00" in part:
            return None
        for piece in part.replace("\\", "/").split("/"):
            if piece in ("", "."):
                continue
            if piece == ".." or (":" in piece and len(piece) >= 2 and piece[1] == ":"):
                return None
            pieces.append(piece)
    joined = os.path.join(base, *pieces)
    if joined != base and not joined.startswith(base.rstrip(os.sep) + os.sep):
        return None
    return joined
