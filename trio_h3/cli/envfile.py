"""``--env-file``: environment variables from a dotenv file, before the app is imported.

The common subset of the format python-dotenv reads (what uvicorn's ``--env-file`` uses):
``KEY=VALUE`` lines, ``export KEY=VALUE``, ``#`` comments (a whole line, or after an
unquoted value), values in single quotes (literal) or double quotes (``\\n``, ``\\t``,
``\\"`` and ``\\\\`` escapes, may span lines). As python-dotenv's default, a variable
already in the environment wins over the file.
"""

from __future__ import annotations

import os
import re

__all__: list[str] = []

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse(text: str, source: str = "env file") -> dict[str, str]:
    """The variables ``text`` sets, in order; ValueError names the line of a bad one."""
    found: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise ValueError(f"{source}, line {number}: expected KEY=VALUE, got {line!r}")
        rest = rest.strip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            # A double-quoted value may continue on the next lines.
            while _closing(body, quote) < 0 and quote == '"' and index < len(lines):
                body += "\n" + lines[index]
                index += 1
            end = _closing(body, quote)
            if end < 0:
                raise ValueError(f"{source}, line {number}: {key}'s value has no closing {quote}")
            value = body[:end]
            found[key] = _unescape(value) if quote == '"' else value
        else:
            found[key] = rest.split(" #", 1)[0].strip()
    return found


def _closing(body: str, quote: str) -> int:
    escaped = False
    for position, char in enumerate(body):
        if quote == '"' and char == "\\" and not escaped:
            escaped = True
            continue
        if char == quote and not escaped:
            return position
        escaped = False
    return -1


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), value)


def load(path: str) -> dict[str, str]:
    """Set the file's variables that the environment does not already have.

    Returns what the file holds; OSError / ValueError name the file.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise OSError(exc.errno, f"cannot read --env-file {path!r}: {exc.strerror}") from exc
    found = parse(text, f"--env-file {path!r}")
    for key, value in found.items():
        os.environ.setdefault(key, value)
    return found
