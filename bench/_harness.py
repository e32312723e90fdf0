"""Shared helpers for the benchmark scripts: server subprocesses, pinning, limits, stats.

Nothing here is timed; it only starts and stops things so that every benchmark compares
trio-h3 with a bare reference server in the same run, on the same cores.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
HOST = "127.0.0.1"
SERVER_CORE = 0
CLIENT_CORE = 1
T = TypeVar("T")


def log(message: str) -> None:
    print(message, flush=True)


def pin_self(core: int = CLIENT_CORE) -> None:
    """Pin the calling process (the load generator / measuring client) to one core."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {core})


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE as far as allowed (children inherit it); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target_hard = hard if hard == resource.RLIM_INFINITY or hard >= wanted else wanted
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, target_hard))
        return wanted
    new_soft = hard if hard != resource.RLIM_INFINITY else wanted
    resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    return new_soft


TRIO_H3_PROBE = (
    "from trio_h3 import H3, H3Event, SSEEvent, SSEWriter, ServeOptions, serve\n"
    "import trio_h3; print(trio_h3.__file__)"
)


def trio_h3_available() -> tuple[bool, str]:
    """Whether trio-h3's public API imports from the repo (in a child process, isolated)."""
    if importlib.util.find_spec("trio_h3") is None and not (REPO_DIR / "trio_h3").is_dir():
        return False, "no trio_h3 package"
    proc = subprocess.run(
        [sys.executable, "-c", TRIO_H3_PROBE],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1:] or ["import failed"]
        return False, last[0]
    return True, proc.stdout.strip()


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO_DIR), str(BENCH_DIR)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        return proc_rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_times(core: int = SERVER_CORE) -> tuple[int, int]:
    """(steal, total) jiffies of one core from /proc/stat, to spot a noisy neighbour."""
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} "):
                values = [int(v) for v in line.split()[1:]]
                return values[7], sum(values)
    return 0, 0


class StealMeter:
    """Share of a core's time stolen by the hypervisor between start() and stop()."""

    def __init__(self, core: int = SERVER_CORE) -> None:
        self.core = core
        self.begin = cpu_times(core)

    def stop(self) -> float:
        steal, total = cpu_times(self.core)
        d_total = total - self.begin[1]
        return (steal - self.begin[0]) / d_total if d_total > 0 else 0.0


