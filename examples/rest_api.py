"""An in-memory CRUD API for notes: 201 on create, 404 for unknown ids, 405 for a wrong
method, 413 for an oversized body (this server takes at most 16 KiB per request).

Run it with ``python examples/rest_api.py`` (port 3000) or
``trio-h3 run examples.rest_api:app``, then::

    curl -i localhost:3000/notes -d '{"title": "Buy milk"}' -H 'content-type: application/json'
    curl -i localhost:3000/notes/1
    curl -i -X PATCH localhost:3000/notes/1 -d '{"done": true}'
    curl -i -X DELETE localhost:3000/notes/1
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import trio

from trio_h3 import H3, H3Event, HTTPError, ServeOptions, serve

#: Small on purpose: a body over 16 KiB is answered with 413 before it is read. The app
#: carries it, so ``python examples/rest_api.py``, ``trio-h3 run examples.rest_api:app``
#: and the TestClient all apply it (``--max-body-size`` would still override it).
OPTIONS = ServeOptions(max_body_size=16 * 1024)

MAX_TITLE = 200


@dataclass
class Note:
    id: int
    title: str
    done: bool = False


def _validate(data: Any, *, partial: bool) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise HTTPError(400, "Expected a JSON object")
    unknown = set(data) - {"title", "done"}
    if unknown:
        raise HTTPError(400, "Unknown fields", data={"fields": sorted(unknown)})
    if "title" in data or not partial:
        title = data.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
            raise HTTPError(
                400, f"'title' must be a non-empty string of at most {MAX_TITLE} characters"
            )
    if "done" in data and not isinstance(data["done"], bool):
        raise HTTPError(400, "'done' must be true or false")
    return data


def create_app() -> H3:
    """A fresh app with its own empty store (one per test, one for the server)."""
    app = H3(serve_options=OPTIONS)
    notes: dict[int, Note] = {}
    ids = itertools.count(1)

    def find(event: H3Event) -> Note:
        raw = event.params["id"]
        note = notes.get(int(raw)) if raw.isdigit() else None
        if note is None:
            raise HTTPError(404, "No such note", data={"id": raw})
        return note

    @app.get("/notes")
    async def list_notes(event: H3Event) -> list[dict[str, Any]]:
        items = list(notes.values())
        done = event.query.get("done")
        if done is not None:
            items = [n for n in items if n.done == (done == "true")]
        return [asdict(n) for n in items]

    @app.post("/notes")
    async def create_note(event: H3Event) -> dict[str, Any]:
        data = _validate(await event.json(), partial=False)
        note = Note(next(ids), data["title"].strip(), data.get("done", False))
        notes[note.id] = note
        event.status = 201
        event.response_headers.set("location", f"/notes/{note.id}")
        return asdict(note)

    @app.get("/notes/:id")
    async def get_note(event: H3Event) -> dict[str, Any]:
        return asdict(find(event))

    @app.patch("/notes/:id")
    async def update_note(event: H3Event) -> dict[str, Any]:
        note = find(event)
        data = _validate(await event.json(), partial=True)
        if "title" in data:
            note.title = data["title"].strip()
        if "done" in data:
            note.done = data["done"]
        return asdict(note)

    @app.delete("/notes/:id")
    async def delete_note(event: H3Event) -> None:
        del notes[find(event).id]

    return app


app = create_app()


if __name__ == "__main__":
    trio.run(serve, app)
