"""HTTP benchmark: requests/s and p99 latency for GET / and GET /users/42 with wrk.

Servers, each pinned to core 0 while ``wrk -t1 -c64 --latency`` runs on core 1
(keep-alive), every one answering with the same bodies and header set:

- ``bare``: the shared reference, ``/work/shared/bench/limit_trio_h11.py`` (trio + h11,
  no framework, heads written through h11): the ratios are against it;
- ``trio-h3 h11`` and ``trio-h3 httptools``: ``bench/app_trio_h3.py --http ...``;
- ``uvicorn``: Starlette on Uvicorn with httptools and uvloop
  (``bench/app_starlette_http.py``), from a virtualenv of its own (``--venv``, default
  /tmp/bench-venv, made or completed with pip: a bench-only dependency, never ours).

Every round measures bare, the others, then bare again, for each route; rounds are
interleaved and medians reported. Targets (issue 13): h11 >= 0.80x bare on both routes;
httptools >= 2.5x on ``/`` and >= 2.0x on ``/users/42``, ahead of Uvicorn, with a lower
p99 at 64 connections.

Run: python bench/http_bench.py [--rounds 5] [--duration 10] [--connections 64]
     (a smoke run: --rounds 1 --duration 2 --warmup 1)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import venv
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

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

LIMIT_SERVER = "/work/shared/bench/limit_trio_h11.py"
DEFAULT_VENV = Path("/tmp/bench-venv")
PEER_PACKAGES = ["starlette", "uvicorn", "httptools", "uvloop"]
ROUTES = ["/", "/users/42"]
EXPECTED = {
    "/": (b"Hello, World!", "text/plain"),
    "/users/42": (b'{"id":"42"}', "application/json"),
}
#: server -> route -> the ratio to bare it must reach (None: reported only).
TARGETS: dict[str, dict[str, float | None]] = {
    "trio-h3 h11": {"/": 0.80, "/users/42": 0.80},
    "trio-h3 httptools": {"/": 2.5, "/users/42": 2.0},
    "uvicorn": {"/": None, "/users/42": None},
}


@dataclass
class WrkResult:
    requests_per_s: float
    p99_ms: float
    errors: str
    server_cpu_us_per_request: float = float("nan")
    steal: float = 0.0
    other_load: float = 0.0


def ensure_peer_venv(path: Path) -> str | None:
    """The venv's python with Starlette, Uvicorn, httptools and uvloop (installed if
    missing, into that venv only); None if it cannot be had."""
    python = path / "bin" / "python"
    probe = "import starlette, uvicorn, httptools, uvloop"
    try:
        if not python.exists():
            log(f"creating {path} (venv)...")
            venv.create(path, with_pip=True)
        if subprocess.run([python, "-c", probe], capture_output=True).returncode != 0:
            log(f"installing {', '.join(PEER_PACKAGES)} into {path} (pip)...")
            subprocess.run([python, "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"uvicorn not measured: {exc}")
        return None
    return str(python)


def measure(
    wrk: str, server: ServerProcess, path: str, duration: float, connections: int
) -> WrkResult:
    """One wrk run against ``server``, with the server's CPU time per request."""

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


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(wrk: str, port: int, path: str, duration: float, connections: int) -> WrkResult:
    cmd = [
        "taskset", "-c", str(CLIENT_CORE), wrk, "-t1", f"-c{connections}", f"-d{duration:g}s",
        "--latency", f"http://{HOST}:{port}{path}",
    ]  # fmt: skip
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if not match or not p99:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    errors = []
    for pattern in (r"Socket errors:[^\n]*", r"Non-2xx or 3xx responses:[^\n]*"):
        found = re.search(pattern, out)
        if found:
            errors.append(found.group(0).strip())
    return WrkResult(
        float(match.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)], "; ".join(errors)
    )


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
            log(f"  {name:18} GET {path:10} -> {status} headers={sorted(headers)} {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk warm-up")
    parser.add_argument("--bare-only", action="store_true", help="skip trio-h3 and uvicorn")
    parser.add_argument("--no-uvicorn", action="store_true", help="skip the Uvicorn peer")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the Uvicorn venv")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    pin_self()
    wrk = ensure_wrk()
    have_h3, why = (False, "--bare-only") if args.bare_only else trio_h3_available()
    if not have_h3:
        log(f"trio-h3 not measured: {why}")
    peer = None if args.bare_only or args.no_uvicorn else ensure_peer_venv(args.venv)

    with ExitStack() as stack:
        servers = {"bare": stack.enter_context(run_server("bare", LIMIT_SERVER))}
        if have_h3:
            for http in ("h11", "httptools"):
                servers[f"trio-h3 {http}"] = stack.enter_context(
                    run_server(f"trio-h3-{http}", "app_trio_h3.py", ["--http", http])
                )
        if peer is not None:
            servers["uvicorn"] = stack.enter_context(
                run_server("uvicorn", "app_starlette_http.py", python=peer)
            )
        log("checking responses:")
        check_responses(servers)

        log(f"warm-up: {args.warmup:g} s of wrk per server and route")
        for server in servers.values():
            for path in ROUTES:
                run_wrk(wrk, server.port, path, args.warmup, args.connections)

        others = [name for name in servers if name != "bare"]
        order = ["bare", *others, "bare"]
        samples: dict[tuple[str, str, int], list[WrkResult]] = {}
        errors: list[str] = []
        for round_no in range(1, args.rounds + 1):
            for path in ROUTES:
                for position, name in enumerate(order):
                    result = measure(wrk, servers[name], path, args.duration, args.connections)
                    key = (
                        name,
                        path,
                        0 if position == 0 else 2 if position == len(order) - 1 else 1,
                    )
                    samples.setdefault(key, []).append(result)
                    flag = f"  [{result.errors}]" if result.errors else ""
                    if result.errors:
                        errors.append(f"{name} {path} round {round_no}: {result.errors}")
                    log(
                        f"  round {round_no} GET {path:10} {name:18}"
                        f" {result.requests_per_s:9.0f} req/s, p99 {result.p99_ms:7.2f} ms,"
                        f" server CPU {result.server_cpu_us_per_request:6.1f} us/req,"
                        f" steal {result.steal:4.0%}, other load {result.other_load:.2f}{flag}"
                    )
        for name, server in servers.items():
            if server.proc.poll() is not None:
                errors.append(f"{name} server died: exit {server.proc.returncode}")

    rows, results = report(samples, others, errors)
    log("")
    log(
        f"HTTP, median of {args.rounds} rounds, wrk -t1 -c{args.connections} -d{args.duration:g}s"
        " --latency (ratio: against the median of all bare runs)"
    )
    headers = ["route", "server", "req/s", "vs bare", "paired", "target", "p99 ms", "CPU us/req"]
    log(table(headers, rows))
    log(
        "  paired: median over rounds of server / mean(bare before, bare after) in the same"
        " round; CPU: the server process's CPU time per request"
    )
    for line in errors:
        log(f"  note: {line}")
    write_json(args.json, {"http": results, "errors": errors})
    return 0


