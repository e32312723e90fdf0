"""Static files and gzip SSE: trio-h3 beside Starlette StaticFiles on Uvicorn, same run.

(a) files: `wrk -t1` (core 1) against each server (core 0) for a 4 KiB and a 10 MiB
    file, over plain TCP (trio-h3 sends with os.sendfile) and TLS (in chunks): requests/s,
    MB/s and server CPU per request; rounds interleave the servers, medians reported.
(b) SSE: events/s on one flood stream from trio-h3, uncompressed and through compress()
    (gzip, flushed per event); the client (core 1) decompresses and counts events.

Starlette and Uvicorn run from their own virtualenv (`--peer-python`, default
/tmp/bench-venv/bin/python: `python -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip
install starlette uvicorn`), never from the project's environment; without it only
trio-h3 is measured.

Run: python bench/static_bench.py [--rounds 3] [--duration 10] [--sse-duration 5]
     quick check: python bench/static_bench.py --rounds 1 --duration 1 --sse-duration 1
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import tempfile
import time
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from _harness import (
    CLIENT_CORE,
    HOST,
    ServerProcess,
    ensure_wrk,
    guarded,
    log,
    median,
    pin_self,
    ratio,
    read_head,
    run_server,
    table,
    trio_h3_available,
    write_json,
)

FILES = {"4 KiB": ("small.bin", 4096), "10 MiB": ("big.bin", 10 * 1024 * 1024)}
UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


@dataclass
class Run:
    requests_per_s: float
    mib_per_s: float
    cpu_us_per_request: float
    errors: str


def wrk_once(wrk: str, server: ServerProcess, url: str, duration: float, connections: int) -> Run:
    cmd = [
        "taskset", "-c", str(CLIENT_CORE), wrk, "-t1", f"-c{connections}", f"-d{duration:g}s",
        url,
    ]  # fmt: skip
    cpu_before = server.cpu_seconds()
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    cpu = server.cpu_seconds() - cpu_before
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    transfer = re.search(r"Transfer/sec:\s*([\d.]+)([KMG]?B)", out)
    if not rps or not transfer:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    errors = "; ".join(
        found.group(0).strip()
        for pattern in (r"Socket errors:[^\n]*", r"Non-2xx or 3xx responses:[^\n]*")
        if (found := re.search(pattern, out))
    )
    requests_per_s = float(rps.group(1))
    mib = float(transfer.group(1)) * UNITS[transfer.group(2)] / 1024**2
    cpu_us = cpu * 1e6 / max(1.0, requests_per_s * duration)
    return Run(requests_per_s, mib, cpu_us, errors)


def check_file(url: str, size: int) -> None:
    """The server sends the whole file (curl -k: the bench's own certificate)."""
    result = subprocess.run(
        ["curl", "-sk", "--max-time", "30", "-o", "/dev/null",
         "-w", "%{http_code} %{size_download}", url],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.stdout.split() != ["200", str(size)]:
        raise RuntimeError(f"GET {url}: {result.stdout!r} {result.stderr!r}")


def sse_events_per_s(port: int, path: str, duration: float, warmup: float = 0.5) -> float:
    """Read one flood stream (HTTP/1.0: the body is close-delimited, no chunk framing);
    decompress it if it is gzip, count events."""
    sock = socket.create_connection((HOST, port), timeout=10)
    try:
        sock.sendall(
            f"GET {path} HTTP/1.0\r\nHost: {HOST}\r\nAccept-Encoding: gzip\r\n\r\n".encode()
        )
        head, rest = read_head(sock)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"GET {path}: {head[:80]!r}")
        gzip = b"content-encoding: gzip" in head.lower()
        decoder = zlib.decompressobj(31) if gzip else None
        if decoder is not None:
            decoder.decompress(rest)  # the gzip header may have come with the head
        warm_end = time.perf_counter() + warmup
        while time.perf_counter() < warm_end:
            data = sock.recv(1 << 18)
            if decoder is not None:
                decoder.decompress(data)
        count = 0
        start = time.perf_counter()
        end = start + duration
        now = start
        while now < end:
            data = sock.recv(1 << 18)
            if not data:
                raise RuntimeError(f"GET {path}: stream ended early")
            if decoder is not None:
                data = decoder.decompress(data)
            count += data.count(b"\n\n")
            now = time.perf_counter()
        return count / (now - start)
    finally:
        sock.close()


def make_cert(directory: Path) -> tuple[str, str]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    return str(certfile), str(keyfile)


def peer_available(python: str) -> tuple[bool, str]:
    if not os.path.exists(python):
        return False, f"{python} does not exist"
    result = subprocess.run(
        [python, "-c",
         "import starlette, uvicorn; print(starlette.__version__, uvicorn.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode:
        return False, result.stderr.strip().splitlines()[-1]
    return True, "starlette {} / uvicorn {}".format(*result.stdout.split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections, 4 KiB")
    parser.add_argument("--big-connections", type=int, default=4, help="wrk connections, 10 MiB")
    parser.add_argument("--sse-duration", type=float, default=5)
    parser.add_argument("--peer-python", default="/tmp/bench-venv/bin/python")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    pin_self()
    wrk = ensure_wrk()
    have_h3, why = trio_h3_available()
    if not have_h3:
        log(f"trio-h3 does not import: {why}")
        return 1
    have_peer, peer = peer_available(args.peer_python)
    log(f"peer: {peer}" if have_peer else f"Starlette not measured: {peer}")

    results: dict[str, dict[str, list[Run]]] = {}
    with tempfile.TemporaryDirectory(prefix="static-bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        files = root / "files"
        files.mkdir()
        for name, size in FILES.values():
            (files / name).write_bytes(os.urandom(size))
        certfile, keyfile = make_cert(root)
        tls = ["--certfile", certfile, "--keyfile", keyfile]
        base = ["--dir", str(files)]
        servers: dict[str, tuple[ServerProcess, str]] = {}
        servers["trio-h3 tcp"] = (
            stack.enter_context(run_server("trio-h3", "app_static.py", base)),
            "http",
        )
        servers["trio-h3 tls"] = (
            stack.enter_context(run_server("trio-h3-tls", "app_static.py", base + tls)),
            "https",
        )
        if have_peer:
            peer_script = "app_starlette_static.py"
            servers["starlette tcp"] = (
                stack.enter_context(
                    run_server("starlette", peer_script, base, python=args.peer_python)
                ),
                "http",
            )
            servers["starlette tls"] = (
                stack.enter_context(
                    run_server("starlette-tls", peer_script, base + tls, python=args.peer_python)
                ),
                "https",
            )
        for server, scheme in servers.values():
            for name, size in FILES.values():
                check_file(f"{scheme}://{HOST}:{server.port}/static/{name}", size)
        log("every server sends both files whole")

        for round_index in range(args.rounds):
            for size_label, (name, _) in FILES.items():
                connections = args.connections if name == "small.bin" else args.big_connections
                for label, (server, scheme) in servers.items():
                    url = f"{scheme}://{HOST}:{server.port}/static/{name}"

                    def once(
                        server: ServerProcess = server, url: str = url, n: int = connections
                    ) -> Run:
                        return wrk_once(wrk, server, url, args.duration, n)

                    run, other = guarded(once, server.pid)
                    results.setdefault(size_label, {}).setdefault(label, []).append(run)
                    log(
                        f"  round {round_index + 1} {size_label:6} {label:14} "
                        f"{run.requests_per_s:9,.0f} req/s {run.mib_per_s:8,.1f} MiB/s "
                        f"{run.cpu_us_per_request:8.1f} us/req  other load {other:.2f}"
                        + (f"  [{run.errors}]" if run.errors else "")
                    )

        h3 = servers["trio-h3 tcp"][0]
        sse: dict[str, list[float]] = {"/sse": [], "/gz/sse": []}
        for _ in range(args.rounds):
            for path in sse:
                sse[path].append(sse_events_per_s(h3.port, path, args.sse_duration))

    rows = []
    for size_label, by_server in results.items():
        for transport in ("tcp", "tls"):
            own = by_server.get(f"trio-h3 {transport}", [])
            peer_runs = by_server.get(f"starlette {transport}", [])
            h3_rps = median([r.requests_per_s for r in own])
            peer_rps = median([r.requests_per_s for r in peer_runs]) if peer_runs else float("nan")
            rows.append(
                [
                    size_label,
                    "plain TCP (sendfile)" if transport == "tcp" else "TLS (chunks)",
                    f"{h3_rps:,.0f}",
                    f"{median([r.mib_per_s for r in own]):,.1f}",
                    f"{median([r.cpu_us_per_request for r in own]):,.1f}",
                    f"{peer_rps:,.0f}" if peer_runs else "-",
                    f"{median([r.mib_per_s for r in peer_runs]):,.1f}" if peer_runs else "-",
                    f"{ratio(h3_rps, peer_rps):.2f}x" if peer_runs else "-",
                ]
            )
    print()
    print(
        table(
            [
                "file", "transport", "trio-h3 req/s", "trio-h3 MiB/s", "trio-h3 CPU us/req",
                "Starlette req/s", "Starlette MiB/s", "trio-h3 / Starlette",
            ],
            rows,
        )
    )  # fmt: skip
    plain, coded = median(sse["/sse"]), median(sse["/gz/sse"])
    print()
    print(
        table(
            ["SSE stream", "events/s", "vs uncompressed"],
            [
                ["uncompressed", f"{plain:,.0f}", "1.00x"],
                ["gzip (compress(), flushed per event)", f"{coded:,.0f}", f"{coded / plain:.2f}x"],
            ],
        )
    )
    write_json(
        args.json,
        {
            "files": {
                size: {label: [r.__dict__ for r in runs] for label, runs in by.items()}
                for size, by in results.items()
            },
            "sse": sse,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
