"""WebSocket benchmark: echo round trips/s, trio-h3 `@app.ws("/echo")` vs bare trio-websocket.

The bare reference is `trio_websocket.serve_websocket` with an echo handler
(bench/bare_ws_server.py). Servers run pinned to core 0; the load is bench/ws_client.py
(the trio-websocket client) in its own process pinned to core 1. Over 1 connection and over
100 connections; rounds are interleaved (bare, trio-h3, bare) and medians reported.

Run: python bench/ws_bench.py [--rounds 3] [--duration 5] [--connections 1,100]
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
from contextlib import ExitStack

from _harness import (
    BENCH_DIR,
    CLIENT_CORE,
    HOST,
    ServerProcess,
    child_env,
    guarded,
    log,
    median,
    paired_ratio,
    pin_self,
    ratio,
    run_server,
    table,
    trio_h3_available,
    verdict,
    write_json,
)

TARGET = 0.90


def run_client(
    server: ServerProcess, path: str, connections: int, warmup: float, duration: float, size: int
) -> dict[str, object]:
    """Run ws_client.py once; add the server's CPU time per round trip to its result."""
    port = server.port
    cmd = [
        "taskset", "-c", str(CLIENT_CORE), sys.executable, str(BENCH_DIR / "ws_client.py"),
        "--url", f"ws://{HOST}:{port}{path}", "--connections", str(connections),
        "--warmup", str(warmup), "--duration", str(duration), "--size", str(size),
    ]  # fmt: skip
    cpu_before = server.cpu_seconds()
    proc = subprocess.run(
        cmd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=warmup + duration + 120,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"ws_client failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    cpu = server.cpu_seconds() - cpu_before
    result["server_cpu_us_per_rt"] = cpu * 1e6 / max(1, int(result["all_round_trips"]))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", default="1,100")
    parser.add_argument("--size", type=int, default=16, help="text message length")
    parser.add_argument("--bare-only", action="store_true", help="skip trio-h3")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    conn_counts = [int(c) for c in args.connections.split(",")]

    pin_self()
    have_h3, why = (False, "--bare-only") if args.bare_only else trio_h3_available()
    if not have_h3:
        log(f"trio-h3 not measured: {why}")

    samples: dict[tuple[str, int, int], list[float]] = {}
    cpu_samples: dict[tuple[str, int], list[float]] = {}
    errors: list[str] = []
    with ExitStack() as stack:
        servers = {"bare": stack.enter_context(run_server("bare-ws", "bare_ws_server.py"))}
        if have_h3:
            servers["trio-h3"] = stack.enter_context(run_server("trio-h3", "app_trio_h3.py"))
        order = ["bare", "trio-h3", "bare"] if have_h3 else ["bare"]
        for name, server in servers.items():  # warm-up, and a check that the echo works
            result = run_client(server, "/echo", 1, 0.2, 1.0, args.size)
            if result["error_count"]:
                errors.append(f"{name} warm-up: {result['errors']}")
            log(f"  warm-up {name:8} {result['rate']:.0f} round trips/s")
        for round_no in range(1, args.rounds + 1):
            for connections in conn_counts:
                for position, name in enumerate(order):
                    server = servers[name]
                    result, other = guarded(
                        functools.partial(
                            run_client,
                            server,
                            "/echo",
                            connections,
                            args.warmup,
                            args.duration,
                            args.size,
                        ),
                        server.pid,
                    )
                    rate = float(str(result["rate"]))
                    samples.setdefault((name, connections, position), []).append(rate)
                    cpu_us = float(str(result["server_cpu_us_per_rt"]))
                    cpu_samples.setdefault((name, connections), []).append(cpu_us)
                    flag = ""
                    if result["error_count"]:
                        flag = f"  [{result['error_count']} errors: {result['errors']}]"
                        errors.append(f"{name} c={connections} round {round_no}{flag}")
                    log(
                        f"  round {round_no} {connections:4} conn {name:8}"
                        f" {rate:10.0f} round trips/s, server CPU {cpu_us:6.1f} us/rt,"
                        f" other load {other:.2f} cores{flag}"
                    )

    rows = []
    results: dict[str, object] = {}
    for connections in conn_counts:
        bare_before = samples[("bare", connections, 0)]
        bare_all = bare_before + samples.get(("bare", connections, 2), [])
        bare_cpu = median(cpu_samples[("bare", connections)])
        row = [f"{connections} conn", f"{median(bare_before):.0f}"]
        entry: dict[str, object] = {"bare": bare_all, "bare_cpu_us_per_rt": bare_cpu}
        if have_h3:
            h3 = samples[("trio-h3", connections, 1)]
            h3_cpu = median(cpu_samples[("trio-h3", connections)])
            r = ratio(median(h3), median(bare_all))
            paired = paired_ratio(h3, bare_before, samples[("bare", connections, 2)])
            row += [
                f"{median(h3):.0f}",
                f"{median(samples[('bare', connections, 2)]):.0f}",
                f"{r:.2f}x",
                f"{paired:.2f}x",
                verdict(r, TARGET),
                f"{bare_cpu:.1f} / {h3_cpu:.1f}",
                f"{ratio(bare_cpu, h3_cpu):.2f}x",
            ]
            entry.update(
                {
                    "trio_h3": h3,
                    "ratio": r,
                    "paired_ratio": paired,
                    "trio_h3_cpu_us_per_rt": h3_cpu,
                }
            )
        rows.append(row)
        results[str(connections)] = entry
    headers = ["connections", "bare rt/s (before)"]
    if have_h3:
        headers += [
            "trio-h3 rt/s",
            "bare rt/s (after)",
            "trio-h3/bare",
            "paired",
            f">= {TARGET}x",
            "server CPU us/rt bare / trio-h3",
            "CPU bare/trio-h3",
        ]
    log("")
    log(
        f"WebSocket echo round trips/s ({args.size}-char text), median of {args.rounds} rounds"
        f" of {args.duration:g} s, trio-websocket client on core {CLIENT_CORE}"
    )
    log(table(headers, rows))
    log(
        "  (server CPU us/rt: the server process's CPU time per round trip; its ratio does not"
        " depend on whether the client or the server was the bottleneck)"
    )
    for line in errors:
        log(f"  note: {line}")
    write_json(args.json, {"ws": results, "errors": errors})
    return 0


if __name__ == "__main__":
    sys.exit(main())