def report(
    samples: dict[tuple[str, str, int], list[WrkResult]], others: list[str], notes: list[str]
) -> tuple[list[list[str]], dict[str, object]]:
    rows: list[list[str]] = []
    results: dict[str, object] = {}
    for path in ROUTES:
        before = [r.requests_per_s for r in samples[("bare", path, 0)]]
        after = [r.requests_per_s for r in samples[("bare", path, 2)]]
        bare_all = samples[("bare", path, 0)] + samples[("bare", path, 2)]
        bare = median([r.requests_per_s for r in bare_all])
        bare_p99 = median([r.p99_ms for r in bare_all])
        bare_cpu = median([r.server_cpu_us_per_request for r in bare_all])
        rows.append([f"GET {path}", "bare", f"{bare:.0f}", "1.00x", "", "", f"{bare_p99:.2f}",
                     f"{bare_cpu:.1f}"])  # fmt: skip
        entry: dict[str, object] = {"bare_req_s": [r.requests_per_s for r in bare_all]}
        medians: dict[str, tuple[float, float]] = {}
        for name in others:
            runs = samples[(name, path, 1)]
            rate = median([r.requests_per_s for r in runs])
            p99 = median([r.p99_ms for r in runs])
            cpu = median([r.server_cpu_us_per_request for r in runs])
            value = ratio(rate, bare)
            paired = paired_ratio([r.requests_per_s for r in runs], before, after)
            target = TARGETS.get(name, {}).get(path)
            mark = f">= {target}x {verdict(value, target)}" if target is not None else ""
            rows.append([f"GET {path}", name, f"{rate:.0f}", f"{value:.2f}x", f"{paired:.2f}x",
                         mark, f"{p99:.2f}", f"{cpu:.1f}"])  # fmt: skip
            medians[name] = (rate, p99)
            entry[name] = {"req_s": [r.requests_per_s for r in runs], "ratio": value,
                           "paired": paired, "p99_ms": p99, "cpu_us_per_req": cpu}  # fmt: skip
        if "trio-h3 httptools" in medians and "uvicorn" in medians:
            (ours, our_p99), (theirs, their_p99) = medians["trio-h3 httptools"], medians["uvicorn"]
            notes.append(
                f"GET {path}: httptools {ours:.0f} vs uvicorn {theirs:.0f} req/s "
                f"({verdict(ours, theirs)}: ahead), p99 {our_p99:.2f} vs {their_p99:.2f} ms "
                f"({verdict(our_p99, their_p99, higher_is_better=False)}: lower)"
            )
        results[path] = entry
    return rows, results


if __name__ == "__main__":
    sys.exit(main())
