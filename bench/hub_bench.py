"""Hub benchmarks: the Broadcast hub in one process and across ``--workers 2`` on Redis.

  latency  publish-to-receive p50/p99 over S subscribers (1,000 by default): memory
           hub in one process, and Redis with --workers 2 (target: p99 < 50 ms)
  fanout   messages x subscribers per second: one process (memory, Redis) vs 2 workers
  idle     N idle streams (20,000 by default) across 2 workers: each worker's RSS
  balance  N long-lived connections over 2 workers: one shared accept queue vs
           --reuse-port (one SO_REUSEPORT queue per worker); the spread per worker

Servers are ``trio-h3 run bench/app_hub.py --workers N`` (pinned to core 0 for one
worker, to both cores for two); this process is the client (trio, raw sockets), pinned
to core 1; Redis is a redis-server started here in a temp dir. Times are
``time.monotonic()`` (one clock for every process on the machine), stamped into each
message by the publisher and read by each subscriber when the event's bytes arrive:
the client's own scheduling delay is included (one core reads every socket).

Run: python bench/hub_bench.py [--only latency,fanout,idle,balance] [--small]
     [--subscribers 1000] [--messages 50] [--gap 0.2] [--idle 20000] [--balance 2000] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio
from _harness import (
    BENCH_DIR,
    HOST,
    child_env,
    free_port,
    log,
    percentile,
    pin_self,
    proc_rss_kib,
    raise_nofile,
    stop_process,
    table,
    verdict,
    wait_for_port,
    write_json,
)

STAMP = re.compile(rb'"t":([0-9.]+)')


# -- processes -------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server (Debian's) on a free port; its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server not found: apt-get install redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hub-bench-redis-") as directory:
        proc = subprocess.Popen(
            [executable, "--port", str(port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_port(port, proc)
            yield f"redis://{HOST}:{port}/0"
        finally:
            stop_process(proc)


@contextlib.contextmanager
def hub_server(
    workers: int, redis_url: str | None = None, reuse_port: bool = False
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``trio-h3 run app_hub:app --workers N``; (port, supervisor process)."""
    port = free_port()
    env = child_env()
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    cores = "0" if workers == 1 else "0,1"
    cmd = [
        "taskset", "-c", cores, sys.executable, "-m", "trio_h3", "run", "app_hub:app",
        "--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port),
        "--no-access-log", "--log-level", "error", "--workers", str(workers),
    ] + (["--reuse-port"] if reuse_port else [])  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, proc)
        time.sleep(0.5 if workers > 1 else 0.1)  # every worker listening
        yield port, proc
    finally:
        stop_process(proc, grace=15)


def worker_pids(supervisor: subprocess.Popen[bytes]) -> list[int]:
    """The supervisor's children (its workers), or the process itself for one worker."""
    pids: list[int] = []
    for task in Path(f"/proc/{supervisor.pid}/task").iterdir():
        children = (task / "children").read_text().split()
        pids += [int(pid) for pid in children]
    return pids or [supervisor.pid]


# -- the client (trio) --------------------------------------------------------------------------


class Subscriber:
    """One SSE connection: its worker and the latency of each message it received."""

    def __init__(self, stream: trio.SocketStream, worker: str) -> None:
        self.stream = stream
        self.worker = worker
        self.received = 0
        self.latencies: list[float] = []
        self.done = trio.Event()

    async def read(self, expected: int) -> None:
        tail = b""
        while self.received < expected:
            data = await self.stream.receive_some(65536)
            if not data:
                return
            now = time.monotonic()
            data = tail + data
            cut = data.rfind(b"\n\n")
            if cut < 0:
                tail = data
                continue
            tail = data[cut + 2 :]
            for stamp in STAMP.findall(data[: cut + 2]):
                self.latencies.append(now - float(stamp))
                self.received += 1
        self.done.set()


