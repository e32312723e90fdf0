"""Upload benchmark: MB/s through form parsing, trio-h3 beside Starlette on Uvicorn (h11).

Three servers, each in its own process pinned to core 0, measured in the same run:

- bare: /work/shared/bench/limit_trio_h11.py, trio + h11 draining the body and parsing
  nothing (the ceiling of the transport);
- trio-h3: bench/upload_app_trio_h3.py, ``await event.form()``;
- Starlette: bench/upload_app_starlette.py, ``await request.form()`` on Uvicorn with
  ``--http h11 --loop asyncio``, from a separate virtual environment (``--venv``,
  created with starlette, uvicorn and python-multipart when missing).

Workloads, sent by this process from core 1 over raw sockets (a pre-built body, written
in 1 MiB pieces, so the client is never the bottleneck):

- ``file``: one ``multipart/form-data`` body holding one file of ``--file-mib`` MiB
  (64 by default), a new connection per upload; MB/s = body bytes / (first byte sent
  -> whole response read);
- ``fields``: a multipart form of ``--fields`` small text fields (1,000), and the same
  form urlencoded (``fields-urlencoded``), ``--field-requests`` requests per sample
  on one keep-alive connection; MB/s and forms/s.

During every sample a second thread sends ``GET /ping`` in a loop on its own keep-alive
connection and records each round trip: the longest says how long the server's event
loop was held (target: trio-h3 under 10 ms). Rounds interleave bare, trio-h3 and
Starlette; medians over rounds; each sample is redone (bounded) when other load ran.

Run: python bench/upload_bench.py [--rounds 5] [--file-mib 64] [--fields 1000]
     python bench/upload_bench.py --file-mib 4 --field-requests 20 --rounds 1 --quick
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import venv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from _harness import (
    BENCH_DIR,
    CLIENT_CORE,
    HOST,
    SERVER_CORE,
    child_env,
    free_port,
    guarded,
    log,
    median,
    pin_self,
    ratio,
    stop_process,
    table,
    trio_h3_available,
    verdict,
    wait_for_port,
    write_json,
)

BARE_SCRIPT = Path("/work/shared/bench/limit_trio_h11.py")
DEFAULT_VENV = Path("/tmp/bench-venv")
STARLETTE_PACKAGES = ["starlette", "uvicorn", "python-multipart"]
BOUNDARY = "----trioh3bench7MA4YWxkTrZu0gW"
PIECE = 1024 * 1024
PING_TARGET_MS = 10.0


# -- servers -------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def start_server(
    name: str, python: str, script: Path, stopped_codes: Sequence[int] = ()
) -> Iterator[Server]:
    """``python script --host --port`` pinned to the server core; always stopped.

    ``stopped_codes``: exit statuses that also mean "stopped by our SIGINT".
    """
    port = free_port()
    log_file = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
    cmd = [
        "taskset",
        "-c",
        str(SERVER_CORE),
        python,
        str(script),
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        cmd,
        env=child_env(),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Server(name, port, proc, Path(log_file.name))
    try:
        try:
            wait_for_port(port, proc)
        except RuntimeError as exc:
            raise RuntimeError(
                f"{name}: {exc}\n{server.log_path.read_text(errors='replace')}"
            ) from exc
        yield server
    finally:
        stop_process(proc)
        log_file.close()
        if proc.returncode in (0, -signal.SIGINT, -signal.SIGKILL, -signal.SIGTERM, *stopped_codes):
            with contextlib.suppress(OSError):
                server.log_path.unlink()
        else:
            log(f"  ({name} exited with {proc.returncode}; log kept at {server.log_path})")


def ensure_venv(path: Path) -> str:
    """The venv's python, with Starlette, Uvicorn and python-multipart (made if missing)."""
    python = path / "bin" / "python"
    probe = "import starlette, uvicorn, python_multipart"
    if (
        python.exists()
        and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0
    ):
        return str(python)
    log(f"creating {path} with {', '.join(STARLETTE_PACKAGES)} (pip)...")
    venv.create(path, with_pip=True, clear=python.exists())
    subprocess.run([python, "-m", "pip", "install", "-q", *STARLETTE_PACKAGES], check=True)
    return str(python)


# -- bodies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    content_type: str
    body: bytes
    requests: int  # per sample, on one keep-alive connection (1: a new connection each)
    expect: dict[str, int]  # the trio-h3 / Starlette answer


