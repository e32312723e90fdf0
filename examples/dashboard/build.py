"""Precompress the dashboard's assets: ``python examples/dashboard/build.py``.

Writes ``name.br`` and ``name.gz`` beside every HTML, CSS and JS file in ``public/`` at
the highest settings (this runs once, at build time, not per request), so
``StaticFiles(precompressed=True)`` can send them to browsers that accept them.
tests/test_examples_dashboard.py checks that the files committed match their sources.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import brotli

PUBLIC = Path(__file__).resolve().parent / "public"
SUFFIXES = (".html", ".css", ".js")


def sources() -> list[Path]:
    """The assets worth precompressing."""
    return sorted(p for p in PUBLIC.iterdir() if p.suffix in SUFFIXES)


def build() -> list[Path]:
    """Write the .br and .gz of every source; the files written."""
    written = []
    for source in sources():
        data = source.read_bytes()
        brotli_path = source.with_name(source.name + ".br")
        brotli_path.write_bytes(brotli.compress(data, quality=11))
        gzip_path = source.with_name(source.name + ".gz")
        # mtime=0: the same bytes on every build, so rebuilding changes nothing.
        gzip_path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        written += [brotli_path, gzip_path]
    return written


if __name__ == "__main__":
    for path in build():
        print(path.relative_to(PUBLIC.parent))
