"""The smallest trio-h3 app: ``python examples/hello.py`` or ``trio-h3 run examples.hello:app``."""

from __future__ import annotations

import trio

from trio_h3 import H3, H3Event, HTTPError, serve

app = H3()


@app.get("/")
async def index(event: H3Event) -> str:
    return "Hello from trio-h3!"


@app.get("/users/:id")
async def get_user(event: H3Event) -> dict[str, str]:
    if event.params["id"] != "1":
        raise HTTPError(404, "No such user", data={"id": event.params["id"]})
    return {"id": "1", "name": "Ada"}


@app.post("/users")
async def create_user(event: H3Event) -> dict[str, object]:
    data = await event.json()
    if not isinstance(data, dict):
        raise HTTPError(400, "Expected a JSON object")
    event.status = 201
    return {"id": "2", **data}


if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
