"""The command line in process: help, version, check's report, and the errors users meet."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

import bridge
from bridge._cli import main
from bridge._loading import load_target
from bridge._serve import ServeOptions, build_app, check_options


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"bridge {bridge.__version__}"
    for command in ("serve", "check", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "examples:" in text, command
        assert f"bridge {command}" in text


def test_check_a_ready_wsgi_app_recommends_greenlet(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "tests.apps.cli_apps:wsgi_app")
    assert code == 0
    assert "ok    GET /" in out and "ok    HEAD /" in out
    assert "POST" not in out  # nothing that writes without --write
    assert "executor='greenlet' suits" in out


def test_check_reports_causes_and_blocking(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "check",
        "tests.apps.cli_apps:blocking_app",
        "--path",
        "/",
        "--path",
        "/broken",
        "--write",
    )
    assert code == 1
    assert "FAIL  GET /broken" in out
    assert "ZeroDivisionError: integer division or modulo by zero" in out
    assert "ok    POST / (chunked upload)" in out
    assert "2 of 6 requests fail under the thread executor" in out
    assert "Use executor='thread' (the default), because it blocks in I/O" in out


def test_check_names_asgiref_as_the_reason_for_threads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "check", "tests.apps.cli_apps:asgiref_app")
    assert code == 0
    assert "it calls asgiref's async_to_sync (GET /)" in out


def test_check_an_asgi_app_through_to_wsgi(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "tests.apps.cli_apps:asgi_app")
    assert code == 0
    assert "(ASGI app)" in out and "through to_wsgi" in out
    assert "ok    GET /                            200" in out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.apps.cli_apps:neither", "cannot tell whether"),
        ("tests.apps.no_such_module:app", "cannot import module"),
        ("tests.apps.cli_apps:missing", "has no attribute 'missing'"),
        ("tests.apps.cli_apps", "is not of the form module:app"),
    ],
)
def test_bad_targets_get_one_line_that_says_what_to_do(
    capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    code, out, err = run(capsys, "check", target)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_a_factory_is_called() -> None:
    app = load_target("tests.apps.cli_apps:create_app()")
    assert app is load_target("tests.apps.cli_apps:wsgi_app")


def test_the_app_is_wrapped_for_the_server() -> None:
    asgi_on_wsgi, kind = build_app(ServeOptions("tests.apps.cli_apps:asgi_app", server="waitress"))
    assert (type(asgi_on_wsgi), kind) == (bridge.AsgiToWsgi, "asgi")
    wsgi_on_asgi, kind = build_app(
        ServeOptions("tests.apps.cli_apps:wsgi_app", executor="greenlet", threads=3)
    )
    assert (type(wsgi_on_asgi), kind) == (bridge.WsgiToAsgi, "wsgi")
    assert wsgi_on_asgi.executor.name == "greenlet"
    forced, kind = build_app(
        ServeOptions("tests.apps.cli_apps:wsgi_app", server="gunicorn", interface="wsgi")
    )
    assert kind == "wsgi" and forced is load_target("tests.apps.cli_apps:wsgi_app")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"server": "waitress", "workers": 2}, "waitress runs one process"),
        ({"server": "waitress", "reload": True}, "waitress has no reloader"),
        ({"server": "tornado"}, "unknown server 'tornado'"),
        ({"workers": 0}, "--workers must be at least 1"),
        ({"reload": True, "workers": 2}, "--reload runs one worker"),
    ],
)
def test_what_a_server_cannot_do_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(bridge.ConfigurationError, match=message):
        check_options(ServeOptions("tests.apps.cli_apps:wsgi_app", **options))


def test_a_missing_server_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "hypercorn" else real(name)
    )
    code, _, err = run(capsys, "serve", "tests.apps.cli_apps:wsgi_app", "--server", "hypercorn")
    assert code == 2
    assert err.strip() == (
        "bridge serve: hypercorn is not installed; install it with: pip install 'bridge[servers]'"
    )
