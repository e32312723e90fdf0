"""``trio-h3 run --workers N``: real processes, real signals, a real redis-server.

- two workers behind one port, 100 SSE clients spread over them: an event POSTed to
  one worker reaches all 100 (the hub is on Redis);
- a worker killed with SIGKILL is replaced, and its clients reconnect with their
  Last-Event-ID and replay what was published meanwhile, with no gap or duplicate;
- graceful shutdown with 500 open streams: each ends with its terminating chunk,
  and the supervisor exits 0; a second signal exits at once;
- ``--reuse-port`` (one accept queue per worker) serves alike; ``--workers`` with
  ``--reload`` is refused; an in-memory hub with ``--workers 2`` is warned about.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import httpx_sse
import pytest
import trio
from helpers import IO_BOUND, ServerProcess, open_connection, read_until, request_bytes
from redis_server import RedisServer

from trio_h3.cli import main

pytestmark = pytest.mark.slow

APP = """
import os
from trio_h3 import H3, Broadcast, H3Event

url = os.environ.get("REDIS_URL")
hub = Broadcast.from_url(url, history=10_000) if url else Broadcast(history=10_000)
app = H3()

@app.lifespan
async def lifespan(nursery):
    async with hub:
        yield

@app.post("/publish")
async def publish(event: H3Event) -> dict:
    return {"id": await hub.publish("feed", await event.json()), "pid": os.getpid()}

@app.get("/events")
async def events(event: H3Event) -> None:
    hub.stream(event, "feed", headers={"x-worker": str(os.getpid())}, ping_interval=None)

@app.get("/ready")
async def ready(event: H3Event) -> dict:
    return {"pid": os.getpid(), "subscribers": hub.subscriber_count("feed")}
