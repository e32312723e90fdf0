"""SSE benchmarks: trio-h3 (callback and inline forms) vs the bare trio + h11 server.

  flood  events/s on one stream, the client reading as fast as it can
  idle   N concurrent idle streams in one process: all established, server RSS per stream
  close  100 streams closed at once by their clients: time until every stream task is gone
         (GET /stats -> {"active": 0}) and every socket released (/proc/PID/fd at baseline)
  ttfb   time from sending the request to the first event byte, callback vs inline form

Servers run pinned to core 0; this process is the client (raw sockets), pinned to core 1.

Run: python bench/sse_bench.py [--only flood,idle,close,ttfb] [--streams 5000]
"""

from __future__ import annotations

import argparse
import functools
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from _harness import (
    HOST,
    KeepAliveClient,
    LoadMeter,
    ServerProcess,
    guarded,
    log,
    median,
    paired_ratio,
    percentile,
    pin_self,
    raise_nofile,
    ratio,
    read_head,
    request_bytes,
    run_server,
    table,
    trio_h3_available,
    verdict,
    wait_for_quiet,
    write_json,
)

FLOOD_TARGET = 0.85
IDLE_TARGET_KIB = 20.0
CLOSE_TARGET_MS = 50.0
VERBOSE = False


@dataclass(frozen=True)
class Variant:
    label: str
    script: str
    path: str

    @property
    def server_name(self) -> str:
        return "bare" if self.script == "bare_server.py" else "trio-h3"


BARE = "bare_server.py"
H3 = "app_trio_h3.py"
#: Extra arguments for trio-h3's server (``--http``: the parser backend).
H3_ARGS: list[str] = []


def server_args(script: str) -> list[str]:
    return H3_ARGS if script == H3 else []


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def open_stream(port: int, path: str, timeout: float = 10.0) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.sendall(request_bytes(path, port))
    head, rest = read_head(sock)
    check_sse_head(head, path)
    return sock, rest


def check_sse_head(head: bytes, path: str) -> None:
    status_line = head.split(b"\r\n", 1)[0]
    if not status_line.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {path}: {status_line!r}")
    if b"text/event-stream" not in head.lower():
        raise RuntimeError(f"GET {path}: not text/event-stream: {head!r}")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def no_active_streams(stats: KeepAliveClient) -> bool:
    return active_streams(stats) == 0


def active_streams(stats: KeepAliveClient) -> int:
    payload = stats.get_json("/stats")
    assert isinstance(payload, dict)
    return int(payload["active"])


