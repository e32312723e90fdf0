"""A token-by-token text stream, like an LLM answer: ``python examples/sse_text.py``.

Open http://127.0.0.1:3000/ and ask something. ``GET /answer?q=...`` streams the answer
as ``token`` events (each token keeps its leading whitespace; a token holding line
breaks is sent as several ``data:`` lines and rebuilt by the browser), then one
``done`` event with a JSON summary.

When the stream fails (the question is refused, the server goes away, the generation
breaks off) the page says so, with the server's message when there is one, instead of
"thinking..." forever; it never lets EventSource ask the question again by itself.

The "model" is an async generator with a small delay per token. It runs inside the
stream callback, so when the reader goes away the generation is cancelled with it:
no zombie generation spending tokens for nobody.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path

import trio

from trio_h3 import (
    H3,
    H3Event,
    HTMLResponse,
    HTTPError,
    SSEEvent,
    SSEWriter,
    StaticFiles,
    serve,
)

app = H3()
# The examples' shared stylesheet, served at /static/style.css.
app.mount("/static", StaticFiles(Path(__file__).resolve().parent / "static"))

#: Seconds between tokens, as a model would pace its output.
TOKEN_DELAY = 0.05
MAX_QUESTION = 500

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trio-h3 text stream</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
<header class="app">
  <span class="brand">trio-h3 · Server-Sent Events</span>
  <h1>Streaming answer</h1>
  <p>The answer arrives token by token, like a language model's. Leave the page and the
  generation stops with it.</p>
</header>
<form id="ask" class="row">
  <input id="q" value="What is trio-h3?" maxlength="500" required aria-label="Question">
  <button id="send">Ask</button>
</form>
<p id="status" class="status" data-state="done">ready</p>
<div class="card"><div id="answer" class="answer"></div></div>
<script>
  const answer = document.getElementById("answer");
  const status = document.getElementById("status");
  const send = document.getElementById("send");
  const show = (state, text) => { status.dataset.state = state; status.textContent = text; };
  let source = null;

  // EventSource cannot read an error response's body: ask again with fetch for the
  // message (a 400 answers at once; a stream that did start is aborted unread).
  async function explain(url) {
    const controller = new AbortController();
    try {
      const response = await fetch(url, {signal: controller.signal});
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        return body.message || response.status + " " + response.statusText;
      }
      return "the stream ended before the answer was complete";
    } catch (error) {
      return "the server cannot be reached";
    } finally {
      controller.abort();
    }
  }

  document.getElementById("ask").onsubmit = (e) => {
    e.preventDefault();
    if (source) source.close();
    answer.textContent = "";
    show("connecting", "thinking...");
    send.disabled = true;
    let tokens = 0;
    let finished = false;
    const url = "/answer?q=" + encodeURIComponent(document.getElementById("q").value);
    source = new EventSource(url);
    const current = source;
    current.addEventListener("token", (ev) => {
      tokens += 1;
      if (tokens === 1) show("live", "answering...");
      answer.textContent += ev.data;
    });
    current.addEventListener("done", (ev) => {
      finished = true;
      const summary = JSON.parse(ev.data);
      show("done", "done: " + summary.tokens + " tokens");
      send.disabled = false;
      current.close();
    });
    current.onerror = async () => {
      current.close();  // no automatic reconnect: it would ask the question again
      if (finished || current !== source) return;
      send.disabled = false;
      if (tokens > 0) {
        show("error", "error: the answer broke off after " + tokens + " tokens; ask again");
      } else {
        show("error", "error: " + (await explain(url)));
      }
    };
  };
</script>
</main>
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
