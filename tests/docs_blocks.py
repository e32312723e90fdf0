"""The code blocks of README.md and docs/: found, classified, and the shell ones checked.

The rules (tests/test_docs.py applies them to every page):

- Every fenced block names its language; the known ones are in :data:`LANGUAGES`, and a
  block in any other (or none) fails, so a new kind of block gets a rule on purpose.
- ``python``: run. A block preceded by the line ``<!-- docs: other framework -->``
  (invisible on the page, and allowed only on the pages in :data:`FOREIGN_PAGES`) is
  another framework's code, shown for comparison: compiled, not run, since its framework
  is not installed. A block preceded by ``<!-- docs: continue -->`` continues the
  page's previous trio-h3 Python block: it runs after it, in the same
  module, and the previous block is still checked on its own. What the source up to a
  block is decides how it runs:

  - it defines ``test_*`` functions: a test module, run under pytest with pytest-trio in
    trio mode (as a reader's copy would run), each test within :data:`BUDGET` seconds of
    wall-clock time (a test that sleeps on the real clock instead of asking for
    ``autojump_clock`` fails here);
  - else it has ``if __name__ == "__main__":``: a server, run as a program on a free
    port (its ``serve()`` is given ``port=0``) until it listens, then stopped with
    SIGINT, which must end it with status 0;
  - else a script, imported once (within the same budget).

- ``sh`` / ``bash`` / ``console`` / ``shell``: not run, but each command is checked:
  ``trio-h3 ...`` and ``python -m trio_h3 ...`` are parsed by the CLI's own parser (and
  an ``examples.*`` app must import); ``pip install`` extras must exist in
  pyproject.toml; ``python examples/x.py`` must name a file that exists.
- ``ini`` (a systemd unit): its ``ExecStart=`` is checked as a shell command.
- ``json``: must parse. ``text``, ``nginx``, ``caddy``, ``javascript`` (a page's script,
  which the example tests exercise in Chromium): shown as they are.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md")])
#: Seconds of wall-clock time a docs test (or script) may take.
BUDGET = 5.0
CONTINUE = "<!-- docs: continue -->"
FOREIGN = "<!-- docs: other framework -->"
#: The pages that may show another framework's code (compiled only).
FOREIGN_PAGES = {"docs/coming-from.md"}
SHELL = {"sh", "bash", "console", "shell"}
LANGUAGES = {"python", "json", "text", "nginx", "caddy", "ini", "javascript"} | SHELL

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<info>[^`]*?)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, what it continues."""

    page: str
    line: int
    lang: str
    code: str
    continues: bool = False
    foreign: bool = False

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` (a Markdown file), in order."""
    name = str(page.relative_to(ROOT))
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        lang = opening["info"].split(" ", 1)[0].split("{", 1)[0].lower()
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if closing and closing["fence"].startswith(fence) and not closing["info"]:
                break
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        else:
            raise ValueError(f"{name}:{start + 1}: the block is never closed")
        before = next((lines[i].strip() for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        code = "\n".join(body) + "\n"
        found.append(Block(name, start + 1, lang, code, before == CONTINUE, before == FOREIGN))
        index += 1
    return found


def fence_count(page: Path) -> int:
    """Lines that look like a fence: twice the blocks :func:`blocks` must find."""
    return sum(1 for line in page.read_text(encoding="utf-8").splitlines() if _FENCE.match(line))


def programs(page_blocks: list[Block]) -> list[tuple[Block, str]]:
    """Each Python block with the source it runs as (itself after what it continues)."""
    result: list[tuple[Block, str]] = []
    source: str | None = None
    for block in page_blocks:
        if block.lang != "python" or block.foreign:
            continue
        if block.continues:
            if source is None:
                raise ValueError(f"{block.where}: continues, but no Python block comes before")
            source = source + "\n" + block.code
        else:
            source = block.code
        result.append((block, source))
    return result


def kind(source: str) -> str:
    """``"tests"``, ``"server"`` or ``"script"`` (see the module docstring)."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test_"
        ):
            return "tests"
    if re.search(r'^if __name__ == "__main__":', source, re.M):
        return "server"
    return "script"


# -- commands in shell blocks ------------------------------------------------------------


def commands(code: str) -> list[list[str]]:
    """The simple commands of a shell block: prompts dropped, lines joined, split on
    ``&&``, ``||``, ``;`` and ``|``; comments and output lines (after a ``$`` prompt
    block) left out."""
    text = code.replace("\\\n", " ")
    prompted = any(line.startswith("$ ") for line in text.splitlines())
    found: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if prompted:
            if not line.startswith("$ "):
                continue  # output
            line = line[2:]
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list[str] = []
        for token in lexer:
            if token in {"&&", "||", ";", "|", "&"}:
                if command:
                    found.append(command)
                command = []
            else:
                command.append(token)
        if command:
            found.append(command)
    return found


def trio_h3_argv(command: list[str]) -> list[str] | None:
    """The arguments after ``trio-h3`` / ``python -m trio_h3``, or None for another command."""
    words = command[:]
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words.pop(0)  # VAR=value prefixes
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program == "trio-h3":
        return words[1:]
    if re.fullmatch(r"python3?(\.\d+)?", program) and words[1:3] == ["-m", "trio_h3"]:
        return words[3:]
    return None


def pip_extras(command: list[str]) -> list[str]:
    """The extras a ``pip install`` of this project asks for (``.[a,b]``, ``trio-h3[a]``)."""
    words = command[:]
    program = words[0].rsplit("/", 1)[-1] if words else ""
    if re.fullmatch(r"python3?(\.\d+)?", program) and words[1:3] == ["-m", "pip"]:
        words = words[2:]
    elif program not in {"pip", "pip3"}:
        return []
    if words[1:2] != ["install"]:
        return []
    extras: list[str] = []
    for word in words[2:]:
        match = re.fullmatch(r"(\.|trio-h3|trio_h3)\[([\w,-]+)\]", word)
        if match:
            extras += match[2].split(",")
    return extras


def example_scripts(command: list[str]) -> list[str]:
    """The ``examples/...py`` files a ``python`` command runs."""
    program = command[0].rsplit("/", 1)[-1] if command else ""
    if not re.fullmatch(r"python3?(\.\d+)?", program):
        return []
    return [word for word in command[1:2] if word.startswith("examples/")]


def unit_commands(code: str) -> list[list[str]]:
    """The ``ExecStart=`` commands of a systemd unit."""
    return [
        shlex.split(line.split("=", 1)[1])
        for line in code.splitlines()
        if line.startswith("ExecStart=")
    ]


def json_ok(code: str) -> None:
    """Raise ValueError if ``code`` is not JSON."""
    json.loads(code)
