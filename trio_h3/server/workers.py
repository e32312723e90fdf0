"""``trio-h3 run --workers N``: one supervisor process, N worker processes.

The supervisor binds the listening socket(s) itself and starts each worker as a fresh
interpreter (``subprocess`` with ``pass_fds``: spawn, never fork inside a Trio run),
which serves the app on the inherited socket with its own Trio loop and its own
lifespan (:data:`ENV_FD` names the descriptor). Without ``--reuse-port`` the workers
share one socket and one accept queue; with it, the supervisor binds one
``SO_REUSEPORT`` socket per worker, the kernel spreads connections over their queues,
and a worker that dies leaves its queue open for its replacement.

Rules (gunicorn's and uvicorn's, where they have one):

- a worker that exits while the server is not stopping is restarted, at once the
  first time and with a doubling delay (capped at :data:`MAX_RESTART_DELAY`) while it
  keeps dying within :data:`CRASH_WINDOW` of its start, so a crash loop cannot spin;
- the first SIGINT/SIGTERM is forwarded to every worker, which shuts down gracefully
  with the usual bounds; a second one is forwarded too (a worker then exits at once,
  130/143) and the supervisor exits at once with 128 + the signal, after killing any
  worker still there a moment later;
- workers run in their own process group, so a terminal's Ctrl-C reaches only the
  supervisor (and each worker gets the signal once, not twice); a worker whose
  supervisor disappears (``kill -9``) shuts itself down gracefully;
- the supervisor exits when every worker has: 0 if all exited 0, else the first
  non-zero status (a worker's ``128 + signal`` from its own hard bound included).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from ..app import H3
from ..datastructures import Address
from .options import ServeOptions
from .serve import HARD_EXIT_MARGIN, Server
from .sockets import bind_socket

__all__: list[str] = []

logger = logging.getLogger("trio_h3")

#: The environment variable that hands a worker its listening socket's descriptor.
ENV_FD = "TRIO_H3_FD"
#: The worker's index (0..N-1), for logs and for the app.
ENV_WORKER = "TRIO_H3_WORKER"
#: The supervisor's pid: a worker whose parent is no longer it shuts down.
ENV_SUPERVISOR = "TRIO_H3_SUPERVISOR_PID"

#: A worker that exits within this many seconds of its start counts as crash-looping.
CRASH_WINDOW = 1.0
#: Cap on the delay before restarting a crash-looping worker (seconds).
MAX_RESTART_DELAY = 5.0
#: After a second signal, how long workers get to exit before they are killed.
FORCE_GRACE = 2.0
#: How often a worker checks that its supervisor is still there (gunicorn's workers
#: compare their ppid on every loop iteration; once a second is plenty).
PARENT_CHECK_INTERVAL = 1.0


def inherited_fd() -> int | None:
    """The listening descriptor a supervisor handed this process (None if none)."""
    value = os.environ.get(ENV_FD)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{ENV_FD} must be a file descriptor number, not {value!r}") from None


def warn_about_local_hubs(workers: int) -> None:
    """With several workers, an in-memory hub reaches only its own process: say so."""
    if workers < 2 or "trio_h3.broadcast" not in sys.modules:
        return
    from ..broadcast import Broadcast

    hubs = Broadcast.in_memory_hubs()
    if hubs:
        logger.warning(
            "--workers %d with %d in-memory Broadcast hub(s): each worker has its own, so "
            "a message published in one worker never reaches clients of the others; use "
            "Broadcast.from_url('redis://...') to share topics between workers",
            workers,
            len(hubs),
        )


def worker_argv(argv: Sequence[str]) -> list[str]:
    """The command line of a worker: the same ``trio-h3`` arguments, less the
    supervisor's own (``--workers N``, ``--reuse-port``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers=") or arg == "--reuse-port":
            continue
        out.append(arg)
    return [sys.executable, "-m", "trio_h3", *out]


