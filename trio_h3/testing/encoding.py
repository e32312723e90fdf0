"""Request bodies as httpx encodes them: ``content=``, ``data=``, ``files=``, ``json=``. Pure.

Each encoder returns the headers the body implies and the body itself: ``bytes``, or an
async iterable of bytes for a streamed upload (sent chunked, chunk by chunk). The rules
are httpx's, so a test moves between httpx and the test client without surprises:

- ``data=`` (no files): ``application/x-www-form-urlencoded``, ``urlencode`` with
  ``doseq`` (spaces as ``+``), a list value repeats its key;
- ``files=``: ``multipart/form-data`` per RFC 7578, the ``data=`` fields first, then the
  files, in order; names and filenames quoted and escaped as the WHATWG HTML form
  encoding does (``"`` as ``%22``, a control character as ``%XX``) and, like httpx,
  ``\\`` doubled; non-ASCII names go as UTF-8;
- ``json=``: compact UTF-8 JSON (no NaN), ``application/json``;
- ``content=``: ``str`` as UTF-8, ``bytes`` as is, an iterable or async iterable of
  bytes as ``Transfer-Encoding: chunked``.

Booleans in form data and query parameters are ``true``/``false`` and ``None`` is the
empty string, as in httpx.
"""

from __future__ import annotations

import io
import json
import mimetypes
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from pathlib import PurePath
from typing import IO, Any, TypeAlias
from urllib.parse import urlencode

__all__: list[str] = []

#: A form or query value: ``str``, ``int``, ``float``, ``bool`` or ``None``.
Primitive: TypeAlias = str | int | float | bool | None
#: ``data=``: a mapping (a list or tuple value repeats its key) or a list of pairs; the
#: values are :data:`Primitive` (``Any`` here, so that a literal of mixed values checks).
DataArg: TypeAlias = Mapping[str, Any] | Iterable[tuple[str, Any]]
#: The content of one file: bytes, text (sent as UTF-8) or a binary file object.
FileContent: TypeAlias = bytes | str | IO[bytes]
#: One file: its content alone, or ``(filename, content[, content_type[, headers]])``.
FileValue: TypeAlias = (
    FileContent
    | tuple[str | None, FileContent]
    | tuple[str | None, FileContent, str | None]
    | tuple[str | None, FileContent, str | None, Mapping[str, str]]
)
#: ``files=``: a mapping of field name to file, or a list of pairs for repeated fields.
FilesArg: TypeAlias = Mapping[str, FileValue] | Iterable[tuple[str, FileValue]]
#: What goes on the wire after the head.
Body: TypeAlias = bytes | AsyncIterable[bytes]

# The WHATWG HTML "multipart/form-data encoding algorithm" escapes `"` and CR/LF in names
# and filenames as %22, %0D, %0A; httpx extends it to every C0 control except ESC and
# doubles backslashes. The same bytes as httpx keep a test portable between the two.
_FORM_ESCAPES = {'"': "%22", "\\": "\\\\"}
_FORM_ESCAPES.update({chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B})
_FORM_ESCAPE = re.compile("|".join(re.escape(c) for c in _FORM_ESCAPES))