def file_workload(mib: int) -> Workload:
    piece = os.urandom(PIECE)
    data = piece * mib
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="title"\r\n\r\nbench\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="blob.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    return Workload(
        "file",
        f"multipart/form-data; boundary={BOUNDARY}",
        body,
        1,
        {"fields": 1, "files": 1, "bytes": len(data)},
    )


def field_workloads(count: int, requests: int) -> list[Workload]:
    pairs = [(f"field{i}", f"value {i}") for i in range(count)]
    part = '--{}\r\nContent-Disposition: form-data; name="{}"\r\n\r\n{}\r\n'
    multipart = (
        b"".join(part.format(BOUNDARY, name, value).encode() for name, value in pairs)
        + f"--{BOUNDARY}--\r\n".encode()
    )
    expect = {"fields": count, "files": 0, "bytes": 0}
    return [
        Workload(
            "fields", f"multipart/form-data; boundary={BOUNDARY}", multipart, requests, expect
        ),
        Workload(
            "fields-urlencoded",
            "application/x-www-form-urlencoded",
            urlencode(pairs).encode(),
            requests,
            expect,
        ),
    ]


# -- the client ------------------------------------------------------------------------------


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    """One response with a Content-Length from ``sock`` (``buffer`` keeps what is past it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"EOF before the response head: {bytes(buffer[:200])!r}")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    del buffer[: end + 4]
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF in the response body")
        buffer += chunk
    body = bytes(buffer[:length])
    del buffer[:length]
    return int(head[0].split()[1]), body


def connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=120)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def post(
    sock: socket.socket, port: int, workload: Workload, buffer: bytearray
) -> tuple[int, bytes]:
    head = (
        f"POST /upload HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: {workload.content_type}\r\nContent-Length: {len(workload.body)}\r\n\r\n"
    ).encode()
    view = memoryview(workload.body)
    if len(view) <= PIECE:
        sock.sendall(head + workload.body)
    else:
        sock.sendall(head)
        for start in range(0, len(view), PIECE):
            sock.sendall(view[start : start + PIECE])
    return read_response(sock, buffer)


class Pinger(threading.Thread):
    """``GET /ping`` in a loop on one keep-alive connection; every round trip, in ms."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.samples: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with connect(self.port) as sock:
                request = f"GET /ping HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n\r\n".encode()
                buffer = bytearray()
                while not self.stop.is_set():
                    start = time.perf_counter()
                    sock.sendall(request)
                    read_response(sock, buffer)
                    self.samples.append((time.perf_counter() - start) * 1000)
                    time.sleep(0.0005)  # ~2,000 probes/s: enough to see any stall
        except BaseException as exc:  # reported by the sample
            self.error = exc


@dataclass
class Sample:
    mb_per_s: float
    requests_per_s: float
    ping_max_ms: float
    ping_p99_ms: float
    pings: int
    other_load: float = 0.0
    statuses: set[int] = field(default_factory=set)


def measure(server: Server, workload: Workload, bare: bool) -> Sample:
    pinger = Pinger(server.port)
    pinger.start()
    time.sleep(0.05)  # the probe is running before the upload starts
    statuses: set[int] = set()
    try:
        start = time.perf_counter()
        if workload.requests == 1:
            with connect(server.port) as sock:
                status, body = post(sock, server.port, workload, bytearray())
                check(server, workload, status, body, bare)
                statuses.add(status)
        else:
            with connect(server.port) as sock:
                buffer = bytearray()
                for _ in range(workload.requests):
                    status, body = post(sock, server.port, workload, buffer)
                    check(server, workload, status, body, bare)
                    statuses.add(status)
        elapsed = time.perf_counter() - start
    finally:
        pinger.stop.set()
        pinger.join(10)
    if pinger.error is not None:
        raise RuntimeError(f"{server.name}: /ping failed: {pinger.error!r}")
    pings = sorted(pinger.samples)
    total = len(workload.body) * workload.requests
    return Sample(
        mb_per_s=total / elapsed / 1e6,
        requests_per_s=workload.requests / elapsed,
        ping_max_ms=pings[-1] if pings else float("nan"),
        ping_p99_ms=pings[min(len(pings) - 1, int(0.99 * len(pings)))] if pings else float("nan"),
        pings=len(pings),
        statuses=statuses,
    )


def check(server: Server, workload: Workload, status: int, body: bytes, bare: bool) -> None:
    if bare:
        return  # the bare server drains the body and answers 404: only the timing counts
    if status != 200 or json.loads(body) != workload.expect:
        raise RuntimeError(f"{server.name} answered {status} {body[:300]!r}, not {workload.expect}")


