"""examples/upload.py: through the TestClient, and submitted by a real headless Chromium.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (sync API) in a worker
thread, beside the Trio server under test.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers import RunServer
from trio.testing import MockClock

from examples.upload import create_app
from trio_h3.testing import TestClient

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def saved(upload_dir: Path) -> dict[str, bytes]:
    """The files saved in ``upload_dir``: name -> content."""
    return {path.name: path.read_bytes() for path in upload_dir.iterdir()}


async def test_the_page_has_a_multipart_form(autojump_clock: MockClock, tmp_path: Path) -> None:
    async with TestClient(create_app(tmp_path)) as client:
        r = await client.get("/")
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        assert 'enctype="multipart/form-data"' in r.text
        assert 'type="file" multiple' in r.text


async def test_an_upload_is_saved_under_our_own_names(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    async with TestClient(create_app(tmp_path)) as client:
        r = await client.post(
            "/upload",
            data={"title": "Holiday <3", "note": "two files"},
            files=[
                ("files", ("../../evil<script>.PNG", b"\x89PNG data", "image/png")),
                ("files", ("notes.txt", b"hello", "text/plain")),
                ("files", ("", b"", "application/octet-stream")),  # the input left empty
            ],
        )
        assert r.status == 200
        assert '<p id="title">Holiday &lt;3</p>' in r.text
        assert "../../evil&lt;script&gt;.PNG" in r.text and "<script>" not in r.text
        files = saved(tmp_path)
        assert sorted(files.values()) == sorted([b"\x89PNG data", b"hello"])
        assert sorted(Path(name).suffix for name in files) == [".png", ".txt"]
        assert all(name in r.text for name in files)
        assert (await client.post("/upload", data={"note": "no title"})).status == 400


def submit_with_chromium(url: str, title: str, paths: list[Path]) -> dict[str, Any]:
    """Open the page, fill the form, pick the files, submit; what the result page shows."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(url)
            page.fill("#title", title)
            page.fill("#note", "sent by Chromium")
            page.set_input_files("#files", [str(path) for path in paths])
            with page.expect_navigation():
                page.click("button[type=submit]")
            rows = page.locator("table tr").all_inner_texts()
            return {
                "heading": page.inner_text("h1"),
                "title": page.inner_text("#title"),
                "note": page.inner_text("#note"),
                "rows": [row.split("\t") for row in rows[1:]],
            }
        finally:
            browser.close()


@pytest.mark.slow
async def test_a_real_browser_submits_the_form(running_server: RunServer, tmp_path: Path) -> None:
    uploads, picked = tmp_path / "uploads", tmp_path / "picked"
    picked.mkdir()
    contents = {
        "résumé ✓.txt": "Zoë's résumé\n".encode(),
        "photo.jpg": os.urandom(3 * 2**20),  # past the 1 MiB spool: through a temp file
        "empty.bin": b"",
    }
    paths = []
    for name, data in contents.items():
        path = picked / name
        path.write_bytes(data)
        paths.append(path)
    async with running_server(create_app(uploads), bound=120) as server:
        shown = await trio.to_thread.run_sync(
            submit_with_chromium, f"{server.url}/", "Über trip", paths
        )
    assert (shown["heading"], shown["title"], shown["note"]) == (
        "Uploaded",
        "Über trip",
        "sent by Chromium",
    )
    by_name = {row[0]: row for row in shown["rows"]}
    assert set(by_name) == set(contents)
    assert by_name["photo.jpg"][1:3] == [str(len(contents["photo.jpg"])), "image/jpeg"]
    assert by_name["résumé ✓.txt"][2] == "text/plain"
    # Every file arrived intact, under the name the page says.
    files = saved(uploads)
    for name, data in contents.items():
        assert hashlib.sha256(files[by_name[name][3]]).digest() == hashlib.sha256(data).digest()