"""


def write_app(tmp_path: Path) -> Path:
    (tmp_path / "workers_app.py").write_text(APP)
    return tmp_path


def raise_nofile() -> None:
    """Room for hundreds of sockets here and in the workers (they inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@asynccontextmanager
async def supervisor(
    tmp_path: Path, *extra: str, redis_url: str | None = None
) -> AsyncIterator[ServerProcess]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    argv = [
        sys.executable, "-m", "trio_h3", "run", "workers_app:app",
        "--app-dir", str(tmp_path), "--port", "0", "--no-access-log", *extra,
    ]  # fmt: skip
    async with ServerProcess.start(argv, cwd=str(tmp_path), env=env) as child:
        yield child


async def wait_workers(child: ServerProcess, count: int) -> None:
    """Until ``count`` workers (in all) have announced they are listening (bounded)."""
    assert child.process.stderr is not None
    with trio.fail_after(IO_BOUND * 2):
        while child.stderr.count(b"listening on") < count:
            chunk = await child.process.stderr.receive_some(65536)
            assert chunk, f"stderr ended: {bytes(child.stderr)!r}"
            child.stderr += chunk


async def test_two_workers_100_clients_an_event_posted_to_one_reaches_all(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    raise_nofile()
    async with supervisor(
        write_app(tmp_path), "--workers", "2", redis_url=redis_server.url
    ) as child:
        await wait_workers(child, 2)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        timeout = httpx.Timeout(IO_BOUND)
        async with httpx.AsyncClient(base_url=child.url, limits=limits, timeout=timeout) as client:
            got: dict[int, list[str]] = {}
            pids: dict[int, str] = {}
            opened = trio.Semaphore(0)

            async def listen(index: int) -> None:
                async with httpx_sse.aconnect_sse(client, "GET", "/events") as source:
                    pids[index] = source.response.headers["x-worker"]
                    opened.release()
                    async for sse in source.aiter_sse():
                        got.setdefault(index, []).append(sse.data)
                        return

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for index in range(100):
                        nursery.start_soon(listen, index)
                    for _ in range(100):
                        await opened.acquire()
                    # Every stream has its head; wait until each worker's hub counts them.
                    while True:
                        counts = {}
                        for _ in range(20):
                            ready = (await client.get("/ready")).json()
                            counts[ready["pid"]] = ready["subscribers"]
                        if len(counts) == 2 and sum(counts.values()) == 100:
                            break
                        await trio.sleep(0.05)
                    response = await client.post("/publish", json={"price": 42})
                    assert response.status_code == 200
        assert len(set(pids.values())) == 2  # the clients were spread over both workers
        assert len(got) == 100
        assert all(data == ['{"price":42}'] for data in got.values())
        child.signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await child.wait() == 0, child.stderr.decode()


@dataclass
class Follower:
    """One SSE client: the worker that served it, and what it received."""

    worker: int
    ids: list[str] = field(default_factory=list)
    datas: list[str] = field(default_factory=list)


async def test_a_worker_killed_with_sigkill_is_replaced_and_its_clients_replay(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    args = ("--workers", "2")
    async with supervisor(write_app(tmp_path), *args, redis_url=redis_server.url) as child:
        await wait_workers(child, 2)
        # No keep-alive for the publisher: a pooled connection could be the victim's.
        no_pool = httpx.Limits(max_keepalive_connections=0)
        async with (
            httpx.AsyncClient(base_url=child.url, timeout=IO_BOUND) as client,
            httpx.AsyncClient(base_url=child.url, timeout=IO_BOUND, limits=no_pool) as poster,
        ):
            first = (await poster.post("/publish", json=0)).json()["id"]
            followers: list[Follower] = []

            async def follow(last_id: str, task_status: trio.TaskStatus[None]) -> None:
                headers = {"Last-Event-ID": last_id}
                async with httpx_sse.aconnect_sse(client, "GET", "/events", headers=headers) as sse:
                    follower = Follower(int(sse.response.headers["x-worker"]))
                    followers.append(follower)
                    task_status.started()
                    try:
                        async for event in sse.aiter_sse():
                            follower.ids.append(event.id)
                            follower.datas.append(event.data)
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        pass  # its worker died: the stream broke off

            async def until_everyone_has(last: int, among: list[Follower]) -> None:
                with trio.fail_after(30):
                    while not all(f.datas and f.datas[-1] == str(last) for f in among):
                        await trio.sleep(0.02)

            with trio.fail_after(90):
                async with trio.open_nursery() as nursery:
                    while len({f.worker for f in followers}) < 2 or len(followers) < 10:
                        await nursery.start(follow, first)
                    for n in range(1, 6):
                        await poster.post("/publish", json=n)
                    await until_everyone_has(5, followers)
                    victim = followers[0].worker
                    orphans = [f for f in followers if f.worker == victim]
                    survivors = [f for f in followers if f.worker != victim]
                    os.kill(victim, signal.SIGKILL)
                    await child.read_until(re.compile(rb"worker \d \(pid %d\) exited" % victim))
                    for n in range(6, 21):  # while the victim's clients are away
                        await poster.post("/publish", json=n)
                    await wait_workers(child, 3)  # the replacement is listening
                    # EventSource reconnects with the last id it saw: so do these.
                    before = len(followers)
                    for orphan in orphans:
                        await nursery.start(follow, orphan.ids[-1])
                    back = followers[before:]
                    await until_everyone_has(20, survivors + back)
                    nursery.cancel_scope.cancel()
        expected = [str(n) for n in range(1, 21)]
        for survivor in survivors:
            assert survivor.datas == expected  # untouched by the other worker's death
        for orphan in orphans:
            assert orphan.datas == expected[:5]  # what it had when its worker died
        for follower in back:
            assert follower.datas == expected[5:]  # replayed: no gap, no duplicate
        child.signal(signal.SIGINT)
        with trio.fail_after(30):
            assert await child.wait() == 0, child.stderr.decode()
        assert b"restarting it" in child.stderr


async def test_graceful_shutdown_of_two_workers_with_500_open_streams(tmp_path: Path) -> None:
    raise_nofile()
    async with supervisor(write_app(tmp_path), "--workers", "2") as child:
        await wait_workers(child, 2)
        connections = []
        with trio.fail_after(60):
            for _ in range(500):
                connection = await open_connection(child.port)
                await connection.send_all(request_bytes("GET", "/events"))
                connections.append(connection)
            for connection in connections:
                head = await read_until(connection, b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
            child.signal(signal.SIGTERM)
            endings = []
            for connection in connections:
                rest = await read_until_eof_bounded(connection)
                endings.append(rest.endswith(b"0\r\n\r\n"))
            assert all(endings), f"{endings.count(False)} streams did not end cleanly"
            assert await child.wait() == 0, child.stderr.decode()
        assert b"stopping 2 workers gracefully" in child.stderr
        for connection in connections:
            await connection.aclose()


async def read_until_eof_bounded(stream: trio.SocketStream) -> bytes:
    data = bytearray()
    with trio.fail_after(30):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return bytes(data)


async def test_a_second_signal_stops_every_worker_at_once(tmp_path: Path) -> None:
    app = tmp_path / "workers_app.py"
    app.write_text(
        "import sys, time\nfrom trio_h3 import H3\napp = H3()\n"
        "@app.lifespan\nasync def lifespan(nursery):\n    yield\n"
        "    print('lifespan exit blocks', file=sys.stderr, flush=True)\n    time.sleep(60)\n"
    )
    async with supervisor(tmp_path, "--workers", "2") as child:
        await wait_workers(child, 2)
        child.signal(signal.SIGTERM)
        await child.read_until(b"stopping 2 workers gracefully")
        # Both workers are stuck in app code that blocks the event loop (said, not
        # guessed by a sleep): only the second signal can end them now.
        await child.read_until(re.compile(rb"lifespan exit blocks[\s\S]*lifespan exit blocks"))
        child.signal(signal.SIGTERM)
        with trio.fail_after(20):  # a hang guard; the 60 s sleep would trip it
            code = await child.wait()
        stderr = child.stderr.decode()
        assert code == 128 + signal.SIGTERM, stderr
        # Each worker left through the second signal, at once: not through its hard
        # deadline (shutdown_timeout + margin), which exits with the same status.
        assert stderr.count("second signal (SIGTERM): exiting now") == 2, stderr
        assert "did not finish within" not in stderr, stderr


async def test_reuse_port_gives_each_worker_its_own_queue(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    args = ("--workers", "2", "--reuse-port")
    async with supervisor(write_app(tmp_path), *args, redis_url=redis_server.url) as child:
        await wait_workers(child, 2)
        assert b"one SO_REUSEPORT queue each" in child.stderr
        pids: set[int] = set()
        with trio.fail_after(30):
            while len(pids) < 2:
                # A new connection each time: the kernel hashes each to one queue.
                async with httpx.AsyncClient(base_url=child.url, timeout=IO_BOUND) as client:
                    pids.add((await client.get("/ready")).json()["pid"])
        child.signal(signal.SIGINT)
        with trio.fail_after(30):
            assert await child.wait() == 0


async def test_an_in_memory_hub_with_workers_is_warned_about(tmp_path: Path) -> None:
    async with supervisor(write_app(tmp_path), "--workers", "2") as child:
        await wait_workers(child, 2)
        child.signal(signal.SIGINT)
        with trio.fail_after(30):
            assert await child.wait() == 0
    assert b"in-memory Broadcast hub" in child.stderr
    assert b"from_url" in child.stderr


def test_workers_with_reload_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "examples.hello:app", "--workers", "2", "--reload"]) == 2
    assert "--workers cannot be combined with --reload" in capsys.readouterr().err
    assert main(["run", "examples.hello:app", "--workers", "0"]) == 2