@contextmanager
def servers_for(variants: list[Variant]) -> Iterator[dict[str, ServerProcess]]:
    """One process per server script, shared by the variants that use it."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        procs: dict[str, ServerProcess] = {}
        for variant in variants:
            if variant.script not in procs:
                procs[variant.script] = stack.enter_context(
                    run_server(variant.server_name, variant.script, server_args(variant.script))
                )
        yield procs


# --------------------------------------------------------------------------------------
# (a) flood: events/s on one stream
# --------------------------------------------------------------------------------------


def measure_flood(
    server: ServerProcess, path: str, warmup: float, duration: float
) -> tuple[float, float]:
    """Read one flood stream; return (events/s, server CPU microseconds per event)."""
    sock, rest = open_stream(server.port, path)
    try:
        first = rest + sock.recv(65536)
        if b"data: 12345\n\n" not in first:
            raise RuntimeError(f"GET {path}: unexpected stream start {first[:120]!r}")
        warm_end = time.perf_counter() + warmup
        while time.perf_counter() < warm_end:
            if not sock.recv(1 << 18):
                raise RuntimeError(f"GET {path}: stream ended during warm-up")
        count = 0
        last = b""
        recv = sock.recv
        cpu_start = server.cpu_seconds()
        client_start = time.process_time()
        start = time.perf_counter()
        end = start + duration
        now = start
        while now < end:
            chunk = recv(1 << 18)
            if not chunk:
                raise RuntimeError(f"GET {path}: stream ended early")
            count += chunk.count(b"\n\n")
            if last == b"\n" and chunk[:1] == b"\n":
                count += 1  # an event boundary split across two reads
            last = chunk[-1:]
            now = time.perf_counter()
        cpu = server.cpu_seconds() - cpu_start
        client_cpu = time.process_time() - client_start
        wall = now - start
        if VERBOSE:
            log(f"    server CPU {cpu / wall:4.0%}, client CPU {client_cpu / wall:4.0%}")
        return count / wall, cpu * 1e6 / max(1, count)
    finally:
        sock.close()


def bench_flood(
    variants: list[Variant], rounds: int, warmup: float, duration: float
) -> dict[str, object]:
    samples: dict[str, list[float]] = {v.label: [] for v in variants}
    cpu_samples: dict[str, list[float]] = {v.label: [] for v in variants}
    with servers_for(variants) as procs:
        stats_clients = {script: KeepAliveClient(p.port) for script, p in procs.items()}
        for round_no in range(1, rounds + 1):
            for variant in variants:
                server = procs[variant.script]
                (rate, cpu_us), other = guarded(
                    functools.partial(measure_flood, server, variant.path, warmup, duration),
                    server.pid,
                )
                samples[variant.label].append(rate)
                cpu_samples[variant.label].append(cpu_us)
                stats = stats_clients[variant.script]
                gone = wait_until(functools.partial(no_active_streams, stats), 5.0)
                note = "" if gone else "  (stream still active 5 s after the client left!)"
                log(
                    f"  round {round_no} {variant.label:24} {rate:10.0f} events/s,"
                    f" server CPU {cpu_us:5.2f} us/event, other load {other:.2f} cores{note}"
                )
        for client in stats_clients.values():
            client.close()
    base = variants[0].label
    bare_med = median(samples[base])
    bare_cpu = median(cpu_samples[base])
    rows = []
    summary: dict[str, dict[str, float]] = {}
    for variant in variants:
        med = median(samples[variant.label])
        r = ratio(med, bare_med)
        paired = paired_ratio(samples[variant.label], samples[base])
        cpu = median(cpu_samples[variant.label])
        rows.append(
            [
                variant.label,
                f"{med:.0f}",
                f"{r:.2f}x",
                f"{paired:.2f}x",
                "" if variant.server_name == "bare" else verdict(r, FLOOD_TARGET),
                f"{cpu:.2f}",
                f"{ratio(bare_cpu, cpu):.2f}x",
            ]
        )
        summary[variant.label] = {
            "events_s": med,
            "ratio": r,
            "paired_ratio": paired,
            "cpu_us_per_event": cpu,
        }
    log("")
    log(
        f"(a) SSE events/s on one stream, median of {rounds} rounds of {duration:g} s"
        f" (ratios against {base})"
    )
    log(
        table(
            [
                "server GET path",
                "events/s",
                "vs bare",
                "paired",
                f">= {FLOOD_TARGET}x",
                "server CPU us/event",
                "CPU bare/this",
            ],
            rows,
        )
    )
    return {"samples": samples, "cpu_us_per_event": cpu_samples, "summary": summary}


# --------------------------------------------------------------------------------------
# (b) idle: N concurrent idle streams, RSS per stream
# --------------------------------------------------------------------------------------


def open_many(port: int, path: str, n: int, batch: int = 250) -> list[socket.socket]:
    socks: list[socket.socket] = []
    try:
        while len(socks) < n:
            fresh: list[socket.socket] = []
            for _ in range(min(batch, n - len(socks))):
                sock = socket.create_connection((HOST, port), timeout=30)
                fresh.append(sock)
                socks.append(sock)
                sock.sendall(request_bytes(path, port))
            for sock in fresh:
                head, _ = read_head(sock)
                check_sse_head(head, path)
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks: list[socket.socket], reset: bool = False) -> None:
    linger = struct.pack("ii", 1, 0)
    for sock in socks:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        sock.close()


def measure_idle(variant: Variant, n: int) -> dict[str, float]:
    with run_server(variant.server_name, variant.script, server_args(variant.script)) as server:
        stats = KeepAliveClient(server.port)
        # Warm the code paths (imports, caches) before the baseline.
        close_all(open_many(server.port, variant.path, 50))
        if not wait_until(lambda: active_streams(stats) == 0, 10):
            raise RuntimeError(f"{variant.label}: warm-up streams never ended")
        time.sleep(0.5)
        rss_before = server.rss_kib()
        fds_before = server.fd_count()
        t0 = time.perf_counter()
        socks = open_many(server.port, variant.path, n)
        try:
            opened_s = time.perf_counter() - t0
            if not wait_until(lambda: active_streams(stats) == n, 30, 0.05):
                raise RuntimeError(f"{variant.label}: /stats never reached {n}")
            time.sleep(1.0)
            rss_after = server.rss_kib()
            fds_after = server.fd_count()
            active = active_streams(stats)
        finally:
            t1 = time.perf_counter()
            close_all(socks)
        drained = wait_until(lambda: active_streams(stats) == 0, 30, 0.01)
        drain_s = time.perf_counter() - t1
        stats.close()
        per_stream = (rss_after - rss_before) / n
        result = {
            "streams": float(n),
            "established": float(active),
            "rss_before_kib": float(rss_before),
            "rss_after_kib": float(rss_after),
            "kib_per_stream": per_stream,
            "fds_added": float(fds_after - fds_before),
            "open_seconds": opened_s,
            "drain_seconds": drain_s if drained else float("nan"),
        }
        log(
            f"  {variant.label:26} {active}/{n} live, RSS {rss_before} -> {rss_after} KiB"
            f" = {per_stream:.1f} KiB/stream; opened in {opened_s:.1f} s;"
            f" all gone {drain_s * 1000:.0f} ms after closing"
        )
        return result


def bench_idle(variants: list[Variant], n: int) -> Mapping[str, object]:
    results = {v.label: measure_idle(v, n) for v in variants}
    bare = results[variants[0].label]["kib_per_stream"]
    rows = []
    for variant in variants:
        r = results[variant.label]
        rows.append(
            [
                variant.label,
                f"{int(r['established'])}/{n}",
                f"{r['kib_per_stream']:.1f}",
                f"{ratio(r['kib_per_stream'], bare):.2f}x",
                ""
                if variant.server_name == "bare"
                else verdict(r["kib_per_stream"], IDLE_TARGET_KIB, higher_is_better=False),
            ]
        )
    log("")
    log(f"(b) {n} concurrent idle SSE streams in one server process (VmRSS delta / {n})")
    log(
        table(
            ["server GET path", "established", "KiB/stream", "vs bare", f"<= {IDLE_TARGET_KIB:g}"],
            rows,
        )
    )
    return results


# --------------------------------------------------------------------------------------
# (c) close: 100 streams closed at once
# --------------------------------------------------------------------------------------


def measure_close_once(server: ServerProcess, path: str, n: int, reset: bool) -> dict[str, float]:
    stats = KeepAliveClient(server.port)
    try:
        if not wait_until(lambda: active_streams(stats) == 0, 10):
            raise RuntimeError("streams from an earlier round still active")
        time.sleep(0.2)
        baseline_fds = server.fd_count()
        socks = open_many(server.port, path, n)
        if not wait_until(lambda: active_streams(stats) == n, 10):
            close_all(socks)
            raise RuntimeError(f"/stats never reached {n}")
        time.sleep(0.2)
        t0 = time.perf_counter()
        close_all(socks, reset=reset)
        t_tasks = t_fds = float("nan")
        deadline = t0 + 5.0
        while time.perf_counter() < deadline:
            now = time.perf_counter()
            if t_fds != t_fds and server.fd_count() <= baseline_fds:
                t_fds = now - t0
            if t_tasks != t_tasks and active_streams(stats) == 0:
                t_tasks = time.perf_counter() - t0
            if t_fds == t_fds and t_tasks == t_tasks:
                break
        return {"tasks_ms": t_tasks * 1000, "fds_ms": t_fds * 1000}
    finally:
        stats.close()


def bench_close(variants: list[Variant], rounds: int, n: int = 100) -> Mapping[str, object]:
    results: dict[str, dict[str, list[float]]] = {}
    with servers_for(variants) as procs:
        for round_no in range(1, rounds + 1):
            for reset in (False, True):
                for variant in variants:
                    key = f"{variant.label} {'RST' if reset else 'FIN'}"
                    wait_for_quiet(max_wait=20.0)
                    one = measure_close_once(procs[variant.script], variant.path, n, reset)
                    entry = results.setdefault(key, {"tasks_ms": [], "fds_ms": [], "all_ms": []})
                    entry["tasks_ms"].append(one["tasks_ms"])
                    entry["fds_ms"].append(one["fds_ms"])
                    entry["all_ms"].append(max(one["tasks_ms"], one["fds_ms"]))
                    log(
                        f"  round {round_no} {key:30} tasks gone {one['tasks_ms']:7.1f} ms,"
                        f" sockets released {one['fds_ms']:7.1f} ms"
                    )
    rows = []
    for key, entry in results.items():
        worst = max(entry["all_ms"])
        rows.append(
            [
                key,
                f"{median(entry['tasks_ms']):.1f}",
                f"{median(entry['fds_ms']):.1f}",
                f"{median(entry['all_ms']):.1f}",
                f"{worst:.1f}",
                verdict(worst, CLOSE_TARGET_MS, higher_is_better=False),
            ]
        )
    log("")
    log(
        f"(c) {n} streams closed at once by their clients (FIN = close(), RST = SO_LINGER 0);"
        f" ms after the first close(), {rounds} rounds"
    )
    log(
        table(
            [
                "server GET path, close",
                "tasks gone (med)",
                "sockets released (med)",
                "both (med)",
                "both (worst)",
                f"<= {CLOSE_TARGET_MS:g} ms",
            ],
            rows,
        )
    )
    return results


# --------------------------------------------------------------------------------------
# (d) ttfb: request -> first event byte
# --------------------------------------------------------------------------------------


class FirstEventClient:
    """Sequential requests on one keep-alive connection, reconnecting when the server closes."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.path = path
        self.sock: socket.socket | None = None
        self.reconnects = 0
        self.head_times: list[float] = []
        self.same_read = 0  # responses whose head and first event came in one recv

    def once(self) -> float:
        if self.sock is None:
            self.sock = socket.create_connection((HOST, self.port), timeout=10)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.reconnects += 1
        sock = self.sock
        request = request_bytes(self.path, self.port)
        t0 = time.perf_counter()
        sock.sendall(request)
        data = bytearray()
        head_end = -1
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"GET {self.path}: EOF before the first event")
            data += chunk
            if head_end < 0:
                head_end = data.find(b"\r\n\r\n")
                if head_end >= 0:
                    self.head_times.append((time.perf_counter() - t0) * 1000)
            if head_end >= 0 and data.find(b"data:", head_end) >= 0:
                elapsed = time.perf_counter() - t0
                if len(data) == len(chunk):
                    self.same_read += 1
                break
        check_sse_head(bytes(data[: head_end + 4]), self.path)
        close_after = b"connection: close" in data[:head_end].lower()
        # Read the rest of this (finite) stream: up to the terminating chunk, or EOF.
        while not data.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                close_after = True
                break
            data += chunk
        if close_after:
            self.close()
        return elapsed

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def bench_ttfb(variants: list[Variant], requests: int) -> Mapping[str, object]:
    samples: dict[str, list[float]] = {v.label: [] for v in variants}
    with servers_for(variants) as procs:
        clients = {v.label: FirstEventClient(procs[v.script].port, v.path) for v in variants}
        for client in clients.values():  # warm-up
            for _ in range(50):
                client.once()
            client.head_times.clear()
            client.same_read = 0
        wait_for_quiet(max_wait=20.0)
        meter = LoadMeter(*(p.pid for p in procs.values()))
        for _ in range(requests):
            for variant in variants:
                samples[variant.label].append(clients[variant.label].once() * 1000)
        other = meter.other()
        for client in clients.values():
            client.close()
    rows = []
    base = median(samples[variants[0].label])
    for variant in variants:
        values = samples[variant.label]
        client = clients[variant.label]
        rows.append(
            [
                variant.label,
                f"{median(client.head_times):.3f}",
                f"{median(values):.3f}",
                f"{percentile(values, 99):.3f}",
                f"{ratio(median(values), base):.2f}x",
                f"{client.same_read / max(1, len(values)):.0%}",
                str(client.reconnects),
            ]
        )
    log("")
    log(
        f"(d) request -> first event byte, {requests} sequential requests per route"
        f" (interleaved, keep-alive); other load during the run {other:.2f} cores"
    )
    log(
        table(
            [
                "server GET path",
                "head median ms",
                "first event median ms",
                "first event p99 ms",
                "vs bare",
                "head+event in one read",
                "connections",
            ],
            rows,
        )
    )
    return {
        label: {"median_ms": median(v), "p99_ms": percentile(v, 99)} for label, v in samples.items()
    }


