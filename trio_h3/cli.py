"""The ``trio-h3`` command: ``trio-h3 run module:app [--host ...] [--port ...]``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import trio

from .app import H3
from .server.options import ServeOptions
from .server.serve import serve
from .server.workers import inherited_fd, run_supervisor, serve_worker, warn_about_local_hubs

__all__ = ["main"]


class AppImportError(Exception):
    """``MODULE:ATTR`` could not be turned into an app; the message says why, in one line."""


def import_app(spec: str, *, app_dir: str | None = None, factory: bool = False) -> H3:
    """Import ``module.path:attribute`` (``--factory``: call it to get the app)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppImportError(f"expected MODULE:ATTR (like 'examples.hello:app'), got {spec!r}")
    path = os.path.abspath(app_dir or ".")
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppImportError(f"could not import module {module_name!r}: {exc}") from exc
        raise
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppImportError(f"module {module_name!r} has no attribute {attr!r}") from None
    if factory:
        if not callable(target):
            raise AppImportError(f"{spec!r} is not callable, so it cannot be a --factory")
        target = target()
    if not isinstance(target, H3):
        hint = " (use --factory if it builds the app)" if callable(target) and not factory else ""
        raise AppImportError(f"{spec!r} is a {type(target).__name__}, not an H3 app{hint}")
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trio-h3", description="Serve a trio-h3 app.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve MODULE:ATTR")
    run.add_argument("app", help="the app to serve, as MODULE:ATTR (e.g. examples.hello:app)")
    run.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=3000, help="port (default 3000; 0 = any free)")
    run.add_argument("--app-dir", default=None, help="directory to import the app from")
    run.add_argument("--factory", action="store_true", help="ATTR is a function returning the app")
    run.add_argument("--reload", action="store_true", help="restart when files change (watchfiles)")
    run.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="logging level (default info)",
    )
    run.add_argument("--no-access-log", action="store_true", help="do not log each request")
    run.add_argument("--ssl-certfile", default=None, help="TLS certificate (PEM)")
    run.add_argument("--ssl-keyfile", default=None, help="TLS private key (PEM)")
    run.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1: this process)"
    )
    run.add_argument(
        "--reuse-port",
        action="store_true",
        help="SO_REUSEPORT: with --workers, one accept queue per worker",
    )
    return parser


def _serve_from_args(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = import_app(args.app, app_dir=args.app_dir, factory=args.factory)
    options = _options(args)
    if options.fd is not None:  # a worker of `--workers N`
        trio.run(serve_worker, app, options)
    else:
        trio.run(serve, app, options)


def _options(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        host=args.host,
        port=args.port,
        access_log=not args.no_access_log,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        reuse_port=args.reuse_port,
        fd=inherited_fd(),
    )


def _reload_target(argv: list[str]) -> None:
    # Runs in the child process watchfiles starts and restarts.
    args = _parser().parse_args(argv)
    try:
        _serve_from_args(args)
    except KeyboardInterrupt:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``trio-h3`` and ``python -m trio_h3``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        if args.ssl_certfile or args.ssl_keyfile:
            ServeOptions(ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
        if args.workers < 1:
            print(
                f"trio-h3: error: --workers must be at least 1, not {args.workers}", file=sys.stderr
            )
            return 2
        if args.workers > 1 and args.reload:
            print(
                "trio-h3: error: --workers cannot be combined with --reload (the reloader "
                "restarts one process; run --workers without it)",
                file=sys.stderr,
            )
            return 2
        # Import once up front so a bad MODULE:ATTR fails here, before any reloader.
        import_app(args.app, app_dir=args.app_dir, factory=args.factory)
        if args.workers > 1:
            logging.basicConfig(
                level=args.log_level.upper(),
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            )
            warn_about_local_hubs(args.workers)
            return run_supervisor(argv, _options(args), args.workers)
        if args.reload:
            try:
                import watchfiles
            except ImportError:
                print(
                    "trio-h3: --reload needs watchfiles: pip install 'trio-h3[reload]'",
                    file=sys.stderr,
                )
                return 2
            child_argv = [a for a in argv if a != "--reload"]
            watchfiles.run_process(
                os.path.abspath(args.app_dir or "."),
                target=_reload_target,
                args=(child_argv,),
                callback=lambda changes: print(
                    f"trio-h3: {len(changes)} file change(s), restarting", file=sys.stderr
                ),
            )
            return 0
        _serve_from_args(args)
    except AppImportError as exc:
        print(f"trio-h3: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"trio-h3: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
