"""``trio-h3 run``'s flags, in-process: one per ServeOptions field, only the given ones
override, docs/cli.md is what the code renders, and the helpers (env file, reload filter,
log format) behave as documented."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from trio_h3 import H3, ServeOptions
from trio_h3.cli import docs, envfile, logs
from trio_h3.cli.flags import _make_flag, add_flag, add_serve_flags, given_options, options_for
from trio_h3.cli.main import COMMAND_FLAGS, build_parser
from trio_h3.cli.reload import ReloadFilter, _Watcher, child_argv, reload_dirs
from trio_h3.server.options import option

ROOT = Path(__file__).resolve().parent.parent


def parse(*argv: str) -> tuple[argparse.Namespace, dict[str, object]]:
    parser, flags = build_parser()
    args = parser.parse_args(["run", "examples.hello:app", *argv])
    return args, given_options(args, flags)


def help_text() -> str:
    parser, _ = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "run"
    ]
    return re.sub(r"\s+", " ", str(sub.format_help()))


# -- every field has a flag, and --help shows it ------------------------------------------


def test_every_serve_options_field_has_a_flag_in_run_help() -> None:
    text = help_text()
    _, flags = build_parser()
    assert {f.field for f in flags} == {f.name for f in dataclasses.fields(ServeOptions)}
    for flag in flags:
        for name in (*flag.names, *([flag.off] if flag.off else [])):
            assert re.search(rf"(^|\s|\[){re.escape(name)}\b", text), name
        assert f"[{flag.field}; default" in text
    for command in COMMAND_FLAGS:
        assert command.names[0] in text


def test_uvicorn_names_where_the_concept_is_the_same() -> None:
    _, flags = build_parser()
    by_field = {f.field: f.names for f in flags}
    assert by_field["keep_alive_timeout"] == ("--timeout-keep-alive",)
    assert by_field["shutdown_timeout"] == ("--timeout-graceful-shutdown",)
    assert by_field["max_header_size"] == ("--max-header-size", "--h11-max-incomplete-event-size")
    assert by_field["ws_max_message_size"] == ("--ws-max-size",)
    assert by_field["extra_headers"] == ("--header",)
    for name in ("limit_concurrency", "limit_max_requests", "backlog", "root_path", "uds", "fd"):
        assert by_field[name] == ("--" + name.replace("_", "-"),)


def test_a_field_without_metadata_gets_a_derived_flag() -> None:
    @dataclasses.dataclass
    class Future:
        #: What the new field does.
        ws_compression: bool = True
        http: Literal["auto", "h11", "httptools"] = "auto"
        forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
        ws_send_timeout: float | None = 10.0
        documented: int = option(3, help="Said here.", flag="--said")

    comments = {"ws_compression": "What the new field does."}
    hints = {
        "ws_compression": bool,
        "http": Literal["auto", "h11", "httptools"],
        "forwarded_allow_ips": tuple[str, ...],
        "ws_send_timeout": float | None,
        "documented": int,
    }
    made = {f.name: _make_flag(f, hints[f.name], comments) for f in dataclasses.fields(Future)}
    assert made["ws_compression"].names == ("--ws-compression",)
    assert made["ws_compression"].kind == "bool"
    assert made["ws_compression"].help == "What the new field does."
    assert made["http"].choices == ("auto", "h11", "httptools")
    assert made["forwarded_allow_ips"].kind == "list"
    assert made["ws_send_timeout"].off == "--no-ws-send-timeout"
    assert made["documented"].names == ("--said",)
    assert made["documented"].help == "Said here."
    parser = argparse.ArgumentParser()
    for flag in made.values():  # they register like the real ones
        add_flag(parser, flag)
    args = parser.parse_args(
        ["--http", "h11", "--forwarded-allow-ips", "10.0.0.1,10.0.0.2", "--no-ws-compression"]
    )
    assert given_options(args, list(made.values())) == {
        "http": "h11",
        "forwarded_allow_ips": ("10.0.0.1", "10.0.0.2"),
        "ws_compression": False,
    }
    with pytest.raises(SystemExit):
        parser.parse_args(["--http", "h2"])


def test_the_serve_flags_can_be_added_to_any_parser() -> None:
    parser = argparse.ArgumentParser()
    flags = add_serve_flags(parser)
    args = parser.parse_args(["--port", "8000"])
    assert given_options(args, flags) == {"port": 8000}


def test_the_parser_backend_is_a_flag_with_its_three_choices() -> None:
    _, given = parse("--http", "httptools")
    assert options_for(None, given).http == "httptools"
    assert parse()[1] == {}  # not given: the app's own choice (ServeOptions' "auto")
    with pytest.raises(SystemExit):
        parse("--http", "h2")


# -- only the flags given override the app's own options ----------------------------------


def test_no_flags_means_the_apps_options() -> None:
    _, given = parse()
    assert given == {}
    app = H3(serve_options=ServeOptions(max_body_size=16 * 1024, port=8080))
    assert options_for(app.serve_options, given) is app.serve_options
    assert options_for(None, given) == ServeOptions()


def test_flags_given_go_on_top_of_the_apps_options() -> None:
    _, given = parse("--port", "0", "--timeout-keep-alive", "2.5", "--no-access-log")
    app_options = ServeOptions(max_body_size=16 * 1024, port=8080)
    options = options_for(app_options, given)
    assert options.max_body_size == 16 * 1024  # the app's, untouched
    assert (options.port, options.keep_alive_timeout, options.access_log) == (0, 2.5, False)


def test_value_kinds() -> None:
    _, given = parse(
        "--header",
        "X-Frame-Options: DENY",
        "--header",
        "x-a:b:c",
        "--no-server-header",
        "--no-date-header",
        "--no-sse-ping-interval",
        "--h11-max-incomplete-event-size",
        "32768",
        "--limit-concurrency",
        "10",
        "--root-path",
        "/api/",
    )
    options = options_for(None, given)
    assert options.extra_headers == (("X-Frame-Options", "DENY"), ("x-a", "b:c"))
    assert options.server_header is None
    assert options.date_header is False
    assert options.sse_ping_interval is None
    assert options.max_header_size == 32768
    assert options.limit_concurrency == 10
    assert options.root_path == "/api"


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "eighty"],
        ["--header", "no-colon"],
        ["--log-level", "loud"],
        ["--timeout-keep", "1"],  # no abbreviations: a flag is spelled out
        ["--unknown"],
    ],
)
def test_bad_values_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        parse(*argv)
    assert exit.value.code == 2
    assert "usage: trio-h3" in capsys.readouterr().err


def test_invalid_combinations_name_the_field() -> None:
    _, given = parse("--uds", "/tmp/x.sock", "--fd", "3")
    with pytest.raises(ValueError, match="uds and fd"):
        options_for(None, given)
    with pytest.raises(ValueError, match="limit_concurrency must be at least 1"):
        options_for(None, parse("--limit-concurrency", "0")[1])
    with pytest.raises(ValueError, match="'bad name' is not a valid header name"):
        options_for(None, parse("--header", "bad name:x")[1])
    with pytest.raises(ValueError, match="ssl_keyfile needs ssl_certfile"):
        options_for(None, parse("--ssl-keyfile", "key.pem")[1])
    with pytest.raises(ValueError, match="root_path must start with '/'"):
        options_for(None, parse("--root-path", "api")[1])


def test_an_app_carries_only_serve_options() -> None:
    with pytest.raises(TypeError, match="serve_options must be a ServeOptions, not dict"):
        H3(serve_options={"port": 1})  # type: ignore[arg-type]


# -- docs/cli.md ----------------------------------------------------------------------------


def test_docs_cli_md_is_what_the_code_renders() -> None:
    page = (ROOT / "docs" / "cli.md").read_text()
    assert docs.render_page(page) == page, "run: python -m trio_h3.cli.docs"
    table = docs.render_table()
    _, flags = build_parser()
    for flag in flags:
        assert f"| `{flag.field}` |" in table
    for command in COMMAND_FLAGS:
        assert f"`{command.names[0]}" in table


def test_docs_main_rewrites_the_table(tmp_path: Path) -> None:
    page = tmp_path / "cli.md"
    page.write_text(f"# CLI\n\n{docs.BEGIN}\nSTALE ROW\n{docs.END}\n\nafter\n")
    docs.main(str(page))
    text = page.read_text()
    assert (
        "STALE ROW" not in text and "| `--port N` | `port` |" in text and text.endswith("after\n")
    )
    page.write_text("no markers")
    with pytest.raises(ValueError, match="lacks the markers"):
        docs.main(str(page))


# -- --env-file ----------------------------------------------------------------------------


def test_env_file_format() -> None:
    text = (
        "# a comment\n"
        "PLAIN=value # trailing comment\n"
        "export EXPORTED=1\n"
        "SINGLE='lit\\n # not a comment'\n"
        'DOUBLE="a\\nb \\"q\\""\n'
        'MULTI="line one\n'
        'line two"\n'
        "EMPTY=\n"
        "\n"
    )
    assert envfile.parse(text) == {
        "PLAIN": "value",
        "EXPORTED": "1",
        "SINGLE": "lit\\n # not a comment",
        "DOUBLE": 'a\nb "q"',
        "MULTI": "line one\nline two",
        "EMPTY": "",
    }
    with pytest.raises(ValueError, match="line 2: expected KEY=VALUE"):
        envfile.parse("A=1\nnot a pair\n", "env")
    with pytest.raises(ValueError, match="no closing"):
        envfile.parse("A='open\n")


def test_env_file_does_not_override_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".env"
    path.write_text("TRIO_H3_T_SET=from-file\nTRIO_H3_T_NEW=from-file\n")
    monkeypatch.setenv("TRIO_H3_T_SET", "from-env")
    monkeypatch.delenv("TRIO_H3_T_NEW", raising=False)
    envfile.load(str(path))
    assert os.environ["TRIO_H3_T_SET"] == "from-env"
    assert os.environ["TRIO_H3_T_NEW"] == "from-file"
    monkeypatch.delenv("TRIO_H3_T_NEW")
    with pytest.raises(OSError, match=r"cannot read --env-file '.*missing'"):
        envfile.load(str(tmp_path / "missing"))


# -- --reload's filter and command ----------------------------------------------------------


def test_reload_filter_defaults_watch_python_only(tmp_path: Path) -> None:
    keep = ReloadFilter()
    assert keep(tmp_path / "app.py", tmp_path)
    assert keep(tmp_path / "pkg" / "mod.py", tmp_path)
    assert not keep(tmp_path / "data.json", tmp_path)  # the restart loop of the issue
    assert not keep(tmp_path / "app.pyc", tmp_path)
    assert not keep(tmp_path / ".app.py.swp", tmp_path)
    assert not keep(tmp_path / ".hidden.py", tmp_path)
    # An exclude without '/' also covers directories: .venv and .git are never watched.
    assert not keep(tmp_path / ".venv" / "lib" / "site.py", tmp_path)
    assert keep.excludes_dir(tmp_path / ".git")
    assert not keep.excludes_dir(tmp_path / "src")


def test_reload_include_and_exclude(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    keep = ReloadFilter(
        includes=["*.html", ".env"], excludes=["*_test.py", str(tmp_path / "build")]
    )
    assert keep(tmp_path / "templates" / "index.html", tmp_path)
    assert keep(tmp_path / ".env", tmp_path)  # a literal include wins over '.*'
    assert not keep(tmp_path / "app_test.py", tmp_path)
    assert not keep(tmp_path / "build" / "gen.py", tmp_path)
    assert keep.excludes_dir(tmp_path / "build")
    # A default given on the other side is dropped.
    assert not ReloadFilter(excludes=["*.py"])(tmp_path / "app.py", tmp_path)
    assert ReloadFilter(includes=[".*"])(tmp_path / ".hidden.py", tmp_path)


def test_reload_child_command_drops_the_reload_flags() -> None:
    argv = [
        "run",
        "mod:app",
        "--reload",
        "--reload-dir",
        "src",
        "--reload-include=*.html",
        "--reload-exclude",
        "*.json",
        "--port",
        "0",
    ]
    assert child_argv(argv) == [sys.executable, "-m", "trio_h3", "run", "mod:app", "--port", "0"]


def test_reload_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert reload_dirs([], None) == [tmp_path.resolve()]
    assert reload_dirs([], str(tmp_path / "a")) == [tmp_path.resolve()]  # inside: once
    assert reload_dirs(["a", "a/b"], None) == [(tmp_path / "a").resolve()]
    with pytest.raises(ValueError, match="no such directory: nope"):
        reload_dirs(["nope"], None)


# -- logging -----------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {n: logging.getLogger(n).level for n in ("trio_h3", "trio_h3.access")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in named.items():
        logging.getLogger(name).setLevel(value)
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def access_record(status: int = 200) -> logging.LogRecord:
    record = logging.LogRecord(
        "trio_h3.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s" %d %d %.1fms',
        ("127.0.0.1:5000", "GET / HTTP/1.1", status, 5, 0.25),
        None,
    )
    # What the server's access log puts on its records (uvicorn's attributes).
    record.client_addr = "127.0.0.1:5000"
    record.request_line = "GET / HTTP/1.1"
    record.status_code = status
    return record


def test_default_format_has_time_and_level_and_colour_only_when_asked() -> None:
    plain = logs.Formatter(colours=False).format(access_record())
    assert re.fullmatch(
        r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO:    127\.0\.0\.1:5000 - "GET / HTTP/1\.1" '
        r"200 5 0\.2ms",
        plain,
    ), plain
    coloured = logs.Formatter(colours=True).format(access_record(404))
    assert "\x1b[32mINFO\x1b[0m" in coloured and '" \x1b[31m404\x1b[0m 5' in coloured
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("trio_h3", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = sys.exc_info()
    text = logs.Formatter(colours=False).format(record)
    assert "ERROR:   failed\nTraceback" in text and "ValueError: boom" in text


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert logs.colour_wanted(Tty(), None)  # type: ignore[arg-type]
    assert not logs.colour_wanted(sys.stderr if not sys.stderr.isatty() else Tty(), False)  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not logs.colour_wanted(Tty(), None)  # type: ignore[arg-type]
    assert logs.colour_wanted(Tty(), True)  # type: ignore[arg-type]


def test_default_configuration_is_installed_once(restore_logging: None) -> None:
    logs.configure(log_config=None, log_level="warning", use_colors=False)
    logs.configure(log_config=None, log_level=None, use_colors=False)
    root = logging.getLogger()
    assert sum(isinstance(h.formatter, logs.Formatter) for h in root.handlers) == 1
    assert root.level == logging.INFO


@pytest.mark.parametrize("kind", ["json", "yaml", "ini"])
def test_log_config_replaces_the_default(kind: str, tmp_path: Path, restore_logging: None) -> None:
    out = tmp_path / "access.log"
    if kind == "ini":
        path = tmp_path / "logging.ini"
        path.write_text(
            "[loggers]\nkeys=root,access\n[handlers]\nkeys=file\n[formatters]\nkeys=f\n"
            "[logger_root]\nhandlers=\n[logger_access]\nqualname=trio_h3.access\n"
            "handlers=file\nlevel=INFO\npropagate=0\n"
            f"[handler_file]\nclass=FileHandler\nargs=({str(out)!r},)\nformatter=f\n"
            "[formatter_f]\nformat=%(client_addr)s|%(request_line)s|%(status_code)s\n"
        )
    else:
        config = (
            '{"version": 1, "disable_existing_loggers": false, '
            '"formatters": {"f": {"format": "%(client_addr)s|%(request_line)s|%(status_code)s"}}, '
            f'"handlers": {{"file": {{"class": "logging.FileHandler", "filename": {str(out)!r}, '
            '"formatter": "f"}}, '
            '"loggers": {"trio_h3.access": {"handlers": ["file"], "level": "INFO", '
            '"propagate": false}}}'
        ).replace("'", '"')
        path = tmp_path / f"logging.{kind}"
        path.write_text(config)  # JSON is YAML too
    logs.configure(log_config=str(path), log_level="debug", use_colors=None)
    assert logging.getLogger("trio_h3").level == logging.DEBUG
    logging.getLogger("trio_h3.access").handle(access_record())
    for handler in logging.getLogger("trio_h3.access").handlers:
        handler.close()
    assert out.read_text() == "127.0.0.1:5000|GET / HTTP/1.1|200\n"


def test_log_config_errors_name_the_file(tmp_path: Path, restore_logging: None) -> None:
    with pytest.raises(ValueError, match=r"cannot read --log-config '.*nope.json'"):
        logs.configure(log_config=str(tmp_path / "nope.json"), log_level=None, use_colors=None)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"cannot use --log-config '.*bad.json': JSONDecodeError"):
        logs.configure(log_config=str(bad), log_level=None, use_colors=None)


def test_yaml_log_config_without_pyyaml_says_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML not installed
    path = tmp_path / "logging.yaml"
    path.write_text("version: 1\n")
    with pytest.raises(ValueError, match=r"is YAML, which needs PyYAML \(pip install pyyaml\)"):
        logs.configure(log_config=str(path), log_level=None, use_colors=None)


def test_the_polling_watcher_without_watchfiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)
    module = tmp_path / "app.py"
    module.write_text("1")
    (tmp_path / ".venv").mkdir()
    watcher = _Watcher([tmp_path], ReloadFilter(), threading.Event())
    assert watcher.name == "polling"
    changes = watcher.changes()
    assert next(changes) == []
    stat = module.stat()
    module.write_text("2")
    os.utime(module, (stat.st_atime, stat.st_mtime + 10))  # a change whatever the clock
    (tmp_path / "data.json").write_text("{}")
    (tmp_path / ".venv" / "site.py").write_text("")
    assert next(changes) == [module]
    watcher.stop.set()
    assert list(changes) == []
