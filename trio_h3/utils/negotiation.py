"""Content-coding negotiation: ``Accept-Encoding`` with q-values (RFC 9110 §12.5.3). Pure.

Shared by ``compress()`` (which coding to apply) and ``StaticFiles(precompressed=True)``
(which file beside the asked one to send).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..datastructures import Headers

__all__: list[str] = []


def parse_accept_encoding(header: str) -> dict[str, float]:
    """``{coding: q}`` for an ``Accept-Encoding`` value (codings lowercased).

    A malformed q is taken as 0 (refused) rather than guessed. ``x-gzip`` is ``gzip``
    (RFC 9110 §8.4.1.3).
    """
    accepted: dict[str, float] = {}
    for item in header.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        if coding == "x-gzip":
            coding = "gzip"
        accepted[coding] = max(q, accepted.get(coding, 0.0)) if coding in accepted else q
    return accepted


def choose_encoding(header: str | None, available: Sequence[str]) -> str | None:
    """The coding of ``available`` (in the server's order of preference) to use, or None.

    The highest q wins; among equal q the server's order decides (br before gzip: smaller
    for the same CPU at the qualities used). ``*`` covers codings not named; q=0 refuses.
    No header at all means "no preference", which RFC 9110 §12.5.3 allows us to read as
    identity: a client that did not ask gets no coding.
    """
    if not header:
        return None
    accepted = parse_accept_encoding(header)
    wildcard = accepted.get("*", 0.0)
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = accepted.get(coding, wildcard)
        if q > best_q:
            best, best_q = coding, q
    return best


def add_vary(headers: Headers, name: str) -> None:
    """Add ``name`` to the ``Vary`` of ``headers`` unless it is there (RFC 9110 §12.5.5).

    One ``Vary`` line is kept (appended to), so middleware that each add theirs do not
    repeat a name or a header line.
    """
    existing = headers.get("vary")
    if existing is None:
        headers.set("vary", name)
        return
    names = [item.strip().lower() for item in existing.split(",")]
    if name.lower() in names or "*" in names:
        return
    headers.set("vary", f"{existing}, {name}")
