"""A file upload page: a form with text fields and a ``multiple`` file input, the files
streamed to a folder, the result shown.

Run it with ``python examples/upload.py`` (127.0.0.1:3000) or
``trio-h3 run examples.upload:app``, open http://127.0.0.1:3000/ in a browser, or::

    curl -F title=Holiday -F files=@photo.jpg -F files=@notes.txt localhost:3000/upload

The body is parsed as it arrives: each file is held in memory up to 1 MiB, then spooled
to a temp file (``event.form()``), and saved under a name of our own in ``UPLOAD_DIR``
(``$UPLOAD_DIR``, else ``trio-h3-uploads`` in the temp folder). The name the browser sent
is shown, escaped, and never used as a path. At most 100 MiB per upload (413 past it).
"""

from __future__ import annotations

import html
import os
import re
import tempfile
import uuid
from pathlib import Path

import trio

from trio_h3 import H3, H3Event, HTMLResponse, HTTPError, StaticFiles, UploadFile, serve

UPLOAD_DIR = Path(os.environ.get("UPLOAD_DIR") or Path(tempfile.gettempdir()) / "trio-h3-uploads")
MAX_UPLOAD = 100 * 2**20
MAX_FILES = 20
# What a saved file may keep of the client's name: a short alphanumeric extension.
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Upload</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<main>
<header class="app">
  <span class="brand">trio-h3 · forms</span>
  <h1>{heading}</h1>
  <p>Files are streamed to disk as they arrive, saved under names of our own.</p>
</header>
{content}
</main>
</body>
</html>
"""

FORM = """<form class="card" method="post" action="/upload" enctype="multipart/form-data">
  <label for="title">Title</label>
  <input id="title" name="title" required maxlength="200">
  <label for="note">Note</label>
  <textarea id="note" name="note" rows="3"></textarea>
  <label for="files">Files</label>
  <input id="files" name="files" type="file" multiple>
  <p><button type="submit">Upload</button></p>
</form>"""


def saved_name(file: UploadFile) -> str:
    """A name of our own; only a harmless extension survives from the client's."""
    suffix = Path(file.filename.replace("\\", "/")).suffix
    return uuid.uuid4().hex + (suffix.lower() if _SUFFIX.fullmatch(suffix) else "")


def create_app(upload_dir: Path = UPLOAD_DIR) -> H3:
    app = H3()
    # The examples' shared stylesheet, served at /static/style.css.
    app.mount("/static", StaticFiles(Path(__file__).resolve().parent / "static"))

    @app.get("/")
    async def index(event: H3Event) -> HTMLResponse:
        return HTMLResponse(PAGE.format(heading="Upload files", content=FORM))

    @app.post("/upload", max_body_size=MAX_UPLOAD)
    async def upload(event: H3Event) -> HTMLResponse:
        form = await event.form(max_files=MAX_FILES)
        title = form.get("title")
        if not isinstance(title, str) or not title.strip():
            raise HTTPError(400, "A title is required")
        note = form.get("note")
        await trio.Path(upload_dir).mkdir(parents=True, exist_ok=True)
        rows = []
        for _, file in form.files():
            if not file.filename and not file.size:
                continue  # the file input left empty: browsers still send a part
            name = saved_name(file)
            await file.save(upload_dir / name)
            rows.append(
                f"<tr><td>{html.escape(file.filename)}</td><td>{file.size}</td>"
                f"<td>{html.escape(file.content_type)}</td><td><code>{name}</code></td></tr>"
            )
        table = (
            '<div class="table-wrap"><table>'
            "<tr><th>File</th><th>Bytes</th><th>Type</th><th>Saved as</th></tr>"
            + "".join(rows)
            + "</table></div>"
            if rows
            else "<p>No files.</p>"
        )
        content = (
            '<div class="card">'
            + f'<p id="title">{html.escape(title)}</p>'
            + (f'<p id="note">{html.escape(note)}</p>' if isinstance(note, str) and note else "")
            + table
            + f"<p>Saved in <code>{html.escape(str(upload_dir))}</code>. "
            + '<a href="/">Upload more</a></p></div>'
        )
        return HTMLResponse(PAGE.format(heading="Uploaded", content=content))

    return app


app = create_app()

if __name__ == "__main__":
    trio.run(serve, app)  # 127.0.0.1:3000 unless told otherwise