def busy_seconds() -> float:
    """CPU time spent busy on all cores so far (everything but idle and iowait)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    steal = values[7] if len(values) > 7 else 0
    return (sum(values[:8]) - idle - steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process and of its finished children (wrk, ws_client)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class LoadMeter:
    """How much CPU something else on the machine used while we measured.

    `other` is in cores: busy time of all cores minus the server's and our own (and our
    children's) CPU time, divided by the wall time. A concurrent test run shows up here.
    """

    def __init__(self, *server_pids: int) -> None:
        self.server_pids = server_pids
        self.wall = time.monotonic()
        self.busy = busy_seconds()
        self.own = own_cpu_seconds()
        self.servers = self._servers()

    def _servers(self) -> float:
        return sum(proc_cpu_seconds(pid) for pid in self.server_pids)

    def other(self) -> float:
        wall = time.monotonic() - self.wall
        busy = busy_seconds() - self.busy
        own = own_cpu_seconds() - self.own
        servers = self._servers() - self.servers
        return max(0.0, (busy - own - servers) / wall) if wall > 0 else 0.0


def wait_for_quiet(max_wait: float = 60.0, threshold: float = 0.15) -> float:
    """Wait (bounded) until the machine is idle; return the last load seen, in cores."""
    deadline = time.monotonic() + max_wait
    load = 0.0
    while True:
        start = busy_seconds()
        time.sleep(0.5)
        load = (busy_seconds() - start) / 0.5
        if load < threshold or time.monotonic() >= deadline:
            return load
        time.sleep(0.5)


OTHER_LOAD_LIMIT = 0.15  # cores; a run measured under more foreign load than this is redone


def guarded(run: Callable[[], T], server_pid: int, attempts: int = 3) -> tuple[T, float]:
    """Run one measurement on a quiet machine; redo it (bounded) if something else ran.

    Returns the result and the foreign load (cores) seen during the accepted attempt.
    """
    for attempt in range(1, attempts + 1):
        wait_for_quiet(max_wait=20.0)
        meter = LoadMeter(server_pid)
        result = run()
        other = meter.other()
        if other <= OTHER_LOAD_LIMIT or attempt == attempts:
            return result, other
        log(f"    (redone: {other:.2f} cores of other load during attempt {attempt})")
    raise AssertionError("unreachable")


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {timeout} s")


@contextlib.contextmanager
def run_server(
    name: str,
    script: str,
    args: Sequence[str] = (),
    core: int = SERVER_CORE,
    python: str = sys.executable,
) -> Iterator[ServerProcess]:
    """Start `python bench/<script> --port N [args]` pinned to `core`; always stop it.

    ``python``: another interpreter (a peer framework's own virtualenv)."""
    port = free_port()
    log_file = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
    log_path = Path(log_file.name)
    cmd = [
        "taskset", "-c", str(core),
        python, str(BENCH_DIR / script), "--host", HOST, "--port", str(port), *args,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        env=child_env(),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = ServerProcess(name=name, port=port, proc=proc, log_path=log_path)
    try:
        try:
            wait_for_port(port, proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{name}: {exc}\n--- log ---\n{server.log_tail()}") from exc
        yield server
    finally:
        stop_process(proc)
        log_file.close()
        if proc.returncode not in (0, -signal.SIGINT, -signal.SIGKILL, -signal.SIGTERM):
            log(f"  ({name} exited with {proc.returncode}; log kept at {log_path})")
        else:
            with contextlib.suppress(OSError):
                log_path.unlink()


def stop_process(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait(timeout=10)


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    log("wrk not found: installing Debian's wrk (apt-get)...")
    subprocess.run(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk",
        shell=True,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    path = shutil.which("wrk")
    if not path:
        raise RuntimeError("could not install wrk")
    return path


# --------------------------------------------------------------------------------------
# Tiny blocking HTTP/1.1 client helpers (raw sockets, no library between us and the wire)
# --------------------------------------------------------------------------------------


def request_bytes(path: str, port: int, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{extra}\r\n".encode("ascii")


def read_head(sock: socket.socket, buffer: bytearray | None = None) -> tuple[bytes, bytes]:
    """Read until the end of the response head; return (head, bytes already read past it)."""
    data = bytearray() if buffer is None else buffer
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            return bytes(data[: end + 4]), bytes(data[end + 4 :])
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"EOF before end of head: {bytes(data[:200])!r}")
        data += chunk


def simple_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One GET with Connection: close, reading to EOF; returns (status, headers, raw body)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(request_bytes(path, port, "Connection: close\r\n"))
        data = bytearray()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    return status, headers, body


def dechunk(raw: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while pos < len(raw):
        line_end = raw.find(b"\r\n", pos)
        if line_end < 0:
            break
        size = int(raw[pos:line_end].split(b";")[0], 16)
        if size == 0:
            break
        out += raw[line_end + 2 : line_end + 2 + size]
        pos = line_end + 2 + size + 2
    return bytes(out)


class KeepAliveClient:
    """A persistent connection for small JSON GETs (e.g. /stats), reconnecting if dropped."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def get_json(self, path: str) -> object:
        for attempt in range(2):
            if self.sock is None:
                self.sock = self._connect()
            try:
                return json.loads(self._get(self.sock, path))
            except (ConnectionError, OSError, ValueError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _get(self, sock: socket.socket, path: str) -> bytes:
        sock.sendall(request_bytes(path, self.port))
        head, rest = read_head(sock)
        length = None
        chunked = False
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        body = bytearray(rest)
        if length is not None:
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("EOF in body")
                body += chunk
            return bytes(body[:length])
        if chunked:
            while not body.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("EOF in chunked body")
                body += chunk
            return dechunk(bytes(body))
        raise ConnectionError("response without length")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# --------------------------------------------------------------------------------------
# Statistics and tables
# --------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return float(ordered[index])


def paired_ratio(
    subject: Sequence[float], before: Sequence[float], after: Sequence[float] = ()
) -> float:
    """Median over rounds of subject / (the bare run(s) next to it in the same round).

    Pairing each trio-h3 run with the bare runs just before and after it cancels most of
    the slow drift of a noisy machine.
    """
    ratios = []
    for index, value in enumerate(subject):
        refs = [before[index]] + ([after[index]] if index < len(after) else [])
        ratios.append(ratio(value, sum(refs) / len(refs)))
    return median(ratios)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    sep = "-+-".join("-" * w for w in widths)
    lines = [" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), sep]
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    if value != value:  # NaN
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


def write_json(path: str | None, payload: object) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        log(f"results written to {path}")
