"""A token-by-token text stream, like an LLM answer: ``python examples/sse_text.py``.

Open http://127.0.0.1:3000/ and ask something. ``GET /answer?q=...`` streams the answer
as ``token`` events (each token keeps its leading whitespace; a token holding line
breaks is sent as several ``data:`` lines and rebuilt by the browser), then one
``done`` event with a JSON summary.

The "model" is an async generator with a small delay per token. It runs inside the
stream callback, so when the reader goes away the generation is cancelled with it:
no zombie generation spending tokens for nobody.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from contextlib import aclosing

import trio

from trio_h3 import H3, H3Event, HTMLResponse, HTTPError, SSEEvent, SSEWriter, serve

app = H3()

#: Seconds between tokens, as a model would pace its output.
TOKEN_DELAY = 0.05
MAX_QUESTION = 500

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>trio-h3 text stream</title>
<style>pre { white-space: pre-wrap; font: 1rem/1.4 system-ui; }</style></head>
<body>
<h1>Streaming answer</h1>
<form id="ask"><input id="q" value="What is trio-h3?" size="40"> <button>Ask</button></form>
<pre id="answer"></pre>
<p id="status"></p>
<script>
  let source = null;
  document.getElementById("ask").onsubmit = (e) => {
    e.preventDefault();
    if (source) source.close();
    const answer = document.getElementById("answer");
    const status = document.getElementById("status");
    answer.textContent = "";
    status.textContent = "thinking...";
    const q = encodeURIComponent(document.getElementById("q").value);
    source = new EventSource("/answer?q=" + q);
    source.addEventListener("token", (ev) => { answer.textContent += ev.data; });
    source.addEventListener("done", (ev) => {
      const summary = JSON.parse(ev.data);
      status.textContent = "done: " + summary.tokens + " tokens";
      source.close();
    });
  };
</script>
</body>
</html>
"""

_TOKEN = re.compile(r"\s*\S+")


def compose_answer(question: str) -> str:
    """The canned answer to any question (two paragraphs, so one token has line breaks)."""
    return (
        f"You asked: {question}\n\n"
        "trio-h3 streams Server-Sent Events from a callback that runs in a child nursery "
        "of the connection. When the reader leaves, the callback is cancelled at its next "
        "checkpoint, and so is everything it started."
    )


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens that keep their leading whitespace (``"".join`` undoes it)."""
    return _TOKEN.findall(text)


async def generate_answer(question: str) -> AsyncGenerator[str, None]:
    """The stand-in for a model: yields the answer token by token."""
    for token in tokenize(compose_answer(question)):
        await trio.sleep(TOKEN_DELAY)
        yield token


@app.get("/")
async def index(event: H3Event) -> HTMLResponse:
    """The page that asks and listens with EventSource."""
    return HTMLResponse(PAGE)


@app.get("/answer")
async def answer(event: H3Event) -> None:
    """Validate the question, then stream the answer from :func:`stream_answer`."""
    question = (event.query.get("q") or "").strip()
    if not question:
        raise HTTPError(400, "Ask something: /answer?q=...")
    if len(question) > MAX_QUESTION:
        raise HTTPError(400, f"The question is longer than {MAX_QUESTION} characters")
    event.start_sse()
    event.set_stream_callback(stream_answer, question)


async def stream_answer(writer: SSEWriter, question: str) -> None:
    """One ``token`` event per token, then ``done`` with a summary."""
    tokens = 0
    chars = 0
    async with aclosing(generate_answer(question)) as generation:
        async for token in generation:
            await writer.send(SSEEvent(data=token, event="token"))
            tokens += 1
            chars += len(token)
    await writer.send(SSEEvent(data=json.dumps({"tokens": tokens, "chars": chars}), event="done"))


if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
