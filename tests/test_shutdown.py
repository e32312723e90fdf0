"""Shutdown has hard bounds, whatever app code does (a real process, real signals).

- a clean graceful shutdown exits 0, after the lifespan's exit;
- a task that shields itself, or swallows ``Cancelled`` in a loop, cannot keep the
  process alive past ``shutdown_timeout`` + HARD_EXIT_MARGIN: it exits 128 + signal,
  saying what was still running;
- a second signal exits at once (130 SIGINT, 143 SIGTERM), even with the event loop
  blocked by app code, and even after ``shutdown_timeout`` (the receiver lives on).
"""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest
import trio
from helpers import ServerProcess, open_connection, read_until, request_bytes

from trio_h3.server.serve import HARD_EXIT_MARGIN

pytestmark = pytest.mark.slow

SHUTDOWN_TIMEOUT = 1.0

SCRIPT = """
import sys, time
import trio
from trio_h3 import H3, ServeOptions, SSEWriter, serve

app = H3()

@app.lifespan
async def lifespan(nursery):
    yield
    print("lifespan exited", file=sys.stderr, flush=True)
    {lifespan_exit}

async def stream(writer: SSEWriter) -> None:
    await writer.send("started")
    {stream_body}

@app.get("/stream")
async def route(event):
    event.start_sse()
    event.set_stream_callback(stream)

trio.run(serve, app, ServeOptions(port=0, shutdown_timeout={timeout}, stream_shutdown_grace=0.2))
"""


async def run_script(
    tmp_path: Path,
    *,
    stream_body: str = "await trio.sleep_forever()",
    lifespan_exit: str = "",
    signals: list[tuple[int, bytes]],
) -> tuple[int, bytes, float]:
    """Start the server, open a stream, send ``signals`` (each after its stderr marker)."""
    script = tmp_path / "server.py"
    script.write_text(
        SCRIPT.format(
            stream_body=textwrap.indent(textwrap.dedent(stream_body), " " * 4).strip(),
            lifespan_exit=lifespan_exit,
            timeout=SHUTDOWN_TIMEOUT,
        )
    )
    async with ServerProcess.start([sys.executable, str(script)]) as child:
        connection = await open_connection(child.port)
        await connection.send_all(request_bytes("GET", "/stream"))
        await read_until(connection, b"started")
        start = trio.current_time()
        for signum, marker in signals:
            await child.read_until(marker)
            child.signal(signum)
        with trio.fail_after(SHUTDOWN_TIMEOUT + HARD_EXIT_MARGIN + 10):
            code = await child.wait()
        return code, bytes(child.stderr), trio.current_time() - start


async def test_a_clean_shutdown_exits_0_after_the_lifespan(tmp_path: Path) -> None:
    code, stderr, _ = await run_script(tmp_path, signals=[(signal.SIGTERM, b"listening")])
    assert code == 0, stderr
    assert b"lifespan exited" in stderr
    assert b"Traceback" not in stderr


@pytest.mark.parametrize(
    "stream_body",
    [
        # Cleanup that shields itself for 45 s.
        """
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(45)
        """,
        # A loop that swallows every Cancelled.
        """
        while True:
            try:
                await trio.sleep(1)
            except trio.Cancelled:
                pass
        """,
    ],
    ids=["shielded-cleanup", "swallows-cancelled"],
)
async def test_app_code_that_ignores_cancellation_cannot_hold_the_process(
    tmp_path: Path, stream_body: str
) -> None:
    code, stderr, elapsed = await run_script(
        tmp_path, stream_body=stream_body, signals=[(signal.SIGTERM, b"listening")]
    )
    assert code == 128 + signal.SIGTERM, stderr
    assert b"shutdown did not finish within shutdown_timeout" in stderr
    assert b"still running (1): " in stderr and b"GET /stream" in stderr
    # Left at the deadline, not 45 s later (a bound for a real process, not a timing test).
    assert elapsed < SHUTDOWN_TIMEOUT + HARD_EXIT_MARGIN + 5


async def test_a_second_signal_exits_at_once_even_with_the_loop_blocked(tmp_path: Path) -> None:
    code, stderr, elapsed = await run_script(
        tmp_path,
        stream_body="""
        await writer.shutting_down.wait()
        print("blocking the loop", file=sys.stderr, flush=True)
        time.sleep(60)  # app code that blocks the event loop
        """,
        signals=[(signal.SIGTERM, b"listening"), (signal.SIGTERM, b"blocking the loop")],
    )
    assert code == 128 + signal.SIGTERM, stderr
    assert b"second signal (SIGTERM): exiting now" in stderr
    assert elapsed < 30  # not the 60 s the loop was blocked for


async def test_a_signal_after_shutdown_timeout_is_still_ours(tmp_path: Path) -> None:
    # The lifespan's exit runs past shutdown_timeout; a signal then is handled by the
    # server (a forced exit that says so), never the default disposition.
    code, stderr, _ = await run_script(
        tmp_path,
        stream_body="await trio.sleep_forever()",
        lifespan_exit="time.sleep(0.1); await trio.sleep(30)",
        signals=[(signal.SIGINT, b"listening"), (signal.SIGINT, b"lifespan exited")],
    )
    assert code == 128 + signal.SIGINT, stderr
    assert b"second signal (SIGINT): exiting now" in stderr
    assert b"Traceback" not in stderr
