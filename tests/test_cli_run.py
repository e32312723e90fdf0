"""``trio-h3 run`` in a real child process: what uvicorn users expect of it.

The app's own settings under the CLI, startup errors with their traceback, the lifespan's
exit status 3, the flags reaching the server (a Unix socket, --fd, headers, --root-path,
--limit-max-requests), --env-file, --log-config, --version, and --reload's supervisor.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from helpers import ServerProcess

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 30
CLI = [sys.executable, "-m", "trio_h3"]


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=str(cwd), capture_output=True, text=True, timeout=TIMEOUT
    )


def test_version() -> None:
    for argv in (["--version"], ["run", "--version"]):
        result = run_cli(*argv)
        assert result.returncode == 0
        assert re.fullmatch(r"Running trio-h3 \S+ with CPython 3\.\d+\.\d+ on \w+\n", result.stdout)


def test_run_help_covers_every_option() -> None:
    from trio_h3.cli.main import COMMAND_FLAGS, build_parser

    result = run_cli("run", "--help")
    assert result.returncode == 0
    _, flags = build_parser()
    names = [n for f in flags for n in (*f.names, *([f.off] if f.off else []))]
    names += [n for c in COMMAND_FLAGS for n in c.names]
    missing = [n for n in names if not re.search(rf"{re.escape(n)}\b", result.stdout)]
    assert not missing


# -- an app that carries its own settings ----------------------------------------------------


async def test_rest_api_body_limit_applies_under_the_cli() -> None:
    body = {"title": "x" * 20_000}
    async with ServerProcess.start(
        [*CLI, "run", "examples.rest_api:app", "--port", "0"], cwd=str(REPO)
    ) as child:
        async with httpx.AsyncClient(base_url=child.url) as client:
            r = await client.post("/notes", json={"title": "small"})
            assert r.status_code == 201
            r = await client.post("/notes", json=body)
            assert r.status_code == 413
            assert r.json()["data"] == {"limit": 16 * 1024}
        child.signal(signal.SIGINT)
        assert await child.wait() == 0
    # A flag given goes on top of the app's setting.
    async with ServerProcess.start(
        [*CLI, "run", "examples.rest_api:app", "--port", "0", "--max-body-size", "65536"],
        cwd=str(REPO),
    ) as child:
        async with httpx.AsyncClient(base_url=child.url) as client:
            assert (await client.post("/notes", json=body)).status_code == 400  # too long a title
        child.signal(signal.SIGINT)
        assert await child.wait() == 0


# -- startup errors --------------------------------------------------------------------------


def write_module(tmp_path: Path, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(source)


@pytest.mark.parametrize(
    ("source", "argv", "first_line", "user_line"),
    [
        (
            "import os\nSETTING = int(os.environ.get('CLI_T_MISSING', 'x'))\n",
            [],
            "trio-h3: error: importing 'cli_t_app' raised ValueError: invalid literal for int()",
            "SETTING = int(os.environ.get('CLI_T_MISSING', 'x'))",
        ),
        (
            "open('/nonexistent/config.toml')\n",
            [],
            "trio-h3: error: importing 'cli_t_app' raised FileNotFoundError: [Errno 2]",
            "open('/nonexistent/config.toml')",
        ),
        (
            "import cli_t_dependency_that_is_missing\n",
            [],
            "trio-h3: error: importing 'cli_t_app' raised ModuleNotFoundError",
            "import cli_t_dependency_that_is_missing",
        ),
        (
            "def app():\n    raise OSError('no database at db:5432')\n",
            ["--factory"],
            "trio-h3: error: the factory 'cli_t_app:app' raised OSError: no database at db:5432",
            "raise OSError('no database at db:5432')",
        ),
    ],
    ids=["value-error", "os-error", "missing-dependency", "factory"],
)
def test_a_failing_import_or_factory_shows_its_traceback(
    tmp_path: Path, source: str, argv: list[str], first_line: str, user_line: str
) -> None:
    write_module(tmp_path, "cli_t_app", source)
    result = run_cli("run", "cli_t_app:app", "--app-dir", str(tmp_path), "--port", "0", *argv)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(first_line), result.stderr
    assert lines[1] == "Traceback (most recent call last):"
    assert user_line in result.stderr
    # The importer's and the CLI's own frames are left out: the app's code is the story.
    assert "<frozen importlib" not in result.stderr
    assert "trio_h3/" not in result.stderr


def test_a_failing_lifespan_says_so_then_shows_its_traceback_and_exits_3(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "cli_t_lifespan",
        "from trio_h3 import H3\n"
        "app = H3()\n"
        "@app.lifespan\n"
        "async def lifespan(app):\n"
        "    raise ConnectionRefusedError('redis at 127.0.0.1:6379')\n"
        "    yield\n",
    )
    result = run_cli("run", "cli_t_lifespan:app", "--app-dir", str(tmp_path), "--port", "0")
    assert result.returncode == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if "INFO" not in line]
    assert errors[0] == (
        "trio-h3: error: the lifespan failed on startup: "
        "ConnectionRefusedError: redis at 127.0.0.1:6379"
    )
    assert errors[1] == "Traceback (most recent call last):"
    assert "raise ConnectionRefusedError('redis at 127.0.0.1:6379')" in result.stderr
    assert errors[-1] == "ConnectionRefusedError: redis at 127.0.0.1:6379"
    assert "ExceptionGroup" not in result.stderr
    # The app's frames, not every nursery and context manager on the way.
    assert len(errors) <= 6, result.stderr
    assert "trio_h3" not in result.stderr.split("Traceback", 1)[1]


# -- flags reaching the server ---------------------------------------------------------------


async def read_stderr_until(process: trio.Process, seen: bytearray, marker: bytes) -> None:
    assert process.stderr is not None
    while marker not in seen:
        chunk = await process.stderr.receive_some(65536)
        assert chunk, bytes(seen)
        seen += chunk


async def test_uds_headers_and_root_path(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "cli_t_url",
        "from trio_h3 import H3\napp = H3()\n"
        "app.get('/where', lambda event: {'url': str(event.url), 'path': event.path})\n",
    )
    path = tmp_path / "app.sock"
    argv = [*CLI, "run", "cli_t_url:app", "--app-dir", str(tmp_path), "--uds", str(path)]
    argv += ["--header", "X-Frame-Options:DENY", "--no-server-header", "--no-date-header"]
    argv += ["--root-path", "/api", "--no-access-log"]
    seen = bytearray()
    with trio.fail_after(TIMEOUT):
        process = await trio.lowlevel.open_process(argv, stderr=subprocess.PIPE)
        try:
            await read_stderr_until(process, seen, f"listening on unix:{path} (http)".encode())
            transport = httpx.AsyncHTTPTransport(uds=str(path))
            async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
                r = await client.get("/api/where")
            assert r.json() == {"url": "http://h/api/where", "path": "/where"}
            assert r.headers["x-frame-options"] == "DENY"
            assert "server" not in r.headers and "date" not in r.headers
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert not path.exists()


async def test_fd_and_limit_max_requests() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    argv = [*CLI, "run", "examples.hello:app", "--fd", str(sock.fileno())]
    argv += ["--limit-max-requests", "2"]
    seen = bytearray()
    with trio.fail_after(TIMEOUT):
        process = await trio.lowlevel.open_process(
            argv, cwd=str(REPO), stderr=subprocess.PIPE, pass_fds=(sock.fileno(),)
        )
        sock.close()
        try:
            await read_stderr_until(process, seen, f"listening on http://127.0.0.1:{port}".encode())
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/")).status_code == 200
                assert (await client.get("/")).status_code == 200
            # The second request was the last: the process shuts down by itself, cleanly.
            assert process.stderr is not None
            while chunk := await process.stderr.receive_some(65536):
                seen += chunk
            assert await process.wait() == 0, bytes(seen)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert b"limit_max_requests (2): graceful shutdown" in seen


async def test_env_file_and_log_config(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "cli_t_env",
        "import os\nfrom trio_h3 import H3\napp = H3()\n"
        "GREETING = os.environ['CLI_T_GREETING']\n"
        "app.get('/', lambda event: GREETING)\n",
    )
    (tmp_path / ".env").write_text("# settings\nCLI_T_GREETING='hello from .env'\n")
    access = tmp_path / "access.log"
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"f": {"format": "%(client_addr)s %(request_line)s %(status_code)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(access), "formatter": "f"}
        },
        "loggers": {"trio_h3.access": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }
    (tmp_path / "logging.json").write_text(json.dumps(config))
    argv = [*CLI, "run", "cli_t_env:app", "--app-dir", str(tmp_path), "--port", "0"]
    argv += ["--env-file", str(tmp_path / ".env"), "--log-config", str(tmp_path / "logging.json")]
    async with ServerProcess.start(argv) as child:
        async with httpx.AsyncClient(base_url=child.url) as client:
            assert (await client.get("/")).text == "hello from .env"
        child.signal(signal.SIGINT)
        assert await child.wait() == 0
    assert re.fullmatch(r"127\.0\.0\.1:\d+ GET / HTTP/1\.1 200\n", access.read_text())
    assert b"GET /" not in child.stderr  # the default handler is gone


def test_env_file_and_log_config_errors_name_the_file(tmp_path: Path) -> None:
    result = run_cli("run", "examples.hello:app", "--env-file", str(tmp_path / "nope.env"))
    assert result.returncode == 1
    assert "trio-h3: error: cannot read --env-file '" in result.stderr
    result = run_cli("run", "examples.hello:app", "--log-config", str(tmp_path / "nope.ini"))
    assert result.returncode == 1
    assert "trio-h3: error: cannot read --log-config '" in result.stderr


# -- --reload ---------------------------------------------------------------------------------

URL = re.compile(rb"listening on (http://127\.0\.0\.1:\d+)")


async def test_reload_watches_python_files_only_and_never_imports_the_app(tmp_path: Path) -> None:
    module = tmp_path / "cli_t_reload.py"

    def version(text: str) -> str:
        return (
            "import sys\n"
            "print('imported by', __import__('os').getpid(), file=sys.stderr, flush=True)\n"
            "from trio_h3 import H3\napp = H3()\n"
            "@app.post('/save')\n"
            "async def save(event):\n"
            "    open(__file__.replace('.py', '.json'), 'w').write('{}')\n"
            "    return 'saved'\n"
            f"app.get('/', lambda event: {text!r})\n"
        )

    module.write_text(version("version 1"))
    argv = [*CLI, "run", "cli_t_reload:app", "--app-dir", str(tmp_path), "--port", "0"]
    argv += ["--reload", "--reload-dir", str(tmp_path), "--no-access-log"]
    async with ServerProcess.start(argv, cwd=str(tmp_path)) as child:
        async with httpx.AsyncClient() as client:
            assert (await client.get(child.url + "/")).text == "version 1"
            # The app writes data beside itself: not a *.py file, no restart (no loop).
            assert (await client.post(child.url + "/save")).text == "saved"
            module.write_text(version("version 2"))
            await child.read_until(re.compile(rb"restarting[\s\S]*listening on"))
            assert b"cli_t_reload.json" not in child.stderr
            url = URL.findall(child.stderr)[-1].decode()
            assert (await client.get(url + "/")).text == "version 2"
            # A broken save: the server fails, the supervisor keeps watching.
            module.write_text("raise ValueError('half-written')\n")
            await child.read_until(b"waiting for a change to restart it")
            assert b"ValueError: half-written" in child.stderr
            module.write_text(version("version 3"))
            await child.read_until(re.compile(rb"half-written[\s\S]*listening on"))
            url = URL.findall(child.stderr)[-1].decode()
            assert (await client.get(url + "/")).text == "version 3"
        child.signal(signal.SIGINT)
        assert await child.wait() == 0
    importers = re.findall(rb"imported by (\d+)", child.stderr)
    assert len(importers) == 3  # once per server start, never by the supervisor
    assert str(child.process.pid).encode() not in importers
    assert b"Traceback" in child.stderr  # the broken version's, shown by the child
