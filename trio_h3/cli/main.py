"""``trio-h3 run MODULE:ATTR [options]``: the parser, and the run from flags to exit status.

Order of a run: ``--env-file`` -> logging -> (``--reload``: the supervisor, which never
imports the app) -> import the app -> its ``serve_options`` with the flags given on top
-> ``serve``. Exit statuses: 0 after a clean graceful shutdown; 1 for a bad app spec,
an app that fails to import or build, bad options, or an address, certificate or key
that cannot be used; 2 for a usage error; 3 when the lifespan fails (uvicorn's); 130 /
143 after a forced shutdown (a second signal) and 128 + the signal when the shutdown's
hard deadline fires (:mod:`trio_h3.server.serve`).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import __version__
from . import envfile, logs, reload
from .flags import Flag, add_serve_flags, given_options, options_for
from .loader import AppImportError, AppLoadError, format_cause, load_app

if TYPE_CHECKING:
    from ..app import H3
    from ..server.options import ServeOptions

__all__ = ["main"]

logger = logging.getLogger("trio_h3")

#: Exit statuses (see the module docstring).
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_LIFESPAN = 3
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class CommandFlag:
    """A flag of ``trio-h3 run`` that is not a ServeOptions field."""

    names: tuple[str, ...]
    help: str
    #: As docs/cli.md shows it (markdown).
    default: str
    precedent: str
    group: str
    options: dict[str, Any] = field(default_factory=dict)


COMMAND_FLAGS = (
    CommandFlag(
        ("--factory",),
        "MODULE:ATTR is a function returning the app; it is called once.",
        "`off`",
        "uvicorn's --factory",
        "app",
        {"action": "store_true"},
    ),
    CommandFlag(
        ("--app-dir",),
        "Import the app from this directory (put first on sys.path).",
        "the current directory",
        "uvicorn's --app-dir",
        "app",
        {"metavar": "DIR"},
    ),
    CommandFlag(
        ("--env-file",),
        "Set environment variables from this dotenv file before the app is imported "
        "(variables already set win).",
        "`none`",
        "uvicorn's --env-file (python-dotenv's format and precedence)",
        "app",
        {"metavar": "PATH"},
    ),
    CommandFlag(
        ("--log-config",),
        "Logging configuration replacing the default: dictConfig JSON (.json) or YAML "
        "(.yaml/.yml, needs PyYAML), else fileConfig INI.",
        "`none`",
        "uvicorn's --log-config",
        "logging",
        {"metavar": "PATH"},
    ),
    CommandFlag(
        ("--log-level",),
        "Logging level: critical, error, warning, info or debug (with --log-config: "
        "of the trio_h3 loggers only).",
        "`info`",
        "uvicorn's --log-level",
        "logging",
        {"choices": logs.LEVELS, "metavar": "LEVEL"},
    ),
    CommandFlag(
        ("--use-colors",),
        "Colour the log (default: only on a terminal, and not with NO_COLOR).",
        "`auto`",
        "uvicorn's --use-colors/--no-use-colors",
        "logging",
        {"action": argparse.BooleanOptionalAction},
    ),
    CommandFlag(
        ("--workers",),
        "Worker processes, each serving the app with its own event loop, behind one "
        "socket (or one SO_REUSEPORT socket each with --reuse-port); a worker that dies "
        "is replaced. Not with --reload.",
        "`1` (this process)",
        "uvicorn's and gunicorn's --workers",
        "workers",
        {"type": int, "default": 1, "metavar": "N"},
    ),
    CommandFlag(
        ("--reload",),
        "Restart when a watched file changes (the app is imported by the child only).",
        "`off`",
        "uvicorn's --reload",
        "reload",
        {"action": "store_true"},
    ),
    CommandFlag(
        ("--reload-dir",),
        "A directory to watch, repeatable.",
        "the current directory (and --app-dir)",
        "uvicorn's --reload-dir",
        "reload",
        {"action": "append", "metavar": "DIR", "default": []},
    ),
    CommandFlag(
        ("--reload-include",),
        "A glob of files to watch, repeatable (added to *.py).",
        "`*.py`",
        "uvicorn's --reload-include",
        "reload",
        {"action": "append", "metavar": "GLOB", "default": []},
    ),
    CommandFlag(
        ("--reload-exclude",),
        "A glob or directory to ignore, repeatable (added to .*, .py[cod], .sw.*, ~*).",
        "`.*` `.py[cod]` `.sw.*` `~*`",
        "uvicorn's --reload-exclude",
        "reload",
        {"action": "append", "metavar": "GLOB", "default": []},
    ),
    CommandFlag(
        ("--version",),
        "Print the version of trio-h3 and Python, and exit.",
        "",
        "uvicorn's --version",
        "app",
        {"action": "version"},
    ),
)

_GROUPS = {
    "app": "the app",
    "logging": "logging",
    "workers": "processes",
    "reload": "reloading (development)",
}


def version_text() -> str:
    """What ``--version`` prints (uvicorn's shape)."""
    return (
        f"Running trio-h3 {__version__} with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}"
    )


def build_parser() -> tuple[argparse.ArgumentParser, list[Flag]]:
    """The ``trio-h3`` parser, and the flags of ``run`` that set ServeOptions fields."""
    parser = argparse.ArgumentParser(
        prog="trio-h3", description="Serve a trio-h3 app.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=version_text())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="serve MODULE:ATTR",
        description="Serve the app MODULE:ATTR (e.g. examples.hello:app). Server options "
        "start from the app's own serve_options; only the flags given override them.",
        allow_abbrev=False,
    )
    run.add_argument("app", metavar="MODULE:ATTR", help="the app to serve")
    groups = {key: run.add_argument_group(title) for key, title in _GROUPS.items()}
    for flag in COMMAND_FLAGS:
        options = dict(flag.options)
        if options.get("action") == "version":
            options["version"] = version_text()
        groups[flag.group].add_argument(*flag.names, help=flag.help, **options)
    return parser, add_serve_flags(run)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``trio-h3`` and ``python -m trio_h3``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, flags = build_parser()
    args = parser.parse_args(argv)
    return run_command(args, argv, flags)


def _usage(message: str) -> int:
    print(f"trio-h3: error: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _fail(message: object, cause: BaseException | None = None) -> int:
    if isinstance(message, OSError) and message.strerror and message.filename is None:
        message = message.strerror  # our own messages name what failed; no [Errno N]
    print(f"trio-h3: error: {message}", file=sys.stderr, flush=True)
    if cause is not None:
        print(format_cause(cause), end="", file=sys.stderr, flush=True)
    return EXIT_FAILURE


def run_command(args: argparse.Namespace, argv: Sequence[str], flags: list[Flag]) -> int:
    """``trio-h3 run`` with parsed ``args``; the exit status."""
    try:
        if args.env_file is not None:
            envfile.load(args.env_file)
        logs.configure(
            log_config=args.log_config, log_level=args.log_level, use_colors=args.use_colors
        )
    except (OSError, ValueError) as exc:
        return _fail(exc)
    given = given_options(args, flags)
    if args.workers < 1:
        return _usage(f"--workers must be at least 1, not {args.workers}")
    if args.workers > 1 and args.reload:
        return _usage(
            "--workers cannot be combined with --reload (the reloader restarts one "
            "process; run --workers without it)"
        )
    if args.reload:
        try:
            return reload.supervise(
                argv,
                dirs=args.reload_dir,
                includes=args.reload_include,
                excludes=args.reload_exclude,
                app_dir=args.app_dir,
                pass_fds=(given["fd"],) if given.get("fd") is not None else (),
            )
        except (OSError, ValueError) as exc:
            return _fail(exc)
    if args.reload_dir or args.reload_include or args.reload_exclude:
        logger.warning("--reload-dir/--reload-include/--reload-exclude do nothing without --reload")
    try:
        app = load_app(args.app, app_dir=args.app_dir, factory=args.factory)
    except AppImportError as exc:
        return _fail(exc)
    except AppLoadError as exc:
        return _fail(exc, exc.__cause__)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    from ..server.workers import inherited_fd, run_supervisor, warn_about_local_hubs

    inherited = inherited_fd()
    if inherited is not None:  # a worker of `--workers N`: serve on the supervisor's socket
        given["fd"] = inherited
    try:
        options = options_for(app.serve_options, given)
    except (TypeError, ValueError) as exc:
        return _fail(f"invalid options: {exc}")
    if args.workers > 1:
        warn_about_local_hubs(args.workers)
        return run_supervisor(argv, options, args.workers)
    return serve_app(app, options, worker=inherited is not None)


def serve_app(app: H3, options: ServeOptions, *, worker: bool = False) -> int:
    """Serve in this process until shutdown; the exit status.

    ``worker``: this process is a worker of ``--workers N`` (it also shuts down when its
    supervisor disappears).
    """
    import trio

    from .._groups import raise_single
    from ..server.serve import LifespanError, serve
    from ..server.workers import serve_worker

    started = False

    async def serve_main() -> None:
        nonlocal started
        async with trio.open_nursery() as nursery:
            if worker:
                await nursery.start(serve_worker, app, options)
            else:
                await nursery.start(functools.partial(serve, app, options))
            started = True

    logger.info("server process [%d] starting (trio-h3 %s)", os.getpid(), __version__)
    try:
        try:
            trio.run(serve_main)
        except BaseExceptionGroup as group:
            raise_single(group)
    except LifespanError as exc:
        print(f"trio-h3: error: {exc}", file=sys.stderr, flush=True)
        if exc.__cause__ is not None:
            print(format_cause(_single(exc.__cause__)), end="", file=sys.stderr, flush=True)
        return EXIT_LIFESPAN
    except (OSError, ValueError) as exc:
        if not started:  # the address, a certificate, a key: named in the message
            return _fail(exc)
        return _fail(f"the server stopped on {type(exc).__name__}", exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _fail(f"the server stopped on {type(exc).__name__}", exc)
    return 0


def _single(exc: BaseException) -> BaseException:
    """The one real error inside nested single-error groups, else ``exc`` itself."""
    import trio

    from .._groups import leaves

    real = [e for e in leaves(exc) if not isinstance(e, trio.Cancelled)]
    return real[0] if len(real) == 1 else exc
