"""WebSocket echo load client (trio-websocket), run by bench/ws_bench.py on its own core.

Opens N connections; each sends a message and waits for its echo, in a loop. Round trips
completed after the warm-up and before the deadline are counted; prints one JSON line.

Run: python bench/ws_client.py --url ws://127.0.0.1:8003/echo --connections 100
"""

from __future__ import annotations

import argparse
import json
import sys

import trio
from trio_websocket import open_websocket_url


async def run(
    url: str, connections: int, warmup: float, duration: float, size: int
) -> dict[str, object]:
    message = "x" * size
    counts = [0] * connections
    totals = [0] * connections
    errors: list[str] = []
    all_open = trio.Event()
    opened = 0
    window: dict[str, float] = {}

    def start_window() -> None:
        if not all_open.is_set():
            window["start"] = trio.current_time() + warmup
            window["end"] = window["start"] + duration
            all_open.set()

    async def one(index: int) -> None:
        nonlocal opened
        try:
            async with open_websocket_url(url) as ws:
                opened += 1
                if opened == connections:
                    start_window()
                await all_open.wait()
                count = done = 0
                while trio.current_time() < window["end"]:
                    await ws.send_message(message)
                    reply = await ws.get_message()
                    if reply != message:
                        raise RuntimeError(f"bad echo: {reply!r:.60}")
                    done += 1
                    if window["start"] <= trio.current_time() <= window["end"]:
                        count += 1
                counts[index] = count
                totals[index] = done
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            start_window()

    async with trio.open_nursery() as nursery:
        for index in range(connections):
            nursery.start_soon(one, index)
        with trio.fail_after(60):
            await all_open.wait()
    total = sum(counts)
    return {
        "connections": connections,
        "round_trips": total,
        "all_round_trips": sum(totals),
        "seconds": duration,
        "rate": total / duration,
        "errors": errors[:5],
        "error_count": len(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=16, help="text message length")
    args = parser.parse_args()
    result = trio.run(run, args.url, args.connections, args.warmup, args.duration, args.size)
    print(json.dumps(result))
    return 0 if not result["error_count"] else 1


if __name__ == "__main__":
    sys.exit(main())