async def subscribe(port: int, count: int) -> list[Subscriber]:
    """Open ``count`` SSE streams (in batches) and read their heads."""
    subscribers: list[Subscriber] = []

    async def one() -> None:
        stream = await trio.open_tcp_stream(HOST, port)
        await stream.send_all(f"GET /events HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise ConnectionError("EOF before the SSE head")
            head += chunk
        match = re.search(rb"x-worker: (\d+)", head)
        subscribers.append(Subscriber(stream, match.group(1).decode() if match else "?"))

    for start in range(0, count, 200):
        async with trio.open_nursery() as nursery:
            for _ in range(min(200, count - start)):
                nursery.start_soon(one)
    return subscribers


async def http(port: int, method: str, path: str, body: Any = None) -> Any:
    """One request on a new connection (Connection: close); the JSON answer."""
    payload = b"" if body is None else json.dumps(body).encode()
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        await stream.send_all(
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    return json.loads(data.partition(b"\r\n\r\n")[2] or b"null")


async def wait_subscribed(port: int, subscribers: list[Subscriber], bound: float = 60) -> None:
    """Until each worker's hub counts the streams it holds (its subscription started)."""
    wanted = Counter(s.worker for s in subscribers)
    seen: dict[str, int] = {}
    with trio.fail_after(bound):
        while any(seen.get(pid, -1) < n for pid, n in wanted.items()):
            stats = await http(port, "GET", "/stats")
            seen[stats["pid"]] = stats["subscribers"]
            await trio.sleep(0.02)


async def run_latency(port: int, subscribers: int, messages: int, gap: float) -> dict[str, Any]:
    subs = await subscribe(port, subscribers)
    await wait_subscribed(port, subs)
    async with trio.open_nursery() as nursery:
        for sub in subs:
            nursery.start_soon(sub.read, messages)
        for n in range(messages):
            await http(port, "POST", "/publish", {"t": time.monotonic(), "n": n})
            await trio.sleep(gap)
        with trio.move_on_after(30):
            for sub in subs:
                await sub.done.wait()
        nursery.cancel_scope.cancel()
    latencies = [x for sub in subs for x in sub.latencies]
    missing = subscribers * messages - len(latencies)
    for sub in subs:
        await sub.stream.aclose()
    return {
        "subscribers": subscribers,
        "messages": messages,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        "missing": missing,
        "workers": dict(Counter(s.worker for s in subs)),
    }


async def run_fanout(port: int, subscribers: int, messages: int) -> dict[str, Any]:
    subs = await subscribe(port, subscribers)
    await wait_subscribed(port, subs)
    start = time.monotonic()
    async with trio.open_nursery() as nursery:
        for sub in subs:
            nursery.start_soon(sub.read, messages)

        async def poster(first: int) -> None:
            for n in range(first, messages, 4):
                await http(port, "POST", "/publish", {"t": time.monotonic(), "n": n})

        async with trio.open_nursery() as posting:
            for first in range(4):
                posting.start_soon(poster, first)
        with trio.move_on_after(60):
            for sub in subs:
                await sub.done.wait()
        elapsed = time.monotonic() - start
        nursery.cancel_scope.cancel()
    delivered = sum(sub.received for sub in subs)
    for sub in subs:
        await sub.stream.aclose()
    return {
        "subscribers": subscribers,
        "messages": messages,
        "seconds": elapsed,
        "deliveries_per_s": delivered / elapsed,
        "missing": subscribers * messages - delivered,
    }


# -- idle and balance (blocking sockets: nothing to read) -----------------------------------------


def hold_streams(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection((HOST, port), timeout=30)
        sock.sendall(f"GET /events HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        socks.append(sock)
    return socks


def read_heads(socks: list[socket.socket]) -> Counter[str]:
    workers: Counter[str] = Counter()
    for sock in socks:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("EOF before the SSE head")
            head += chunk
        match = re.search(rb"x-worker: (\d+)", head)
        workers[match.group(1).decode() if match else "?"] += 1
    return workers


def hold_main(port: int, count: int) -> int:
    """``--hold PORT N``: a helper process holding N idle streams until stdin closes."""
    raise_nofile(count + 100)
    socks = hold_streams(port, count)
    workers = read_heads(socks)
    print(json.dumps(dict(workers)), flush=True)
    sys.stdin.read()
    return 0


def bench_idle(count: int) -> dict[str, Any]:
    per_helper = 9000  # each helper stays under this machine's RLIMIT_NOFILE of 20,000
    with redis_server() as url, hub_server(2, url) as (port, supervisor):
        pids = worker_pids(supervisor)
        warm = hold_streams(port, 100)  # first allocations (imports, pools) out of the way
        read_heads(warm)
        for sock in warm:
            sock.close()
        time.sleep(0.5)
        before = {pid: proc_rss_kib(pid) for pid in pids}
        helpers = []
        workers: Counter[str] = Counter()
        for start in range(0, count, per_helper):
            n = min(per_helper, count - start)
            helpers.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--hold", str(port), str(n)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=child_env(),
                )
            )
        for helper in helpers:
            assert helper.stdout is not None
            workers.update(json.loads(helper.stdout.readline() or b"{}"))
        time.sleep(1.0)
        after = {pid: proc_rss_kib(pid) for pid in pids}
        for helper in helpers:
            assert helper.stdin is not None
            helper.stdin.close()
            helper.wait(timeout=60)
    delta = sum(after.values()) - sum(before.values())
    return {
        "streams": count,
        "per_worker": dict(workers),
        "rss_kib_before": before,
        "rss_kib_after": after,
        "kib_per_stream": delta / count if count else float("nan"),
    }


def bench_balance(count: int, rounds: int) -> dict[str, Any]:
    results: dict[str, list[list[int]]] = {"shared": [], "reuse-port": []}
    for _ in range(rounds):
        for mode in results:
            with hub_server(2, reuse_port=mode == "reuse-port") as (port, _):
                socks = hold_streams(port, count)
                workers = read_heads(socks)
                for sock in socks:
                    sock.close()
            results[mode].append(sorted(workers.values(), reverse=True))
    return results


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="latency,fanout,idle,balance")
    parser.add_argument("--small", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument(
        "--gap", type=float, default=0.2, help="seconds between latency messages (5/s)"
    )
    parser.add_argument("--fanout-subscribers", type=int, default=200)
    parser.add_argument("--fanout-messages", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=20_000)
    parser.add_argument("--balance", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--hold", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold:
        return hold_main(*args.hold)
    if args.small:
        args.subscribers, args.messages = 50, 10
        args.fanout_subscribers, args.fanout_messages = 20, 100
        args.idle, args.balance, args.rounds = 400, 200, 1
    raise_nofile(max(args.subscribers, args.balance, 1000) + 500)
    pin_self()
    only = set(args.only.split(","))
    results: dict[str, Any] = {}

    if "latency" in only:
        gap_ms = args.gap * 1000
        log(
            f"latency: {args.subscribers} subscribers, {args.messages} messages {gap_ms:g} ms apart"
        )
        rows = []
        for name, workers, redis in (
            ("memory, 1 process", 1, False),
            ("redis, 2 workers", 2, True),
        ):
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(redis_server()) if redis else None
                port, _ = stack.enter_context(hub_server(workers, url))
                result = trio.run(run_latency, port, args.subscribers, args.messages, args.gap)
            results[f"latency {name}"] = result
            target = verdict(result["p99_ms"], 50, higher_is_better=False) if redis else ""
            rows.append([name, f"{result['p50_ms']:.1f}", f"{result['p99_ms']:.1f}",
                         f"{result['max_ms']:.1f}", str(result["missing"]), target])  # fmt: skip
        log(table(["hub", "p50 ms", "p99 ms", "max ms", "missing", "p99<50ms"], rows))

    if "fanout" in only:
        s, m = args.fanout_subscribers, args.fanout_messages
        log(f"fanout: {s} subscribers, {m} messages from 4 publishers, as fast as they go")
        rows = []
        variants = (("memory, 1 process", 1, False), ("redis, 1 process", 1, True),
                    ("redis, 2 workers", 2, True))  # fmt: skip
        for name, workers, redis in variants:
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(redis_server()) if redis else None
                port, _ = stack.enter_context(hub_server(workers, url))
                result = trio.run(run_fanout, port, s, m)
            results[f"fanout {name}"] = result
            rows.append([name, f"{result['deliveries_per_s']:,.0f}", f"{result['seconds']:.2f}",
                         str(result["missing"])])  # fmt: skip
        log(table(["hub", "messages x subscribers / s", "seconds", "missing"], rows))

    if "idle" in only:
        log(f"idle: {args.idle} streams across 2 workers (Redis hub)")
        result = bench_idle(args.idle)
        results["idle"] = result
        log(f"  per worker: {result['per_worker']}")
        log(f"  RSS KiB before {result['rss_kib_before']}, after {result['rss_kib_after']}")
        log(f"  {result['kib_per_stream']:.1f} KiB per stream")

    if "balance" in only:
        log(f"balance: {args.balance} connections over 2 workers, {args.rounds} round(s)")
        result = bench_balance(args.balance, args.rounds)
        results["balance"] = result
        rows = [[mode, "; ".join("/".join(map(str, r)) for r in rounds)]
                for mode, rounds in result.items()]  # fmt: skip
        log(table(["accept queue", "connections per worker (each round)"], rows))

    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
