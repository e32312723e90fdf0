"""``trio_h3.cli.main`` in-process: the same paths as the real command, with stderr
captured (the subprocess tests in test_cli_run.py show the same from outside)."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from trio_h3.cli import main
from trio_h3.cli.reload import ReloadFilter, Supervisor, _Watcher

TIMEOUT = 30


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """main() installs its log handler on the root logger (on capsys's stderr): undo it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def errors(capsys: pytest.CaptureFixture[str]) -> str:
    """What the command wrote to stderr, less its INFO log lines."""
    lines = capsys.readouterr().err.splitlines(keepends=True)
    return "".join(line for line in lines if " INFO:" not in line)


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory for app modules; sys.path and sys.modules are restored afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("cm_"):
            del sys.modules[name]


def cli(app_dir: Path, spec: str, *argv: str) -> int:
    return main(["run", spec, "--app-dir", str(app_dir), "--no-access-log", *argv])


def test_an_import_error_shows_the_apps_traceback(
    app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (app_dir / "cm_broken.py").write_text("x = 1\nraise ValueError('bad setting')\n")
    assert cli(app_dir, "cm_broken:app") == 1
    err = errors(capsys)
    first, second, *rest = err.splitlines()
    assert first == "trio-h3: error: importing 'cm_broken' raised ValueError: bad setting"
    assert second == "Traceback (most recent call last):"
    assert 'cm_broken.py", line 2, in <module>' in err
    assert rest[-1] == "ValueError: bad setting"
    assert "importlib" not in err


def test_a_factory_error_shows_its_traceback(
    app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (app_dir / "cm_factory.py").write_text("def make():\n    return {}['missing']\n")
    assert cli(app_dir, "cm_factory:make", "--factory") == 1
    err = errors(capsys)
    assert err.startswith("trio-h3: error: the factory 'cm_factory:make' raised KeyError: ")
    assert "return {}['missing']" in err


def test_bad_options_are_one_line(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (app_dir / "cm_ok.py").write_text("from trio_h3 import H3\napp = H3()\n")
    assert cli(app_dir, "cm_ok:app", "--uds", "/tmp/x", "--fd", "3") == 1
    assert errors(capsys) == (
        "trio-h3: error: invalid options: uds and fd are two ways to listen: give one of them\n"
    )


def test_a_failing_lifespan_exits_3(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (app_dir / "cm_lifespan.py").write_text(
        "from contextlib import asynccontextmanager\n"
        "from trio_h3 import H3\n"
        "@asynccontextmanager\n"
        "async def lifespan(app):\n"
        "    raise RuntimeError('migrations pending')\n"
        "    yield\n"
        "app = H3(lifespan=lifespan)\n"
    )
    assert cli(app_dir, "cm_lifespan:app", "--port", "0") == 3
    err = errors(capsys).splitlines()
    assert (
        err[0] == "trio-h3: error: the lifespan failed on startup: RuntimeError: migrations pending"
    )
    assert err[1] == "Traceback (most recent call last):"
    assert err[-1] == "RuntimeError: migrations pending"


def test_an_address_in_use(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (app_dir / "cm_ok2.py").write_text("from trio_h3 import H3\napp = H3()\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli(app_dir, "cm_ok2:app", "--port", str(port)) == 1
    assert errors(capsys) == (
        f"trio-h3: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def test_serving_until_limit_max_requests(app_dir: Path) -> None:
    # In a thread, the server handles no signals; --limit-max-requests stops it.
    (app_dir / "cm_serve.py").write_text(
        "from trio_h3 import H3, ServeOptions\n"
        "app = H3(serve_options=ServeOptions(port=0, server_header='from-app'))\n"
        "app.get('/', lambda event: 'served')\n"
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    status: list[int] = []
    thread = threading.Thread(
        target=lambda: status.append(
            cli(app_dir, "cm_serve:app", "--fd", str(sock.fileno()), "--limit-max-requests", "1")
        )
    )
    thread.start()
    r: httpx.Response | None = None
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            for _ in range(100):
                try:
                    r = client.get(f"http://127.0.0.1:{port}/")
                    break
                except httpx.ConnectError:  # not listening yet (bounded retries)
                    threading.Event().wait(0.05)
        assert r is not None and r.text == "served" and r.headers["server"] == "from-app"
    finally:
        thread.join(TIMEOUT)
    assert status == [0]


class Script(_Watcher):
    """A change (a restart), the server dying (reported), then a SIGTERM."""

    def __init__(self, supervisor: list[Supervisor]) -> None:
        super().__init__([Path.cwd()], ReloadFilter(), threading.Event())
        self.supervisor = supervisor

    def changes(self) -> Iterator[list[Path]]:
        supervisor = self.supervisor[0]
        first = supervisor.child
        yield [Path.cwd() / "app.py"]
        restarted = supervisor.child
        assert first is not None and first.returncode is not None  # stopped for the restart
        assert restarted is not None and restarted is not first
        restarted.kill()
        restarted.wait()
        yield []
        signal.raise_signal(signal.SIGTERM)  # to the supervisor, as `kill` would
        yield []


@pytest.mark.slow
def test_the_supervisor_restarts_and_passes_signals_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="trio_h3.reload")
    holder: list[Supervisor] = []
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    supervisor = Supervisor(command, Script(holder))
    holder.append(supervisor)
    assert supervisor.run() == 128 + signal.SIGKILL  # the killed child's status
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("changes detected in 'app.py': restarting") for m in messages)
    assert any("the server exited with status 137" in m for m in messages)
