"""What one keep-alive request costs a server: instructions (callgrind) and CPU time.

Wall-clock throughput on a shared 2-core machine is noisy; the instructions a server
executes per request are not (valgrind counts them whatever else runs), and its CPU
time per request much less so than its req/s. So this drives each server with the same
fixed workload, one keep-alive connection, one request at a time (wrk's request bytes),
from this process on the other core, and reports per request:

- ``instr``: user-space instructions of the server process (``valgrind --tool=callgrind``),
  by difference: run k sends the warm-up plus N requests to each of the first k routes,
  so a route costs ``(I[k+1] - I[k]) / N`` and start-up, warm-up and shutdown cancel out;
- ``cpu us``: the server's CPU time (``/proc/PID/stat``) over N requests after a warm-up,
  natively (no valgrind), so it includes the kernel's share of the syscalls;
- ``syscalls``: with ``--syscalls``, the server's system calls per request (strace -c).

``--connections 64`` keeps 64 connections busy, one request outstanding on each, as
``wrk -c64`` does: a saturated server then finds the next request already waiting on
most sockets, which is the regime the wrk benchmark measures.

Servers: ``bare`` (the shared limit server, ``/work/shared/bench/limit_trio_h11.py``),
``h11`` and ``httptools`` (``bench/app_trio_h3.py --http ...``), and ``uvicorn``
(Starlette on Uvicorn with httptools and uvloop, from ``--venv``; skipped when that
venv lacks them). ``--profile NAME`` runs one server under cProfile instead and prints
where its time goes.

Run: python bench/cost_per_request.py [--servers bare,h11,httptools,uvicorn]
     [--routes /,/users/42] [--requests 2000] [--no-instructions] [--syscalls]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _harness import (
    BENCH_DIR,
    CLIENT_CORE,
    HOST,
    SERVER_CORE,
    child_env,
    free_port,
    log,
    pin_self,
    proc_cpu_seconds,
    stop_process,
    table,
    wait_for_port,
)

LIMIT_SERVER = "/work/shared/bench/limit_trio_h11.py"
DEFAULT_VENV = "/tmp/bench-venv"


@dataclass(frozen=True)
class ServerSpec:
    name: str
    argv: tuple[str, ...]

    def command(self, port: int) -> list[str]:
        return [*self.argv, "--host", HOST, "--port", str(port)]


def specs(venv: str) -> dict[str, ServerSpec]:
    app = str(BENCH_DIR / "app_trio_h3.py")
    return {
        "bare": ServerSpec("bare", (sys.executable, LIMIT_SERVER)),
        "h11": ServerSpec("h11", (sys.executable, app, "--http", "h11")),
        "httptools": ServerSpec("httptools", (sys.executable, app, "--http", "httptools")),
        # Calibration only: the least a trio + httptools server can do (no framework).
        "floor": ServerSpec("floor", (sys.executable, str(BENCH_DIR / "floor_httptools.py"))),
        "uvicorn": ServerSpec(
            "uvicorn", (f"{venv}/bin/python", str(BENCH_DIR / "app_starlette_http.py"))
        ),
    }


def uvicorn_available(venv: str) -> bool:
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        return False
    probe = "import starlette, uvicorn, httptools, uvloop"
    return (
        subprocess.run([str(python), "-c", probe], capture_output=True, check=False).returncode == 0
    )


# -- the client: one keep-alive connection, one request at a time -------------------------


class Client:
    """wrk's request bytes over one blocking socket; each response read to its end."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection((HOST, port), timeout=600)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def get(self, path: str) -> tuple[int, bytes]:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n\r\n".encode())
        data = self.buffer
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, _, rest = data.partition(b"\r\n\r\n")
        match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if match is None:
            raise AssertionError(f"no Content-Length in {head!r}")
        length = int(match.group(1))
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return int(head.split(b" ", 2)[1]), rest[:length]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def run(self, path: str, count: int) -> None:
        for _ in range(count):
            status, _ = self.get(path)
            if status != 200:
                raise AssertionError(f"GET {path}: {status}")

    def close(self) -> None:
        self.sock.close()