def primitive_to_str(value: Primitive) -> str:
    """A form or query value as text: ``True`` is ``"true"``, ``None`` is ``""``."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def form_pairs(data: DataArg) -> list[tuple[str, str]]:
    """``data`` as ordered ``(name, value)`` text pairs; a list value repeats its name."""
    items: Iterable[tuple[str, Any]] = data.items() if isinstance(data, Mapping) else data
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        if isinstance(value, list | tuple):
            pairs.extend((name, primitive_to_str(item)) for item in value)
        else:
            pairs.append((name, primitive_to_str(value)))
    return pairs


def encode_urlencoded(data: DataArg) -> tuple[dict[str, str], bytes]:
    """``application/x-www-form-urlencoded``, repeated names kept in order."""
    body = urlencode(form_pairs(data)).encode("ascii")
    return {"content-type": "application/x-www-form-urlencoded"}, body


def _form_param(name: str, value: str) -> bytes:
    escaped = _FORM_ESCAPE.sub(lambda match: _FORM_ESCAPES[match.group(0)], value)
    return f'{name}="{escaped}"'.encode()


def _file_bytes(content: FileContent) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, io.TextIOBase):
        raise TypeError("files= needs binary content: open the file in 'rb' mode")
    if content.seekable():
        content.seek(0)
    data = content.read()
    if not isinstance(data, bytes):
        raise TypeError("files= needs binary content: open the file in 'rb' mode")
    return data


def _data_part(name: str, value: str) -> bytes:
    return (
        b"Content-Disposition: form-data; "
        + _form_param("name", name)
        + b"\r\n\r\n"
        + value.encode()
    )


def _file_part(name: str, value: FileValue) -> bytes:
    headers: dict[str, str] = {}
    content_type: str | None = None
    filename: str | None
    if isinstance(value, tuple):
        filename, content = value[0], value[1]
        if len(value) > 2:
            content_type = value[2]
        if len(value) > 3:
            headers = dict(value[3])
    else:
        filename = PurePath(str(getattr(value, "name", "upload"))).name
        content = value
    if content_type is None and filename:
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if content_type is not None and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = content_type
    disposition = b"Content-Disposition: form-data; " + _form_param("name", name)
    if filename:
        disposition += b"; " + _form_param("filename", filename)
    lines = [disposition] + [f"{key}: {val}".encode() for key, val in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + _file_bytes(content)


def multipart_boundary(content_type: str | None) -> str | None:
    """The ``boundary`` parameter of a ``multipart/form-data`` Content-Type, if any."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        return None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"')
    return None


def encode_multipart(
    data: DataArg | None, files: FilesArg, boundary: str | None = None
) -> tuple[dict[str, str], bytes]:
    """``multipart/form-data`` (RFC 7578): the ``data`` fields, then the ``files``.

    ``boundary`` defaults to 32 random hex digits (as httpx), never found in the parts
    by chance.
    """
    if boundary is None:
        boundary = os.urandom(16).hex()
    parts = [
        b"Content-Disposition: form-data; "
        + _form_param("name", name)
        + b"\r\n\r\n"
        + value.encode()
        for name, value in form_pairs(data or {})
    ]
    items: Iterable[tuple[str, FileValue]] = files.items() if isinstance(files, Mapping) else files
    parts.extend(_file_part(name, value) for name, value in items)
    delimiter = f"--{boundary}".encode("ascii")
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts) + delimiter + b"--\r\n"
    return {"content-type": f"multipart/form-data; boundary={boundary}"}, body


async def _chunks_of(content: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(content, AsyncIterable):
        async for chunk in content:
            yield bytes(chunk)
    else:
        for chunk in content:
            yield bytes(chunk)


def encode_body(
    *,
    content: bytes | str | Iterable[bytes] | AsyncIterable[bytes] | None = None,
    data: DataArg | None = None,
    files: FilesArg | None = None,
    json_value: Any = None,
    content_type: str | None = None,
) -> tuple[dict[str, str], Body | None]:
    """The headers and body for one request; ``(empty, None)`` when it has no body.

    At most one of ``content``, ``json_value`` and ``data``/``files`` (which combine into
    one multipart body); ``content_type`` is the caller's own Content-Type, whose
    multipart boundary is kept. The headers are defaults: the caller's own win.
    """
    given = [content is not None, json_value is not None, data is not None or files is not None]
    if sum(given) > 1:
        raise TypeError("pass one of content=, json= and data=/files=, not several")
    if isinstance(content, str):
        content = content.encode("utf-8")
    if isinstance(content, bytes | bytearray | memoryview):
        body = bytes(content)
        # As httpx: an empty body states no length (POST, PUT and PATCH get a
        # ``Content-Length: 0`` where the request is built).
        return ({"content-length": str(len(body))} if body else {}), body
    if content is not None:
        if isinstance(content, Mapping):
            raise TypeError(
                "content= takes bytes, str or an iterable of bytes; for a form use data="
            )
        return {"transfer-encoding": "chunked"}, _chunks_of(content)
    if json_value is not None:
        text = json.dumps(json_value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        body = text.encode("utf-8")
        return {"content-type": "application/json", "content-length": str(len(body))}, body
    if files:
        headers, body = encode_multipart(data, files, multipart_boundary(content_type))
    elif data:
        headers, body = encode_urlencoded(data)
    else:
        return {}, None
    headers["content-length"] = str(len(body))
    return headers, body
