"""``--reload``: a supervisor that restarts the server when a watched file changes.

The supervisor never imports the app: it runs ``python -m trio_h3 run ...`` (the same
command without the reload flags) as a child, restarts it after a change, and keeps
watching when the child fails (fix the file, save, it starts again).

What is watched follows uvicorn's ``--reload-*`` semantics:

- directories: ``--reload-dir`` (repeatable), default the current directory (and the
  ``--app-dir``, when given);
- a changed file counts when its path matches an include pattern (default ``*.py``;
  ``--reload-include`` adds more) and no exclude pattern (defaults ``.*``, ``.py[cod]``,
  ``.sw.*``, ``~*``; ``--reload-exclude`` adds a pattern, or a directory to ignore). A
  default is dropped when given on the other side (``--reload-include '.*'``), and a
  literal include (``--reload-include .env``) wins over the excludes;
- unlike uvicorn, an exclude pattern without ``/`` also excludes directories of that
  name, so ``.venv``, ``.git`` and the like are never watched by default.

Patterns are globs matched from the right (``pathlib.PurePath.match``). watchfiles
(``pip install watchfiles``) is used when installed, else the files are polled.

Signals: the child runs in its own process group, so a Ctrl-C reaches the supervisor
only, which passes it on once; a second one forces the child as usual. The supervisor
exits with the child's status.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

__all__: list[str] = []

logger = logging.getLogger("trio_h3.reload")

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")
#: Seconds between polls, and the debounce of a burst of changes (uvicorn's reload_delay).
RELOAD_DELAY = 0.25
#: A child that ignores SIGTERM this long after a restart was asked for is killed.
RESTART_BOUND = 30.0

#: The flags that belong to the supervisor; each but --reload takes a value.
RELOAD_FLAGS = ("--reload-dir", "--reload-include", "--reload-exclude")


class ReloadFilter:
    """Which changed paths restart the server (see the module docstring)."""

    def __init__(self, includes: Sequence[str] = (), excludes: Sequence[str] = ()) -> None:
        self.includes = [p for p in DEFAULT_INCLUDES if p not in excludes] + [
            p for p in includes if p not in DEFAULT_INCLUDES
        ]
        self.excludes = [p for p in DEFAULT_EXCLUDES if p not in includes]
        self.exclude_dirs: list[Path] = []
        for pattern in excludes:
            candidate = Path(pattern)
            if candidate.is_dir():
                self.exclude_dirs.append(candidate.resolve())
            elif pattern not in self.excludes:
                self.excludes.append(pattern)

    def excludes_dir(self, path: Path) -> bool:
        """Whether nothing under directory ``path`` is watched."""
        if any(path == d or d in path.parents for d in self.exclude_dirs):
            return True
        return any("/" not in p and fnmatch.fnmatch(path.name, p) for p in self.excludes)

    def __call__(self, path: Path, root: Path = Path("/")) -> bool:
        """Whether a change to ``path`` (under the watched ``root``) counts."""
        for include in self.includes:
            if not path.match(include):
                continue
            if not any(c in include for c in "*?[") and str(path).endswith(include):
                return True  # named literally: the excludes do not apply (uvicorn)
            if any(d in path.parents for d in self.exclude_dirs):
                return False
            if any(path.match(p) for p in self.excludes):
                return False
            # The directories between the watched root and the file (.venv, .git...).
            parents = path.parent.relative_to(root).parts if root in path.parents else ()
            for part in parents:
                if any("/" not in p and fnmatch.fnmatch(part, p) for p in self.excludes):
                    return False
            return True
        return False


def child_argv(argv: Sequence[str]) -> list[str]:
    """The command line of the served child: ``argv`` without the reload flags."""
    out: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token == "--reload":
            pass
        elif token in RELOAD_FLAGS:
            skip = True
        elif token.startswith(tuple(f + "=" for f in RELOAD_FLAGS)):
            pass
        else:
            out.append(token)
    return [sys.executable, "-m", "trio_h3", *out]


def reload_dirs(dirs: Sequence[str], app_dir: str | None) -> list[Path]:
    """The directories to watch, each once (one inside another is dropped)."""
    wanted = [Path(d) for d in dirs] or [Path.cwd(), *([Path(app_dir)] if app_dir else [])]
    missing = [str(d) for d in wanted if not d.is_dir()]
    if missing:
        raise ValueError(f"--reload-dir: no such directory: {', '.join(missing)}")
    resolved = sorted({d.resolve() for d in wanted})
    return [d for d in resolved if not any(o in d.parents for o in resolved)]


class _Watcher:
    """Yields the paths that changed (an empty list now and then, to look around)."""

    def __init__(self, dirs: list[Path], keep: ReloadFilter, stop: threading.Event) -> None:
        self.dirs = dirs
        self.keep = keep
        self.stop = stop

    def _root(self, path: Path) -> Path:
        return next((d for d in self.dirs if d in path.parents), Path(path.anchor))

    def changes(self) -> Iterator[list[Path]]:
        try:
            import watchfiles
        except ImportError:
            yield from self._poll()
            return
        for batch in watchfiles.watch(
            *self.dirs,
            watch_filter=None,
            stop_event=self.stop,
            yield_on_timeout=True,
            rust_timeout=int(RELOAD_DELAY * 4000),
            ignore_permission_denied=True,
        ):
            paths = sorted({Path(p) for _, p in batch})
            yield [p for p in paths if self.keep(p, self._root(p))]

    @property
    def name(self) -> str:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            return "polling"
        return "watchfiles"

    def _snapshot(self) -> dict[Path, float]:
        found: dict[Path, float] = {}
        for root in self.dirs:
            for folder, subdirs, files in os.walk(root):
                here = Path(folder)
                subdirs[:] = [s for s in subdirs if not self.keep.excludes_dir(here / s)]
                for name in files:
                    path = here / name
                    if self.keep(path, root):
                        try:
                            found[path] = path.stat().st_mtime
                        except OSError:
                            pass
        return found

    def _poll(self) -> Iterator[list[Path]]:
        before = self._snapshot()
        while not self.stop.wait(RELOAD_DELAY):
            now = self._snapshot()
            changed = {p for p in now.keys() | before.keys() if now.get(p) != before.get(p)}
            before = now
            yield sorted(changed)


class Supervisor:
    """Runs the server as a child process and restarts it on changes."""

    def __init__(self, command: list[str], watcher: _Watcher, pass_fds: Sequence[int] = ()) -> None:
        self.command = command
        self.pass_fds = tuple(pass_fds)
        self.watcher = watcher
        self.stop = watcher.stop
        self.child: subprocess.Popen[bytes] | None = None
        self._reported_exit = False

    def _start(self) -> None:
        # Its own process group: a terminal's Ctrl-C reaches us only, and we pass it on
        # once (both getting it would be a second signal: a forced exit).
        self.child = subprocess.Popen(self.command, process_group=0, pass_fds=self.pass_fds)
        self._reported_exit = False

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def _restart(self, changed: list[Path]) -> None:
        shown = ", ".join(f"'{_display(p)}'" for p in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        logger.warning("changes detected in %s%s: restarting", shown, more)
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(RESTART_BOUND)
            except subprocess.TimeoutExpired:
                logger.warning("the server did not stop within %gs: killing it", RESTART_BOUND)
                child.kill()
                child.wait()
        if not self.stop.is_set():  # a signal while we waited: stop, do not restart
            self._start()

    def run(self) -> int:
        """Supervise until a signal; the child's exit status."""
        previous = {s: signal.signal(s, self._signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            logger.info(
                "reloader process [%d] watching %s with %s",
                os.getpid(),
                ", ".join(f"'{d}'" for d in self.watcher.dirs),
                self.watcher.name,
            )
            self._start()
            for changed in self.watcher.changes():
                if self.stop.is_set():
                    break
                if changed:
                    self._restart(changed)
                else:
                    self._note_exit()
            return self._finish()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _note_exit(self) -> None:
        child = self.child
        if child is not None and not self._reported_exit and child.poll() is not None:
            self._reported_exit = True
            logger.warning(
                "the server exited with status %s; waiting for a change to restart it",
                _status(child.returncode),
            )

    def _finish(self) -> int:
        child = self.child
        if child is None:
            return 0
        code = child.wait()
        return _status(code)


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def supervise(
    argv: Sequence[str],
    *,
    dirs: Sequence[str],
    includes: Sequence[str],
    excludes: Sequence[str],
    app_dir: str | None,
    pass_fds: Sequence[int] = (),
) -> int:
    """Run ``trio-h3 <argv>`` (less the reload flags) under a reloader; its exit status.

    ``pass_fds``: descriptors the child needs (``--fd``).
    """
    stop = threading.Event()
    watcher = _Watcher(reload_dirs(dirs, app_dir), ReloadFilter(includes, excludes), stop)
    return Supervisor(child_argv(argv), watcher, pass_fds).run()