class Clients:
    """``count`` keep-alive connections, each with one request outstanding (wrk's pattern):
    a busy server finds requests waiting on many sockets at once."""

    def __init__(self, port: int, count: int) -> None:
        self.clients = [Client(port) for _ in range(count)]

    def run(self, path: str, total: int) -> None:
        import selectors

        selector = selectors.DefaultSelector()
        request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.clients[0].port}\r\n\r\n".encode()
        pending: dict[int, bytes] = {}
        sent = done = 0
        for client in self.clients[: min(total, len(self.clients))]:
            client.sock.sendall(request)
            sent += 1
            pending[client.sock.fileno()] = b""
            selector.register(client.sock, selectors.EVENT_READ, client)
        while done < total:
            for key, _ in selector.select(timeout=600):
                client = key.data
                fd = client.sock.fileno()
                data = pending[fd] + client._recv()
                while True:
                    end = data.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", data[:end])
                    assert match is not None and data.startswith(b"HTTP/1.1 200"), data[:200]
                    stop = end + 4 + int(match.group(1))
                    if len(data) < stop:
                        break
                    data = data[stop:]
                    done += 1
                    if sent < total:
                        client.sock.sendall(request)
                        sent += 1
                pending[fd] = data
        selector.close()

    def close(self) -> None:
        for client in self.clients:
            client.close()


def connect(port: int, connections: int) -> Client | Clients:
    return Client(port) if connections == 1 else Clients(port, connections)


def start(
    argv: list[str], port: int, log_path: Path, *, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CORE), *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for_port(port, proc, timeout=300)
    except RuntimeError as exc:
        stop_process(proc)
        raise RuntimeError(f"{exc}\n{log_path.read_text(errors='replace')[-2000:]}") from exc
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        stop_process(proc, grace=1)


def deterministic_env() -> dict[str, str]:
    env = child_env()
    env["PYTHONHASHSEED"] = "0"
    return env


# -- instructions ------------------------------------------------------------------------


def callgrind_run(
    spec: ServerSpec,
    routes: Sequence[str],
    warmup: int,
    count: int,
    workdir: Path,
    connections: int,
) -> int:
    """Instructions of one server run: warm-up, then ``count`` requests to each route."""
    port = free_port()
    out = workdir / f"callgrind.{spec.name}.{len(routes)}.out"
    argv = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no",
        "--dump-line=no", "--compress-strings=no", "--trace-children=no", *spec.command(port),
    ]  # fmt: skip
    proc = start(argv, port, workdir / f"{spec.name}.log", env=deterministic_env())
    try:
        client = connect(port, connections)
        for path in ROUTES_FOR_WARMUP:
            client.run(path, warmup)
        for path in routes:
            client.run(path, count)
        client.close()
    finally:
        stop(proc, grace=120)
    text = out.read_text(errors="replace")
    match = re.search(r"^(?:totals|summary):\s*(\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no totals in {out}")
    return int(match.group(1))


ROUTES_FOR_WARMUP: list[str] = []


def instructions(
    spec: ServerSpec, routes: Sequence[str], warmup: int, count: int, connections: int
) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="cost-") as tmp:
        totals = [
            callgrind_run(spec, routes[:k], warmup, count, Path(tmp), connections)
            for k in range(len(routes) + 1)
        ]
    return [(totals[k + 1] - totals[k]) / count for k in range(len(routes))]


# -- CPU time ----------------------------------------------------------------------------


