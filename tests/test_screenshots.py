"""The screenshots in docs/images/ are made by scripts/screenshots.py, not drawn by hand.

Every image there is one the script writes and every one it writes is there (so none is
stale or hand-made), each is shown by a page, and the script still runs (slow: one
example, in a temp folder, in Chromium).
"""

from __future__ import annotations

import functools
import importlib.util
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


@functools.cache
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "screenshots", ROOT / "scripts" / "screenshots.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["screenshots"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def written() -> set[str]:
    shots = script()
    return {f"{name}.png" for shot in shots.SHOTS for name in shots.names(shot)}


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_docs_images_are_what_the_script_writes() -> None:
    assert {path.name for path in IMAGES.iterdir()} == written()


def test_every_image_is_shown_somewhere() -> None:
    pages = "".join(
        p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *ROOT.glob("docs/*.md")]
    )
    for name in sorted(written()):
        assert f"images/{name}" in pages, f"no page shows docs/images/{name}"


@pytest.mark.slow
def test_the_script_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "screenshots.py"),
            "--only",
            "example-sse_text",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert png_size(tmp_path / "example-sse_text.png") == (960, 640)
    assert png_size(tmp_path / "example-sse_text-phone.png") == (390, 740)
