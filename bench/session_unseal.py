"""What a sealed session costs per request: ``python bench/session_unseal.py``.

Times, with ``timeit``, the middleware and its head hook on a bare ``H3Event`` (no
socket, no HTTP parsing: what ``Sessions`` adds to a request that reads its session
(join the cookie chunks, Fernet-verify and decrypt, parse the JSON, check expiry) and to
one that changes it (serialise, encrypt, MAC, build the Set-Cookie)), for a small session
(a user id and a name) and one big enough to need two cookies. Microseconds per call,
best of 5 repeats. Not a test: nothing here is run by pytest.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from trio_h3 import H3Event, Response, Sessions


def run(coroutine: Any) -> Any:
    """Run a coroutine that never suspends (the middleware's path here), without a loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("suspended")


def measure(data: dict[str, Any], number: int = 2000) -> tuple[float, float, float, int]:
    sessions = Sessions(secret="b" * 32)

    def request(cookie: bytes, change: bool) -> tuple[Any, Response]:
        event = H3Event("GET", b"/", [(b"cookie", cookie)] if cookie else [])

        async def handler() -> Any:
            if change:
                event.session.update(data)
            return event.session.get("user")

        user = run(sessions(event, handler))
        response = Response()
        event.run_head_hooks(response)  # what the server does as the head goes out
        return user, response

    def write() -> bytes:
        _, response = request(b"", True)
        return b"; ".join(
            value.split(b";")[0] for name, value in response.headers.raw if name == b"set-cookie"
        )

    cookie = write()

    def read() -> Any:
        return request(cookie, False)[0]

    assert read() == data["user"]
    # The cryptography alone: one token (the joined chunks), verified and decrypted.
    token = "".join(
        part.split("=", 1)[1] for part in cookie.decode().split("; ") if "__chunked__" not in part
    )

    def unseal() -> Any:
        return sessions.unseal(token, 0.0)

    assert unseal() is not None
    read_us = min(timeit.repeat(read, number=number, repeat=5)) / number * 1e6
    write_us = min(timeit.repeat(write, number=number, repeat=5)) / number * 1e6
    unseal_us = min(timeit.repeat(unseal, number=number, repeat=5)) / number * 1e6
    return read_us, unseal_us, write_us, len(cookie)


async def main() -> None:
    small = {"user": "ada", "id": 42}
    big = {"user": "ada", "cart": [{"sku": f"item-{i}", "qty": i} for i in range(160)]}
    print(f"python {sys.version.split()[0]}")
    print(
        "| session | Cookie bytes | request reading it, us | of which unseal, us |"
        " request writing it, us |"
    )
    print("|---|---|---|---|---|")
    for name, data in (("small", small), ("two cookies", big)):
        read_us, unseal_us, write_us, size = measure(data)
        print(f"| {name} | {size:,} | {read_us:.1f} | {unseal_us:.1f} | {write_us:.1f} |")


if __name__ == "__main__":
    trio.run(main)