# -- the run ---------------------------------------------------------------------------------


def run_round(
    servers: Sequence[Server], workloads: Sequence[Workload], quick: bool
) -> dict[tuple[str, str], Sample]:
    results: dict[tuple[str, str], Sample] = {}
    for workload in workloads:
        for server in servers:
            bare = server.name == "bare"
            job: Callable[[], Sample] = lambda s=server, w=workload, b=bare: measure(s, w, b)  # noqa: E731
            if quick:
                sample, other = job(), float("nan")
            else:
                sample, other = guarded(job, server.pid)
            sample.other_load = other
            results[(workload.name, server.name)] = sample
            log(
                f"  {workload.name:<18} {server.name:<9} {sample.mb_per_s:8.1f} MB/s "
                f"{sample.requests_per_s:8.1f} req/s  ping max {sample.ping_max_ms:6.2f} ms "
                f"p99 {sample.ping_p99_ms:5.2f} ms ({sample.pings} pings, other load {other:.2f})"
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--file-mib", type=int, default=64)
    parser.add_argument("--fields", type=int, default=1000)
    parser.add_argument("--field-requests", type=int, default=200)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--quick", action="store_true", help="no waiting for a quiet machine")
    parser.add_argument("--json", help="write the raw samples here")
    args = parser.parse_args()
    pin_self(CLIENT_CORE)

    ok, where = trio_h3_available()
    if not ok:
        log(f"trio-h3 does not import ({where}): nothing to compare")
        return 1
    log(f"trio-h3 from {where}")
    starlette_python = ensure_venv(args.venv)
    workloads = [file_workload(args.file_mib), *field_workloads(args.fields, args.field_requests)]
    for workload in workloads:
        log(f"workload {workload.name}: {len(workload.body):,} bytes x {workload.requests}")

    rounds: list[dict[tuple[str, str], Sample]] = []
    with contextlib.ExitStack() as stack:
        servers = [
            # Its KeyboardInterrupt leaves trio.run inside an exception group: status 1.
            stack.enter_context(start_server("bare", sys.executable, BARE_SCRIPT, (1,))),
            stack.enter_context(
                start_server("trio-h3", sys.executable, BENCH_DIR / "upload_app_trio_h3.py")
            ),
            stack.enter_context(
                start_server("starlette", starlette_python, BENCH_DIR / "upload_app_starlette.py")
            ),
        ]
        log("warm-up")
        run_round(servers, workloads, quick=True)
        for index in range(args.rounds):
            log(f"round {index + 1}/{args.rounds}")
            rounds.append(run_round(servers, workloads, args.quick))

    rows = []
    names = ("bare", "trio-h3", "starlette")
    for workload in workloads:
        samples = {s: [r[(workload.name, s)] for r in rounds] for s in names}
        mbs = {s: median([x.mb_per_s for x in samples[s]]) for s in names}
        rps = {s: median([x.requests_per_s for x in samples[s]]) for s in names}
        # The longest stall of all rounds, not a median: one stall is one too many.
        ping = {s: max(x.ping_max_ms for x in samples[s]) for s in names}
        versus = ratio(mbs["trio-h3"], mbs["starlette"])
        stall = verdict(ping["trio-h3"], PING_TARGET_MS, higher_is_better=False)
        rows.append(
            [
                workload.name,
                f"{mbs['bare']:.1f}",
                f"{mbs['trio-h3']:.1f} ({rps['trio-h3']:.1f}/s)",
                f"{mbs['starlette']:.1f} ({rps['starlette']:.1f}/s)",
                f"{versus:.2f}x {verdict(versus, 1.0)}",
                f"{ping['trio-h3']:.2f} {stall}",
                f"{ping['starlette']:.2f}",
                f"{ping['bare']:.2f}",
            ]
        )
    log("")
    log(
        table(
            [
                "workload",
                "bare MB/s",
                "trio-h3 MB/s",
                "Starlette MB/s",
                "trio-h3/Starlette (>= 1.0)",
                "trio-h3 ping max ms (< 10)",
                "Starlette ping max ms",
                "bare ping max ms",
            ],
            rows,
        )
    )
    write_json(
        args.json,
        [
            {
                f"{w}/{s}": vars(sample) | {"statuses": sorted(sample.statuses)}
                for (w, s), sample in r.items()
            }
            for r in rounds
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
