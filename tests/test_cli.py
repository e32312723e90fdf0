"""The ``trio-h3`` command: a real subprocess for serving, import_app in-process."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from helpers import open_connection, read_until, request_bytes

from trio_h3 import H3
from trio_h3.cli import main
from trio_h3.cli.loader import AppImportError, import_app

REPO = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(rb"listening on (http://127\.0\.0\.1:(\d+))")
TIMEOUT = 20


async def start_cli(*args: str) -> trio.Process:
    """``python -m trio_h3 run *args`` from the repository root, stderr piped."""
    return await trio.lowlevel.open_process(
        [sys.executable, "-m", "trio_h3", "run", *args], cwd=str(REPO), stderr=subprocess.PIPE
    )


async def read_url(process: trio.Process, seen: bytearray) -> str:
    """Read the child's stderr until it announces its URL."""
    assert process.stderr is not None
    while True:
        chunk = await process.stderr.receive_some(4096)
        if not chunk:
            raise AssertionError(f"exited before listening: {bytes(seen)!r}")
        seen += chunk
        match = URL_LINE.search(seen)
        if match:
            return match.group(1).decode()


async def serve_and_stop(args: list[str], path: str, expected: str) -> bytes:
    """Run the CLI with ``args``, GET ``path``, SIGINT it; return everything on stderr."""
    seen = bytearray()
    with trio.fail_after(TIMEOUT):
        process = await start_cli(*args)
        try:
            url = await read_url(process, seen)
            async with httpx.AsyncClient(base_url=url) as client:
                r = await client.get(path)
                assert r.status_code == 200
                assert r.text == expected
            process.send_signal(signal.SIGINT)
            assert process.stderr is not None
            while chunk := await process.stderr.receive_some(4096):
                seen += chunk
            code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert code == 0, bytes(seen)  # a clean graceful shutdown
    assert b"Traceback" not in seen
    # Nothing was left to wait for: the server did not sit out its shutdown_timeout.
    assert b"shutdown_timeout" not in seen
    return bytes(seen)


@pytest.mark.slow
async def test_run_prints_the_url_serves_and_stops_on_sigint() -> None:
    output = await serve_and_stop(["examples.hello:app", "--port", "0"], "/", "Hello from trio-h3!")
    assert b"trio-h3 listening on http://127.0.0.1:" in output
    assert b"graceful shutdown" in output
    # The access log is on by default.
    assert b'"GET / HTTP/1.1" 200' in output


@pytest.mark.slow
async def test_run_without_access_log() -> None:
    output = await serve_and_stop(
        ["examples.hello:app", "--port", "0", "--no-access-log"], "/", "Hello from trio-h3!"
    )
    assert b"GET /" not in output


@pytest.mark.slow
async def test_run_with_factory_and_app_dir(tmp_path: Path) -> None:
    (tmp_path / "cli_factory_mod.py").write_text(
        "from trio_h3 import H3\n"
        "def create_app():\n"
        "    app = H3()\n"
        "    app.get('/', lambda event: 'from the factory')\n"
        "    return app\n"
    )
    await serve_and_stop(
        [
            "cli_factory_mod:create_app",
            "--factory",
            "--app-dir",
            str(tmp_path),
            "--port",
            "0",
        ],
        "/",
        "from the factory",
    )


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_h3", *args],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:app", "could not import module 'no_such_module_xyz'"),
        ("examples.hello:nope", "has no attribute 'nope'"),
        ("examples.hello", "expected MODULE:ATTR"),
        ("examples.hello:", "expected MODULE:ATTR"),
        ("examples.hello:index", "not an H3 app (use --factory"),
        ("examples.hello:app --factory", "is not callable"),
    ],
)
def test_bad_app_spec_is_a_one_line_error(spec: str, message: str) -> None:
    result = run_cli("run", *spec.split(), "--port", "0")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trio-h3: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_port_in_use_is_a_one_line_error_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", "examples.hello:app", "--port", str(port))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"trio-h3: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


@pytest.mark.slow
def test_a_missing_certificate_or_key_is_named(tmp_path: Path) -> None:
    result = run_cli("run", "examples.hello:app", "--ssl-certfile", "nope-cert.pem")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "trio-h3: error: cannot read the TLS certificate file 'nope-cert.pem': "
        "No such file or directory"
    )
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    result = run_cli(
        "run", "examples.hello:app", "--ssl-certfile", str(cert), "--ssl-keyfile", "nope-key.pem"
    )
    assert result.returncode == 1
    assert "cannot read the TLS key file 'nope-key.pem'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_key_without_a_certificate_is_refused() -> None:
    result = run_cli("run", "examples.hello:app", "--ssl-keyfile", "key.pem")
    assert result.returncode == 1
    assert "invalid options: ssl_keyfile needs ssl_certfile" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_usage_errors_exit_2() -> None:
    result = run_cli("serve", "examples.hello:app")
    assert result.returncode == 2
    assert "usage: trio-h3" in result.stderr


# -- import_app in-process -------------------------------------------------------------------


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo import_app's sys.path and sys.modules changes after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("ia_"):
            del sys.modules[name]


