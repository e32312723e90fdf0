"""Run Autobahn|Testsuite's fuzzingclient cases (via kosoku) against the echo example.

``python tests/autobahn/run.py [--parallelism N] [--include 1.*] [--exclude 12.*]
[--outdir DIR]``

Starts ``examples/websocket_echo.py`` on a free loopback port with the keepalive ping
off (Autobahn ends a case on an unprompted ping) and a 64 MiB message limit (the 9.x
cases send 16 MiB), runs every case with kosoku, reads Autobahn's ``index.json`` report
and prints the OK / NON-STRICT / INFORMATIONAL / UNIMPLEMENTED / FAILED counts.
Exit status 1 if any case FAILED (or could not run), or a closing handshake failed.
The permessage-deflate cases (12.x and 13.x, 216 of them) run too: trio-h3 negotiates
the extension by default. They are most of the run's time (each sends 1000 compressed
messages, up to 128 KiB, some in 256-byte fragments); ``--exclude '12.*' --exclude
'13.*'`` leaves the protocol cases, a few seconds.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BAD_BEHAVIOR = {"FAILED", "ERROR"}
BAD_CLOSE = {"FAILED", "UNCLEAN", "WRONG CODE", "FAILED BY CLIENT"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(process: subprocess.Popen[bytes], timeout: float = 15.0) -> bytes:
    """Read the server's stderr until it announces its URL; return what it printed.

    Event-driven (the announcement comes once the socket is listening), bounded by
    ``timeout`` in case the server hangs without printing.
    """
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while b"listening on" not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise RuntimeError("echo server did not start listening")
            chunk = os.read(process.stderr.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"echo server exited with {process.wait()}: {seen!r}")
            seen += chunk
    return seen


def summarise(outdir: Path) -> tuple[collections.Counter[str], list[str]]:
    """Counts of each behaviour, and the case ids that failed, from Autobahn's index.json."""
    index = json.loads((outdir / "index.json").read_text())
    counts: collections.Counter[str] = collections.Counter()
    failed: list[str] = []
    for cases in index.values():
        for case_id, result in cases.items():
            counts[result["behavior"]] += 1
            if result["behavior"] in BAD_BEHAVIOR or result["behaviorClose"] in BAD_CLOSE:
                failed.append(f"{case_id} {result['behavior']} / {result['behaviorClose']}")
    return counts, failed


def find_kosoku() -> str | None:
    """kosoku beside this interpreter first, then on PATH.

    A venv's scripts sit beside its python, and ``venv/bin/python -m pytest`` finds them
    there even when the venv is not activated (so its bin is not on PATH). Not resolved:
    a venv's python is often a link to the base interpreter, whose bin has no kosoku.
    """
    return shutil.which("kosoku", path=str(Path(sys.executable).parent)) or shutil.which("kosoku")


def run(
    parallelism: int = 8,
    include: list[str] | None = None,
    outdir: Path | None = None,
    exclude: list[str] | None = None,
) -> int:
    kosoku = find_kosoku()
    if kosoku is None:
        print("kosoku is not installed: pip install kosoku", file=sys.stderr)
        return 2
    port = free_port()
    env = {**os.environ, "TRIO_H3_WS_PING": "0", "TRIO_H3_WS_MAX_SIZE": str(64 << 20)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "websocket_echo.py"), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    report_dir = outdir or Path(tempfile.mkdtemp(prefix="autobahn-"))
    announced = b""
    try:
        announced = wait_listening(server)
        command = [kosoku, f"127.0.0.1:{port}", "-p", str(parallelism), "-o", str(report_dir)]
        for pattern in include or []:
            command += ["-i", pattern]
        for pattern in exclude or []:
            command += ["-x", pattern]
        # kosoku exits 1 when a case fails; the report is written either way.
        subprocess.run(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=600,
            check=False,
        )
    finally:
        server.terminate()
        try:
            _out, err = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            _out, err = server.communicate()
    counts, failed = summarise(report_dir)
    order = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR"]
    summary = " ".join(f"{name}={counts.get(name, 0)}" for name in order)
    print(summary, f"total={sum(counts.values())}")
    print(f"report: {report_dir}/index.html")
    err = announced + (err or b"")
    if b"Traceback" in err:
        print("the echo server logged a traceback:\n" + err.decode(errors="replace"))
        failed.append("server traceback")
    for line in failed:
        print("FAILED", line)
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallelism", "-p", type=int, default=8)
    parser.add_argument("--include", "-i", action="append")
    parser.add_argument("--exclude", "-x", action="append")
    parser.add_argument("--outdir", "-o", type=Path)
    args = parser.parse_args()
    raise SystemExit(run(args.parallelism, args.include, args.outdir, args.exclude))


if __name__ == "__main__":
    main()
