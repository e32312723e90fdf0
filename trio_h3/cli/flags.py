"""The flags of ``trio-h3 run`` that set ServeOptions, made from the dataclass's fields.

One flag per field, so a field added to :class:`~trio_h3.ServeOptions` is reachable
from the command line (and listed in ``--help`` and docs/cli.md) without a change here.
The field's metadata (:func:`trio_h3.server.options.option`) names the flag, its help
and its precedent; a field without it gets ``--field-name`` and, as help, the ``#:``
comment above it. The flag's kind follows the field's type:

- ``bool``: ``--name`` / ``--no-name``;
- ``int``, ``float``, ``str``, a ``Literal`` (its values are the choices);
- ``X | None`` with a default that is not None: also ``--no-name`` (None: off);
- ``tuple[tuple[str, str], ...]``: ``--name NAME:VALUE``, repeatable;
- ``tuple[str, ...]``: repeatable, each value may be a comma-separated list.

Every flag's default is "not given": only the flags on the command line override the
app's own ``serve_options`` (then ServeOptions' defaults).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..server.options import ServeOptions

__all__: list[str] = []


@dataclass(frozen=True)
class Flag:
    """One ServeOptions field's command-line face."""

    field: str
    #: The flag and its aliases (``--max-header-size``, ``--h11-max-...``).
    names: tuple[str, ...]
    help: str
    precedent: str
    default: Any
    #: ``"bool"``, ``"value"``, ``"pairs"`` (NAME:VALUE, repeatable), ``"list"``.
    kind: str
    convert: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    #: The flag that sets the field to None (an optional field that is on by default).
    off: str | None = None

    @property
    def flag(self) -> str:
        """The flag's main spelling."""
        return self.names[0]


def _comment_help(cls: type) -> dict[str, str]:
    """The ``#:`` comment above each field of ``cls`` (for fields without metadata)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    comment: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            comment.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+)\s*:", stripped)
        if match and comment:
            found[match.group(1)] = " ".join(comment)
        if stripped:
            comment = []
    return found


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


def _words(text: str) -> list[str]:
    return [word.strip() for word in text.split(",") if word.strip()]


def _literal(values: tuple[Any, ...]) -> Callable[[str], Any]:
    by_text = {str(value): value for value in values}

    def convert(text: str) -> Any:
        if text not in by_text:
            raise argparse.ArgumentTypeError(
                f"invalid choice {text!r} (choose from {', '.join(map(repr, by_text))})"
            )
        return by_text[text]

    return convert


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        return (args[0] if len(args) == 1 else str), optional
    return hint, False


def _make_flag(field: dataclasses.Field[Any], hint: Any, comments: Mapping[str, str]) -> Flag:
    meta = field.metadata
    name = field.name
    flag = meta.get("flag", "--" + name.replace("_", "-"))
    names = (flag, *meta.get("aliases", ()))
    help_text = meta.get("help") or comments.get(name) or f"ServeOptions.{name}."
    base, optional = _unwrap_optional(hint)
    default = field.default
    common: dict[str, Any] = {
        "field": name,
        "names": names,
        "help": help_text,
        "precedent": meta.get("precedent", ""),
        "default": default,
        "metavar": meta.get("metavar"),
    }
    if base is bool:
        return Flag(kind="bool", **common)
    off = "--no-" + flag[2:] if optional and default is not None else None
    if meta.get("kind") == "list" or typing.get_origin(base) is tuple:
        args = typing.get_args(base) if typing.get_origin(base) is tuple else ()
        element = args[0] if args else str
        if element == tuple[str, str]:
            common["metavar"] = common["metavar"] or "NAME:VALUE"
            return Flag(kind="pairs", convert=_pair, off=off, **common)
        common["metavar"] = common["metavar"] or "A,B,..."
        return Flag(kind="list", convert=_words, off=off, **common)
    if typing.get_origin(base) is Literal:
        values = typing.get_args(base)
        return Flag(kind="value", convert=_literal(values), choices=values, off=off, **common)
    convert: Callable[[str], Any] = base if base in (int, float) else str
    if common["metavar"] is None:
        # ServeOptions' rule: times are seconds, sizes bytes.
        if convert is float:
            common["metavar"] = "SECONDS"
        elif convert is int:
            common["metavar"] = "BYTES" if name.endswith("_size") else "N"
        else:
            common["metavar"] = "TEXT"
    return Flag(kind="value", convert=convert, off=off, **common)


def serve_flags() -> list[Flag]:
    """A :class:`Flag` for every ServeOptions field, in the dataclass's order."""
    hints = typing.get_type_hints(ServeOptions)
    comments = _comment_help(ServeOptions)
    return [_make_flag(f, hints[f.name], comments) for f in dataclasses.fields(ServeOptions)]


def shown_default(flag: Flag) -> str:
    """The default as a user would type it (``none`` for None, ``on``/``off`` for bools)."""
    value = flag.default
    if flag.kind == "bool":
        return "on" if value else "off"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ", ".join(":".join(v) if isinstance(v, tuple) else str(v) for v in value) or "none"
    if value == "":
        return '""'
    return str(value)


def add_flag(group: argparse._ActionsContainer, flag: Flag) -> None:
    """Register ``flag`` (and its ``--no-...``) on ``group``; its default: not given."""
    suffix = f" [{flag.field}; default {shown_default(flag)}]"
    common: dict[str, Any] = {"dest": flag.field, "default": argparse.SUPPRESS}
    if flag.kind == "bool":
        group.add_argument(
            *flag.names, action=argparse.BooleanOptionalAction, help=flag.help + suffix, **common
        )
        return
    if flag.kind in ("pairs", "list"):
        common.update(action="append", metavar=flag.metavar, help=flag.help + " Repeatable.")
    else:
        common.update(choices=flag.choices, help=flag.help)
        if flag.choices is None:
            common["metavar"] = flag.metavar
    common["help"] += suffix
    group.add_argument(*flag.names, type=flag.convert or str, **common)
    if flag.off is not None:
        group.add_argument(
            flag.off,
            action="store_const",
            const=None,
            dest=flag.field,
            default=argparse.SUPPRESS,
            help=f"Turn it off ({flag.field} = None).",
        )


def add_serve_flags(parser: argparse.ArgumentParser) -> list[Flag]:
    """Add one flag per ServeOptions field to ``parser`` (see the module docstring)."""
    group = parser.add_argument_group(
        "server options",
        "Each sets a ServeOptions field, on top of the app's own serve_options (see docs/cli.md).",
    )
    flags = serve_flags()
    for flag in flags:
        add_flag(group, flag)
    return flags


def given_options(args: argparse.Namespace, flags: list[Flag]) -> dict[str, Any]:
    """The ServeOptions fields the command line set (and only those)."""
    given: dict[str, Any] = {}
    for flag in flags:
        if not hasattr(args, flag.field):
            continue
        value = getattr(args, flag.field)
        if flag.kind == "pairs" and value is not None:
            value = tuple(value)
        elif flag.kind == "list" and value is not None:
            value = tuple(word for words in value for word in words)
        given[flag.field] = value
    return given


def options_for(app_options: ServeOptions | None, given: Mapping[str, Any]) -> ServeOptions:
    """The app's own options (or the defaults) with the flags given on top."""
    return ServeOptions.build(app_options, **given)
