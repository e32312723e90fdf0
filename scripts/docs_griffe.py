"""The griffe extension behind the API reference (mkdocs.yml names it; mkdocstrings runs it).

trio-h3's docstrings are written for readers of the source: reST roles
(``:class:`H3Event```), ``#:`` comments above attributes, and ``ServeOptions`` fields
whose help text lives in their ``option(...)`` call. This turns them into what the
reference shows, without a second copy of any text:

- ``#:`` comment lines right above an attribute become its docstring;
- a ``ServeOptions`` field ``option(default, help=..., precedent=...)`` shows
  ``default`` as its value and its help (and precedent) as its docstring, the same text
  ``trio-h3 run --help`` and docs/cli.md show;
- a role names an object: one the reference documents becomes a link to it, anything
  else (a private module, a helper) a code span; one that names nothing at all is a
  warning, so ``mkdocs build --strict`` fails on a stale name;
- a reST ``text::`` before an indented block becomes ``text:`` (the block stays code);
- a documented public name, or a public function, class or property of one, without a
  docstring is a warning too: the reference cannot silently grow an empty entry.
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path
from typing import Any

import griffe

_log = griffe.get_logger("trio_h3.docs")

_ROLE = re.compile(
    r":(?:py:)?(class|meth|func|mod|data|attr|exc|obj|const):`(~?)([\w.]+)(?:\(\))?`"
)
_LITERAL = re.compile(r"::\n(\n[ \t]+\S)")
#: The packages whose ``__all__`` is the documented API.
_DOCUMENTED_PACKAGES = ("trio_h3", "trio_h3.testing")


class TrioH3Docs(griffe.Extension):
    """Docstrings as the reference shows them (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._lines: dict[Path, list[str]] = {}

    # -- while visiting: #: comments and ServeOptions' option(...) fields -------------

    def _source(self, path: Path) -> list[str]:
        if path not in self._lines:
            self._lines[path] = path.read_text(encoding="utf-8").splitlines()
        return self._lines[path]

    def on_attribute_instance(
        self, *, node: ast.AST | griffe.ObjectNode, attr: griffe.Attribute, **kwargs: Any
    ) -> None:
        if isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Call):
            call = node.value
            if isinstance(call.func, ast.Name) and call.func.id == "option" and call.args:
                words = {k.arg: k.value for k in call.keywords}
                help_text = _constant(words.get("help"))
                precedent = _constant(words.get("precedent"))
                attr.value = ast.unparse(call.args[0])
                if help_text:
                    text = help_text + (f"\n\nDefault: {precedent}." if precedent else "")
                    attr.docstring = griffe.Docstring(text, parent=attr)
                return
        if attr.docstring is not None or attr.lineno is None or attr.filepath is None:
            return
        path = attr.filepath if isinstance(attr.filepath, Path) else attr.filepath[0]
        lines = self._source(Path(path))
        comment: list[str] = []
        index = attr.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#:"):
            comment.insert(0, lines[index].strip()[2:].strip())
            index -= 1
        if comment:
            attr.docstring = griffe.Docstring(" ".join(comment), parent=attr)

    # -- once the package is loaded: roles, and what is documented ----------------------

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "trio_h3":
            return
        documented = _documented_targets(pkg)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = _rewrite(obj.docstring.value, obj, documented)
        for path in sorted(documented):
            target = _lookup(pkg, path)
            if target is None:
                continue
            if not target.docstring and path.rpartition(".")[2] != "__version__":
                _log.warning("trio_h3 docs: %s has no docstring", path)
            if target.is_class:
                for name, member in target.members.items():
                    if name.startswith("_") or member.is_alias:
                        continue
                    wanted = member.is_function or member.is_class or "property" in member.labels
                    if wanted and not member.docstring:
                        _log.warning("trio_h3 docs: %s.%s has no docstring", path, name)


def _constant(node: ast.expr | None) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if member.is_alias:
            continue
        found.extend(_walk(member))  # type: ignore[arg-type]
    return found


def _lookup(pkg: griffe.Module, path: str) -> griffe.Object | None:
    try:
        found = pkg.modules_collection[path]
    except (KeyError, ValueError):
        return None
    while isinstance(found, griffe.Alias):
        try:
            found = found.final_target
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
    return found if isinstance(found, griffe.Object) else None


def _documented_targets(pkg: griffe.Module) -> set[str]:
    """The canonical paths of the names in the documented ``__all__`` lists."""
    paths: set[str] = set()
    for package_path in _DOCUMENTED_PACKAGES:
        package = _lookup(pkg, package_path)
        if not isinstance(package, griffe.Module):
            continue
        for name in package.exports or ():
            member = package.members.get(str(name))
            if member is None:
                continue
            paths.add(member.target_path if isinstance(member, griffe.Alias) else member.path)
    return paths


def _is_documented(path: str, documented: set[str]) -> bool:
    if path in documented:
        return True
    parent, _, name = path.rpartition(".")
    return parent in documented and not name.startswith("_")


def _resolve(name: str, obj: griffe.Object) -> str | None:
    """The canonical path ``name`` means in ``obj``'s scope (as Sphinx reads a role), or
    None when it names nothing."""
    if name.startswith("."):
        module = obj.module
        base = module.path if module.is_init_module else module.path.rpartition(".")[0]
        dots = len(name) - len(name.lstrip("."))
        for _ in range(dots - 1):
            base = base.rpartition(".")[0]
        name = f"{base}.{name.lstrip('.')}"
    head, _, rest = name.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            found = scope.resolve(head)
        except griffe.NameResolutionError:
            scope = scope.parent
            continue
        path = f"{found}.{rest}" if rest else found
        target = _lookup(obj.package, path)
        return target.path if target is not None else path
    target = _lookup(obj.package, name)
    if target is not None:
        return target.path
    if head in vars(builtins):
        return name
    return None


def _rewrite(text: str, obj: griffe.Object, documented: set[str]) -> str:
    def role(match: re.Match[str]) -> str:
        kind, short, name = match.groups()
        shown = name.rpartition(".")[2] if short else name
        if kind in ("meth", "func"):
            shown += "()"
        path = _resolve(name, obj)
        if path is None:
            _log.warning("trio_h3 docs: %s: %s names nothing", obj.path, match.group(0))
            return f"`{shown}`"
        if kind != "mod" and _is_documented(path, documented):
            return f"[`{shown}`][{path}]"
        return f"`{shown}`"

    return _LITERAL.sub(r":\n\1", _ROLE.sub(role, text))