def test_import_app_finds_the_app(isolated_imports: None) -> None:
    app = import_app("examples.hello:app", app_dir=str(REPO))
    assert isinstance(app, H3)
    from examples.hello import app as hello_app

    assert app is hello_app


def test_import_app_dotted_attribute_and_factory(tmp_path: Path, isolated_imports: None) -> None:
    (tmp_path / "ia_module.py").write_text(
        "from trio_h3 import H3\n"
        "class Holder:\n"
        "    app = H3()\n"
        "def make():\n"
        "    return H3(debug=True)\n"
        "not_an_app = 42\n"
    )
    held = import_app("ia_module:Holder.app", app_dir=str(tmp_path))
    assert isinstance(held, H3)
    made = import_app("ia_module:make", app_dir=str(tmp_path), factory=True)
    assert made.debug is True
    with pytest.raises(AppImportError, match="use --factory"):
        import_app("ia_module:make", app_dir=str(tmp_path))
    with pytest.raises(AppImportError, match="is a int, not an H3 app"):
        import_app("ia_module:not_an_app", app_dir=str(tmp_path))
    with pytest.raises(AppImportError, match=r"has no attribute 'Holder\.nope'"):
        import_app("ia_module:Holder.nope", app_dir=str(tmp_path))


def test_import_app_lets_a_broken_module_show_its_own_error(
    tmp_path: Path, isolated_imports: None
) -> None:
    # A missing dependency *inside* the app is the user's bug: it is not disguised as
    # "could not import module".
    (tmp_path / "ia_broken.py").write_text("import ia_dependency_that_is_missing\n")
    with pytest.raises(ModuleNotFoundError, match="ia_dependency_that_is_missing"):
        import_app("ia_broken:app", app_dir=str(tmp_path))


def test_main_returns_1_for_a_bad_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no_such_module_xyz:app"]) == 1
    assert capsys.readouterr().err.startswith("trio-h3: error: could not import module")


@pytest.mark.slow
async def test_reload_restarts_on_a_file_change(tmp_path: Path) -> None:
    module = tmp_path / "cli_reload_mod.py"
    module.write_text(
        "from trio_h3 import H3\napp = H3()\napp.get('/', lambda event: 'version 1')\n"
    )
    seen = bytearray()
    with trio.fail_after(TIMEOUT * 2):
        process = await start_cli(
            "cli_reload_mod:app",
            "--app-dir",
            str(tmp_path),
            "--port",
            "0",
            "--reload",
            "--no-access-log",
        )
        try:
            url = await read_url(process, seen)
            async with httpx.AsyncClient() as client:
                assert (await client.get(url + "/")).text == "version 1"
            module.write_text(
                "from trio_h3 import H3\napp = H3()\napp.get('/', lambda event: 'version 2')\n"
            )
            # The restarted child announces itself again (port 0: a new port).
            assert process.stderr is not None
            while len(URL_LINE.findall(seen)) < 2:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, bytes(seen)
                seen += chunk
            url = URL_LINE.findall(seen)[-1][0].decode()
            assert b"restarting" in seen
            async with httpx.AsyncClient() as client:
                assert (await client.get(url + "/")).text == "version 2"
            process.send_signal(signal.SIGINT)
            await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


@pytest.mark.slow
async def test_sigterm_is_graceful_and_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    (tmp_path / "cli_slow_mod.py").write_text(
        "import trio\n"
        "from trio_h3 import H3, StreamingResponse\n"
        "app = H3()\n"
        "@app.get('/slow')\n"
        "async def slow(event):\n"
        "    async def body():\n"
        "        yield 'started\\n'\n"
        "        await trio.sleep(60)\n"
        "    return StreamingResponse(body())\n"
    )
    seen = bytearray()
    with trio.fail_after(TIMEOUT):
        process = await start_cli("cli_slow_mod:app", "--app-dir", str(tmp_path), "--port", "0")
        try:
            url = await read_url(process, seen)
            port = int(url.rsplit(":", 1)[1])
            # A request in flight keeps the graceful shutdown waiting (up to 10 s)...
            in_flight = await open_connection(port)
            await in_flight.send_all(request_bytes("GET", "/slow"))
            await read_until(in_flight, b"started")  # the request is being served
            process.send_signal(signal.SIGTERM)
            assert process.stderr is not None
            while b"graceful shutdown" not in seen:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, bytes(seen)
                seen += chunk
            # ...new connections are refused at once: the line above is logged only once
            # the listeners are closed.
            with pytest.raises(OSError):
                await open_connection(port)
            assert process.returncode is None
            # ...and a second signal cancels what is left without waiting: the server
            # says so, and never reaches its shutdown_timeout (10 s, within the 20 s
            # bound on this test), which it would log.
            process.send_signal(signal.SIGINT)
            while chunk := await process.stderr.receive_some(4096):
                seen += chunk
            code = await process.wait()
            await in_flight.aclose()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert code == 130, bytes(seen)  # 128 + SIGINT: a forced exit
    assert b"second signal (SIGINT): exiting now" in seen
    assert b"still running (1): " in seen and b"GET /slow" in seen
    assert b"shutdown_timeout" not in seen
    assert b"Traceback" not in seen
