"""HTTP benchmark: requests/s for GET / and GET /users/42, trio-h3 vs bare trio + h11.

Servers run pinned to core 0, wrk pinned to core 1 (`wrk -t1 -c64 -d10s`, keep-alive).
Every round measures bare, then trio-h3, then bare again (to see drift), for each route;
rounds are interleaved and the median is reported with the ratio trio-h3 / bare.

Run: python bench/http_bench.py [--rounds 3] [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass

from _harness import (
    CLIENT_CORE,
    HOST,
    ServerProcess,
    StealMeter,
    ensure_wrk,
    guarded,
    log,
    median,
    paired_ratio,
    pin_self,
    ratio,
    run_server,
    simple_get,
    table,
    trio_h3_available,
    verdict,
    write_json,
)

ROUTES = ["/", "/users/42"]
EXPECTED = {
    "/": (b"Hello from trio-h3!", "text/plain"),
    "/users/42": (b'{"id": "42", "name": "Ada"}', "application/json"),
}
TARGET = 0.80


@dataclass
class WrkResult:
    requests_per_s: float
    errors: str
    server_cpu_us_per_request: float = float("nan")
    steal: float = 0.0
    other_load: float = 0.0


def measure(
    wrk: str, server: ServerProcess, path: str, duration: float, connections: int
) -> WrkResult:
    """One wrk run against `server`, with the server's CPU time per request."""

    def once() -> WrkResult:
        cpu_before = server.cpu_seconds()
        steal = StealMeter()
        result = run_wrk(wrk, server.port, path, duration, connections)
        result.steal = steal.stop()
        cpu = server.cpu_seconds() - cpu_before
        result.server_cpu_us_per_request = cpu * 1e6 / max(1.0, result.requests_per_s * duration)
        return result

    result, other = guarded(once, server.pid)
    result.other_load = other
    return result


def run_wrk(wrk: str, port: int, path: str, duration: float, connections: int) -> WrkResult:
    cmd = [
        "taskset", "-c", str(CLIENT_CORE), wrk, "-t1", f"-c{connections}", f"-d{duration:g}s",
        f"http://{HOST}:{port}{path}",
    ]  # fmt: skip
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    errors = []
    for pattern in (r"Socket errors:[^\n]*", r"Non-2xx or 3xx responses:[^\n]*"):
        found = re.search(pattern, out)
        if found:
            errors.append(found.group(0).strip())
    return WrkResult(float(match.group(1)), "; ".join(errors))