def cpu_and_syscalls(
    spec: ServerSpec,
    routes: Sequence[str],
    warmup: int,
    count: int,
    syscalls: bool,
    connections: int,
) -> tuple[list[float], list[float], list[float]]:
    """CPU us/request and client-seen requests/s per route; syscalls/request if asked."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cost-") as tmp:
        proc = start(spec.command(port), port, Path(tmp) / "server.log", env=deterministic_env())
        cpu: list[float] = []
        rates: list[float] = []
        calls: list[float] = []
        try:
            client = connect(port, connections)
            for path in routes:
                client.run(path, warmup)
            for path in routes:
                before = proc_cpu_seconds(proc.pid)
                started = time.perf_counter()
                client.run(path, count)
                elapsed = time.perf_counter() - started
                cpu.append((proc_cpu_seconds(proc.pid) - before) * 1e6 / count)
                rates.append(count / elapsed)
            if syscalls and shutil.which("strace"):
                for path in routes:
                    calls.append(strace_count(proc.pid, client, path, min(count, 2000), Path(tmp)))
            client.close()
        finally:
            stop(proc, grace=10)
    return cpu, rates, calls


def strace_count(pid: int, client: Client | Clients, path: str, count: int, tmp: Path) -> float:
    out = tmp / "strace.txt"
    tracer = subprocess.Popen(
        ["strace", "-c", "-f", "-p", str(pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # attached
    client.run(path, count)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)
    match = re.search(r"^-+.*\n\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)", out.read_text(), re.MULTILINE)
    total = re.findall(r"^\s*100\.00\s+[\d.]+\s+\d+\s+(\d+)", out.read_text(), re.MULTILINE)
    calls = int(total[-1]) if total else int(match.group(1)) if match else 0
    return calls / count


# -- cProfile ----------------------------------------------------------------------------


def profile(
    spec: ServerSpec, path: str, warmup: int, count: int, top: int, connections: int
) -> None:
    import pstats

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cost-") as tmp:
        stats = Path(tmp) / "profile.out"
        python, script, *rest = spec.argv
        argv = [python, "-m", "cProfile", "-o", str(stats), script, *rest, "--host", HOST]
        argv += ["--port", str(port)]
        proc = start(argv, port, Path(tmp) / "server.log", env=deterministic_env())
        try:
            client = connect(port, connections)
            client.run(path, warmup + count)
            client.close()
        finally:
            stop(proc, grace=30)
        report = pstats.Stats(str(stats))
        report.sort_stats("tottime").print_stats(top)
        if os.environ.get("COST_PROFILE_SAVE"):
            shutil.copy(stats, os.environ["COST_PROFILE_SAVE"])
        report.sort_stats("cumulative").print_stats(top)


# -- main --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="bare,h11,httptools,uvicorn")
    parser.add_argument("--routes", default="/,/users/42")
    parser.add_argument("--requests", type=int, default=2000, help="per route, under valgrind")
    parser.add_argument("--cpu-requests", type=int, default=20000, help="per route, natively")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument(
        "--connections",
        type=int,
        default=1,
        help="keep-alive connections, one request outstanding on each (64: wrk's -c64)",
    )
    parser.add_argument("--no-instructions", action="store_true")
    parser.add_argument("--no-cpu", action="store_true")
    parser.add_argument("--syscalls", action="store_true", help="also count syscalls (strace)")
    parser.add_argument("--venv", default=DEFAULT_VENV, help="Starlette + Uvicorn venv")
    parser.add_argument("--profile", metavar="SERVER", help="cProfile one server and stop")
    parser.add_argument("--top", type=int, default=35)
    args = parser.parse_args()

    pin_self(CLIENT_CORE)
    routes = args.routes.split(",")
    ROUTES_FOR_WARMUP[:] = routes
    all_specs = specs(args.venv)
    names = args.servers.split(",")
    if "uvicorn" in names and not uvicorn_available(args.venv):
        log(f"uvicorn skipped: {args.venv} lacks starlette, uvicorn, httptools or uvloop")
        names.remove("uvicorn")
    if args.profile:
        profile(
            all_specs[args.profile],
            routes[0],
            args.warmup,
            args.cpu_requests,
            args.top,
            args.connections,
        )
        return 0
    if not args.no_instructions and shutil.which("valgrind") is None:
        log("valgrind not found: instructions skipped")
        args.no_instructions = True

    rows = []
    for name in names:
        spec = all_specs[name]
        instr = [float("nan")] * len(routes)
        if not args.no_instructions:
            log(f"{name}: callgrind, {len(routes) + 1} runs of {args.requests} requests/route")
            instr = instructions(spec, routes, args.warmup, args.requests, args.connections)
        cpu, rates, calls = [float("nan")] * len(routes), [float("nan")] * len(routes), []
        if not args.no_cpu:
            log(f"{name}: CPU time over {args.cpu_requests} requests/route")
            cpu, rates, calls = cpu_and_syscalls(
                spec, routes, args.warmup, args.cpu_requests, args.syscalls, args.connections
            )
        for index, path in enumerate(routes):
            row = [
                name,
                f"GET {path}",
                f"{instr[index]:,.0f}",
                f"{cpu[index]:.1f}",
                f"{rates[index]:,.0f}",
            ]
            if args.syscalls:
                row.append(f"{calls[index]:.1f}" if index < len(calls) else "n/a")
            rows.append(row)
        log(table(_headers(args.syscalls), rows[-len(routes) :]))
    log("")
    log(
        f"per request, {args.connections} keep-alive connection(s) (server on core "
        f"{SERVER_CORE}, client on core {CLIENT_CORE}); instr: callgrind, by difference; "
        "cpu: /proc/PID/stat"
    )
    log(table(_headers(args.syscalls), rows))
    bare = {row[1]: row for row in rows if row[0] == "bare"}
    for row in rows:
        if row[0] != "bare" and row[1] in bare and row[2] != "nan":
            ratio = float(bare[row[1]][2].replace(",", "")) / float(row[2].replace(",", ""))
            log(f"  {row[0]:10} {row[1]:14} bare/this instructions = {ratio:.2f}x")
    return 0


def _headers(syscalls: bool) -> list[str]:
    headers = ["server", "route", "instr/req", "cpu us/req", "req/s (1 conn)"]
    return [*headers, "syscalls/req"] if syscalls else headers


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
