"""Turning ``MODULE:ATTR`` into the app, and telling why when it cannot be done.

Two kinds of failure, told apart as uvicorn users expect:

- the spec is wrong (no such module, no such attribute, not an app):
  :class:`AppImportError`, one line;
- the app's own code failed (its module raised while importing, the ``--factory``
  raised): :class:`AppLoadError`, a line saying which, then the real traceback
  (:func:`format_cause`, without the importer's and the CLI's own frames).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from typing import Any

from ..app import H3

__all__: list[str] = []

# The frames a startup error's traceback leaves out: the importer's, contextlib's and
# trio-h3's own (what failed is the app's code, so its frames are the story).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONTEXTLIB = os.path.abspath(contextlib.__file__)
_IMPORTLIB_DIR = os.path.dirname(os.path.abspath(importlib.__file__))


class AppImportError(Exception):
    """``MODULE:ATTR`` could not be turned into an app; the message says why, in one line."""


class AppLoadError(Exception):
    """The app's own code raised while it was imported or built; ``__cause__`` is what."""


def import_app(spec: str, *, app_dir: str | None = None, factory: bool = False) -> H3:
    """Import ``module.path:attribute`` (``--factory``: call it to get the app).

    Raises :class:`AppImportError` for a wrong spec; what the app's module or factory
    raises propagates as itself (:func:`load_app` wraps it for the CLI).
    """
    return _check(_call(_resolve(spec, app_dir), spec, factory), spec, factory)


def load_app(spec: str, *, app_dir: str | None = None, factory: bool = False) -> H3:
    """:func:`import_app`, with what the app's own code raised as an :class:`AppLoadError`."""
    try:
        target = _resolve(spec, app_dir)
    except AppImportError:
        raise
    except Exception as exc:
        module_name = spec.partition(":")[0]
        raise AppLoadError(f"importing {module_name!r} raised {_name(exc)}") from exc
    try:
        built = _call(target, spec, factory)
    except AppImportError:
        raise
    except Exception as exc:
        raise AppLoadError(f"the factory {spec!r} raised {_name(exc)}") from exc
    return _check(built, spec, factory)


def _resolve(spec: str, app_dir: str | None) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppImportError(f"expected MODULE:ATTR (like 'examples.hello:app'), got {spec!r}")
    path = os.path.abspath(app_dir or ".")
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the module named in the spec (or a package on its path) is the spec's
        # fault; a missing dependency *inside* the app is the app's.
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppImportError(f"could not import module {module_name!r}: {exc}") from exc
        raise
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppImportError(f"module {module_name!r} has no attribute {attr!r}") from None
    return target


def _call(target: Any, spec: str, factory: bool) -> Any:
    if not factory:
        return target
    if not callable(target):
        raise AppImportError(f"{spec!r} is not callable, so it cannot be a --factory")
    return target()


def _check(target: Any, spec: str, factory: bool) -> H3:
    if not isinstance(target, H3):
        hint = " (use --factory if it builds the app)" if callable(target) and not factory else ""
        raise AppImportError(f"{spec!r} is a {type(target).__name__}, not an H3 app{hint}")
    return target


def _name(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ours(frame: traceback.FrameSummary) -> bool:
    filename = frame.filename
    return (
        filename.startswith("<frozen importlib")
        or filename == _CONTEXTLIB
        or filename.startswith(_IMPORTLIB_DIR + os.sep)
        or filename.startswith(_PACKAGE_DIR + os.sep)
    )


def format_cause(exc: BaseException) -> str:
    """The traceback of ``exc`` without the importer's, contextlib's and trio-h3's frames
    (all of them are kept when nothing else is left)."""
    report = traceback.TracebackException.from_exception(exc)
    for part in _chain(report):
        frames = [frame for frame in part.stack if not _ours(frame)]
        if frames:
            part.stack = traceback.StackSummary.from_list(frames)
    return "".join(report.format())


def _chain(report: traceback.TracebackException) -> list[traceback.TracebackException]:
    seen: list[traceback.TracebackException] = []
    todo = [report]
    while todo:
        part = todo.pop()
        if any(part is s for s in seen):
            continue
        seen.append(part)
        todo += [p for p in (part.__cause__, part.__context__) if p is not None]
        todo += list(part.exceptions or [])
    return seen
