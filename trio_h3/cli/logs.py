"""Logging for ``trio-h3 run``: a default that looks like it belongs, or the user's own.

By default one handler on the root logger, to stderr: ``TIME LEVEL: message``, the level
coloured on a terminal only (``--use-colors`` / ``--no-use-colors`` decide instead;
``NO_COLOR`` turns colour off). Access lines (logger ``trio_h3.access``) read as
uvicorn's, with the bytes and the duration after the status::

    2025-01-31 12:00:00.123 INFO:    127.0.0.1:51234 - "GET / HTTP/1.1" 200 5 0.3ms

and carry uvicorn's record attributes (``client_addr``, ``request_line``,
``status_code``), so a uvicorn log format works unchanged with ``--log-config``.

``--log-config FILE`` replaces all of it: dictConfig from JSON (``.json``) or YAML
(``.yaml``/``.yml``, when PyYAML is installed), else fileConfig (INI). ``--log-level``
given with it still sets the level of the ``trio_h3`` loggers.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
import time
from typing import Any, TextIO

__all__: list[str] = []

LEVELS = ("critical", "error", "warning", "info", "debug")

_LEVEL_COLOURS = {
    logging.DEBUG: "36",  # cyan
    logging.INFO: "32",  # green
    logging.WARNING: "33",  # yellow
    logging.ERROR: "31",  # red
    logging.CRITICAL: "91",  # bright red
}


def _status_colour(status: int) -> str:
    # uvicorn's: 1xx bright white, 2xx green, 3xx yellow, 4xx red, 5xx bright red.
    return {1: "97", 2: "32", 3: "33", 4: "31"}.get(status // 100, "91")


def _paint(text: str, code: str) -> str:
    return f"\x1b[{code}m{text}\x1b[0m"


def colour_wanted(stream: TextIO, use_colors: bool | None) -> bool:
    """``use_colors`` if given, else: is ``stream`` a terminal (and ``NO_COLOR`` unset)?"""
    if use_colors is not None:
        return use_colors
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Formatter(logging.Formatter):
    """``TIME LEVEL: message``; colours the level, and an access line's status."""

    def __init__(self, colours: bool) -> None:
        super().__init__()
        self.colours = colours

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Local time to the millisecond."""
        seconds = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        """One line (and the traceback, if any, below it)."""
        message = record.getMessage()
        status = getattr(record, "status_code", None)
        if self.colours and isinstance(status, int) and record.name == "trio_h3.access":
            message = message.replace(
                f'" {status} ', f'" {_paint(str(status), _status_colour(status))} ', 1
            )
        prefix = f"{record.levelname}:".ljust(9)
        if self.colours:
            prefix = prefix.replace(
                record.levelname, _paint(record.levelname, _LEVEL_COLOURS.get(record.levelno, "0"))
            )
        line = f"{self.formatTime(record)} {prefix}{message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


class _DefaultHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure`` installs (told apart so it is installed once)."""


def configure(*, log_config: str | None, log_level: str | None, use_colors: bool | None) -> None:
    """Set up logging for the command (see the module docstring).

    Raises ValueError naming the file when ``log_config`` cannot be used.
    """
    if log_config is not None:
        load_config(log_config)
        if log_level is not None:
            for name in ("trio_h3", "trio_h3.access"):
                logging.getLogger(name).setLevel(log_level.upper())
        return
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _DefaultHandler)]:
        root.removeHandler(old)  # main() may run more than once: today's stderr, once
    handler = _DefaultHandler(sys.stderr)
    root.addHandler(handler)
    handler.setFormatter(Formatter(colour_wanted(sys.stderr, use_colors)))
    root.setLevel((log_level or "info").upper())


def load_config(path: str) -> None:
    """Apply a logging config file: JSON or YAML (dictConfig), else INI (fileConfig)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ValueError(f"cannot read --log-config {path!r}: {exc.strerror}") from exc
    yaml = _yaml(path) if path.endswith((".yaml", ".yml")) else None
    try:
        if path.endswith(".json"):
            logging.config.dictConfig(json.loads(text))
        elif yaml is not None:
            logging.config.dictConfig(yaml.safe_load(text))
        else:
            # Loggers that exist already (trio_h3's own) stay enabled, as uvicorn does.
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except Exception as exc:
        raise ValueError(f"cannot use --log-config {path!r}: {type(exc).__name__}: {exc}") from exc


def _yaml(path: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise ValueError(
            f"--log-config {path!r} is YAML, which needs PyYAML (pip install pyyaml); "
            "or give the same config as JSON"
        ) from None
    return yaml