def _status(returncode: int) -> int:
    """A Popen return code as a shell would report it (killed by N -> 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class _Worker:
    index: int
    fd: int
    process: trio.Process | None = None
    status: int | None = None


class Supervisor:
    """Starts, restarts and stops the workers (see the module docstring)."""

    def __init__(self, argv: list[str], options: ServeOptions, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        self.argv = argv
        self.options = options
        self.count = workers
        self.stopping = False
        self.first_signal: int | None = None
        self.forced: int | None = None
        self._workers: list[_Worker] = []

    def _bind(self) -> list[int]:
        options = self.options
        first = bind_socket(
            options.host, options.port, options.backlog, reuse_port=options.reuse_port
        )
        sockets = [first]
        if options.reuse_port:
            port = first.getsockname()[1]  # port 0: every queue on the port the first got
            sockets += [
                bind_socket(options.host, port, options.backlog, reuse_port=True)
                for _ in range(self.count - 1)
            ]
        for sock in sockets:
            sock.set_inheritable(True)
        self._sockets = sockets
        host, port = first.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        mode = "one SO_REUSEPORT queue each" if options.reuse_port else "one shared socket"
        print(
            f"trio-h3 supervisor {os.getpid()}: {self.count} workers on "
            f"http://{shown}:{port} ({mode})",
            file=sys.stderr,
            flush=True,
        )
        return [sock.fileno() for sock in sockets]

    async def run(self) -> int:
        """Serve until every worker has exited; the exit status (module docstring)."""
        fds = self._bind()
        self._workers = [_Worker(i, fds[i % len(fds)]) for i in range(self.count)]
        try:
            async with trio.open_nursery() as outer:
                outer.start_soon(self._watch_signals, outer.cancel_scope)
                async with trio.open_nursery() as nursery:
                    for worker in self._workers:
                        nursery.start_soon(self._keep_running, worker)
                outer.cancel_scope.cancel()
        finally:
            for sock in self._sockets:
                sock.close()
        if self.forced is not None:
            return 128 + self.forced
        statuses = [w.status for w in self._workers if w.status]
        return statuses[0] if statuses else 0

    async def _keep_running(self, worker: _Worker) -> None:
        crashes = 0
        env = {
            **os.environ,
            ENV_FD: str(worker.fd),
            ENV_WORKER: str(worker.index),
            ENV_SUPERVISOR: str(os.getpid()),
        }
        while not self.stopping:
            started = trio.current_time()
            process = await trio.lowlevel.open_process(
                self.argv, env=env, pass_fds=(worker.fd,), process_group=0
            )
            worker.process = process
            if self.first_signal is not None:  # a signal came while it was starting
                process.send_signal(self.first_signal)
            status = _status(await process.wait())
            worker.status = status
            if self.stopping:
                return
            crashes = crashes + 1 if trio.current_time() - started < CRASH_WINDOW else 0
            delay = min(0.1 * 2 ** (crashes - 1), MAX_RESTART_DELAY) if crashes else 0.0
            logger.error(
                "worker %d (pid %d) exited with status %d; restarting it%s",
                worker.index,
                process.pid,
                status,
                f" in {delay:.1f}s" if delay else "",
            )
            with trio.move_on_after(delay):
                while not self.stopping:
                    await trio.sleep(0.05)
            if self.stopping:
                return

    def _forward(self, signum: int) -> None:
        for worker in self._workers:
            process = worker.process
            if process is not None and process.returncode is None:
                try:
                    process.send_signal(signum)
                except ProcessLookupError:
                    pass

    def _kill_all(self) -> None:
        for worker in self._workers:
            process = worker.process
            if process is not None and process.returncode is None:
                try:
                    process.kill()
                except ProcessLookupError:
                    pass

    async def _watch_signals(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    self._forward(signum)
                    if not self.stopping:
                        self.stopping = True
                        self.first_signal = signum
                        logger.info(
                            "%s: stopping %d workers gracefully (again to force)", name, self.count
                        )
                        nursery.start_soon(self._bound_shutdown)
                    else:
                        self.forced = signum
                        logger.warning("second signal (%s): stopping the workers now", name)
                        nursery.start_soon(self._kill_after, FORCE_GRACE)

    async def _bound_shutdown(self) -> None:
        # Each worker bounds itself (shutdown_timeout + HARD_EXIT_MARGIN); this is the
        # bound of last resort, for a worker that cannot even run its watchdog.
        await trio.sleep(self.options.shutdown_timeout + HARD_EXIT_MARGIN + FORCE_GRACE)
        logger.error("workers still running past every shutdown bound: killing them")
        self._kill_all()

    async def _kill_after(self, delay: float) -> None:
        await trio.sleep(delay)
        self._kill_all()


def run_supervisor(argv: Sequence[str], options: ServeOptions, workers: int) -> int:
    """``trio-h3 run --workers N``: supervise N workers; returns the exit status."""
    supervisor = Supervisor(worker_argv(argv), options, workers)
    return trio.run(supervisor.run)


# -- in a worker ------------------------------------------------------------------------------


async def _watch_supervisor(supervisor: int, trigger: trio.Event) -> None:
    while os.getppid() == supervisor:
        await trio.sleep(PARENT_CHECK_INTERVAL)
    logger.warning("the supervisor (pid %d) is gone: shutting down", supervisor)
    trigger.set()


async def serve_worker(
    app: H3,
    options: ServeOptions,
    *,
    task_status: trio.TaskStatus[list[Address]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """What a worker runs: ``serve`` on the inherited socket, owning its signals, and
    shutting down gracefully if its supervisor disappears."""
    trigger = trio.Event()
    async with trio.open_nursery() as nursery:
        supervisor = os.environ.get(ENV_SUPERVISOR)
        if supervisor and supervisor.isdigit():
            nursery.start_soon(_watch_supervisor, int(supervisor), trigger)
        server = Server(app, options)
        await server.run(shutdown_trigger=trigger, handle_signals=True, task_status=task_status)
        nursery.cancel_scope.cancel()
