"""A real ``redis-server`` (Debian's package) for the tests: a free port, a temp dir.

:class:`RedisServer` starts one with ``--save '' --appendonly no`` (nothing written
unless asked), on 127.0.0.1 only, and stops it. A test can stop and start it again on
the same port (:meth:`RedisServer.restart`): ``persist=True`` saves an RDB snapshot
first (``SHUTDOWN SAVE``), so the store survives; without it the store comes back
empty, as a Redis without persistence does after a crash.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import trio

#: Seconds a redis-server may take to start listening, or to exit.
START_BOUND = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(port: int, *args: str) -> bytes:
    """One command over a raw RESP connection (blocking, bounded); the raw reply."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=START_BOUND) as sock:
        sock.sendall(payload)
        try:
            return sock.recv(65536)
        except ConnectionError:
            return b""


class RedisServer:
    """One redis-server process on 127.0.0.1:``port`` with its data in ``directory``."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        assert executable, "redis-server is not installed (apt-get install redis-server)"
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _spawn(self) -> subprocess.Popen[bytes]:
        argv = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _ready(self) -> bool:
        try:
            return command(self.port, "PING").startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        """Start and wait until it answers PING (blocking; for fixtures)."""
        self.process = self._spawn()
        deadline = time.monotonic() + START_BOUND
        while not self._ready():
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, "redis-server did not start: " + self.log()
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop at once (SIGKILL: nothing saved), and wait (blocking; for fixtures)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=START_BOUND)
        self.process = None

    async def astop(self, *, persist: bool = False) -> None:
        """Stop without blocking Trio; ``persist`` saves a snapshot first (SHUTDOWN SAVE)."""
        process = self.process
        assert process is not None
        if persist:
            await trio.to_thread.run_sync(command, self.port, "SHUTDOWN", "SAVE")
        else:
            process.kill()
        with trio.fail_after(START_BOUND):
            while process.poll() is None:
                await trio.sleep(0.01)
        self.process = None

    async def astart(self) -> None:
        """Start again on the same port, without blocking Trio (an RDB there is loaded)."""
        self.process = self._spawn()
        with trio.fail_after(START_BOUND):
            while not await trio.to_thread.run_sync(self._ready):
                assert self.process.poll() is None, self.log()
                await trio.sleep(0.01)

    async def restart(self, *, persist: bool, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again on the same port."""
        await self.astop(persist=persist)
        await trio.sleep(down_for)
        await self.astart()

    def log(self) -> str:
        try:
            return (self.directory / "redis.log").read_text()[-2000:]
        except OSError:
            return ""