# --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="flood,idle,close,ttfb")
    parser.add_argument("--rounds", type=int, default=5, help="rounds for flood")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per flood run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before counting")
    parser.add_argument("--streams", type=int, default=5000, help="idle streams")
    parser.add_argument("--close-rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1000, help="ttfb requests per route")
    parser.add_argument("--bare-only", action="store_true", help="skip trio-h3")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--http", default="auto", help="trio-h3's parser: auto, h11, httptools")
    args = parser.parse_args()
    H3_ARGS[:] = ["--http", args.http]
    sections = {s.strip() for s in args.only.split(",") if s.strip()}

    pin_self()
    limit = raise_nofile(args.streams * 2 + 1000)
    if limit < args.streams + 200:
        log(f"RLIMIT_NOFILE is only {limit}: lowering --streams")
        args.streams = max(100, limit - 200)
    have_h3, why = (False, "--bare-only") if args.bare_only else trio_h3_available()
    if not have_h3:
        log(f"trio-h3 not measured: {why}")

    def pick(*variants: Variant) -> list[Variant]:
        return [v for v in variants if have_h3 or v.script == BARE]

    results: dict[str, object] = {}
    if "flood" in sections:
        log("(a) flood")
        results["flood"] = bench_flood(
            pick(
                Variant("bare /sse", BARE, "/sse"),
                Variant("bare /sse-h11 (h11 framing)", BARE, "/sse-h11"),
                Variant("trio-h3 /sse (callback)", H3, "/sse"),
                Variant("trio-h3 /sse-inline", H3, "/sse-inline"),
            ),
            args.rounds,
            args.warmup,
            args.duration,
        )
    if "idle" in sections:
        log("(b) idle")
        results["idle"] = bench_idle(
            pick(
                Variant("bare /idle", BARE, "/idle"),
                Variant("trio-h3 /idle (callback)", H3, "/idle"),
                Variant("trio-h3 /idle-inline", H3, "/idle-inline"),
                Variant("trio-h3 /idle-ping (heartbeat)", H3, "/idle-ping"),
            ),
            args.streams,
        )
    if "close" in sections:
        log("(c) close")
        results["close"] = bench_close(
            pick(
                Variant("bare /idle", BARE, "/idle"),
                Variant("trio-h3 /idle (callback)", H3, "/idle"),
                Variant("trio-h3 /idle-inline", H3, "/idle-inline"),
            ),
            args.close_rounds,
        )
    if "ttfb" in sections:
        log("(d) ttfb")
        results["ttfb"] = bench_ttfb(
            pick(
                Variant("bare /first", BARE, "/first"),
                Variant("trio-h3 /first (callback)", H3, "/first"),
                Variant("trio-h3 /first-inline", H3, "/first-inline"),
            ),
            args.requests,
        )
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