def check_responses(servers: dict[str, ServerProcess]) -> None:
    """Same status, body and media type from every server, and show the header sets."""
    for name, server in servers.items():
        for path in ROUTES:
            status, headers, body = simple_get(server.port, path)
            want_body, want_type = EXPECTED[path]
            problems = []
            if status != 200:
                problems.append(f"status {status}")
            same = body == want_body
            if not same and want_type == "application/json":
                with contextlib.suppress(ValueError):
                    same = json.loads(body) == json.loads(want_body)  # spacing may differ
            if not same:
                problems.append(f"body {body[:80]!r}")
            if not headers.get("content-type", "").startswith(want_type):
                problems.append(f"content-type {headers.get('content-type')!r}")
            for needed in ("date", "server", "content-length"):
                if needed not in headers:
                    problems.append(f"no {needed} header")
            note = "ok" if not problems else "MISMATCH: " + ", ".join(problems)
            log(f"  {name:8} GET {path:10} -> {status} headers={sorted(headers)} {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk warm-up")
    parser.add_argument("--bare-only", action="store_true", help="skip trio-h3")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    pin_self()
    wrk = ensure_wrk()
    have_h3, why = (False, "--bare-only") if args.bare_only else trio_h3_available()
    if not have_h3:
        log(f"trio-h3 not measured: {why}")

    with ExitStack() as stack:
        servers = {"bare": stack.enter_context(run_server("bare", "bare_server.py"))}
        if have_h3:
            servers["trio-h3"] = stack.enter_context(run_server("trio-h3", "app_trio_h3.py"))
        log("checking responses:")
        check_responses(servers)

        log(f"warm-up: {args.warmup:g} s of wrk per server and route")
        for server in servers.values():
            for path in ROUTES:
                run_wrk(wrk, server.port, path, args.warmup, args.connections)

        order = ["bare", "trio-h3", "bare"] if have_h3 else ["bare"]
        samples: dict[tuple[str, str, int], list[float]] = {}
        cpu_samples: dict[tuple[str, str], list[float]] = {}
        errors: list[str] = []
        for round_no in range(1, args.rounds + 1):
            for path in ROUTES:
                for position, name in enumerate(order):
                    result = measure(wrk, servers[name], path, args.duration, args.connections)
                    samples.setdefault((name, path, position), []).append(result.requests_per_s)
                    cpu_us = result.server_cpu_us_per_request
                    cpu_samples.setdefault((name, path), []).append(cpu_us)
                    flag = f"  [{result.errors}]" if result.errors else ""
                    if result.errors:
                        errors.append(f"{name} {path} round {round_no}: {result.errors}")
                    log(
                        f"  round {round_no} GET {path:10} {name:8}"
                        f" {result.requests_per_s:10.0f} req/s,"
                        f" server CPU {cpu_us:6.1f} us/req, steal {result.steal:4.0%},"
                        f" other load {result.other_load:.2f} cores{flag}"
                    )
        for name, server in servers.items():
            if server.proc.poll() is not None:
                errors.append(f"{name} server died: exit {server.proc.returncode}")

    rows = []
    results = {}
    for path in ROUTES:
        bare_before = samples[("bare", path, 0)]
        all_bare = bare_before + samples.get(("bare", path, 2), [])
        bare_med = median(all_bare)
        bare_cpu = median(cpu_samples[("bare", path)])
        row = [f"GET {path}", f"{median(bare_before):.0f}"]
        entry: dict[str, object] = {"bare_req_s": all_bare, "bare_cpu_us_per_req": bare_cpu}
        if have_h3:
            h3 = samples[("trio-h3", path, 1)]
            bare_after = samples[("bare", path, 2)]
            r = ratio(median(h3), bare_med)
            paired = paired_ratio(h3, bare_before, bare_after)
            h3_cpu = median(cpu_samples[("trio-h3", path)])
            row += [
                f"{median(h3):.0f}",
                f"{median(bare_after):.0f}",
                f"{r:.2f}x",
                f"{paired:.2f}x",
                verdict(r, TARGET),
                f"{bare_cpu:.1f} / {h3_cpu:.1f}",
                f"{ratio(bare_cpu, h3_cpu):.2f}x",
            ]
            entry.update(
                {
                    "trio_h3_req_s": h3,
                    "ratio": r,
                    "paired_ratio": paired,
                    "trio_h3_cpu_us_per_req": h3_cpu,
                    "cpu_ratio": ratio(bare_cpu, h3_cpu),
                }
            )
        rows.append(row)
        results[path] = entry

    headers = ["route", "bare req/s (before)"]
    if have_h3:
        headers += [
            "trio-h3 req/s",
            "bare req/s (after)",
            "trio-h3/bare",
            "paired",
            f">= {TARGET}x",
            "server CPU us/req bare / trio-h3",
            "CPU bare/trio-h3",
        ]
    log("")
    log(
        f"HTTP requests/s, median of {args.rounds} rounds, wrk -t1 -c{args.connections}"
        f" -d{args.duration:g}s (ratio against the median of all bare runs)"
    )
    log(table(headers, rows))
    log(
        "  paired: median over rounds of trio-h3 / mean(bare before, bare after) in the same"
        " round; CPU bare/trio-h3: server CPU time per request, bare divided by trio-h3"
    )
    for line in errors:
        log(f"  note: {line}")
    write_json(args.json, {"http": results, "errors": errors})
    return 0


if __name__ == "__main__":
    sys.exit(main())
