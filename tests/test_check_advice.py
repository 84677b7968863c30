"""``bridge check`` run as users run it, in a subprocess: concurrency, thread-affine state, 4xx.

Three real apps: a Flask app keeping the current user in a threading.local
(served on greenlets, concurrent users get each other's identity), a Django
project (benchmarks/django_site: startproject's middleware, SQLite, one
model) and a clean Flask app.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge._check import check, request_headers
from bridge._check_state import own_modules, thread_affine_state
from bridge._errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEF"  # a well-formed CSRF secret, sent as cookie and header


def bridge_check(tmp_path: Path, *argv: str) -> tuple[int, str]:
    environment = {**os.environ, "BRIDGE_DJANGO_DB": str(tmp_path / "site.sqlite3")}
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "check", *argv],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stderr == "" or "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


def test_a_thread_local_user_is_never_pointed_to_greenlets(tmp_path: Path) -> None:
    code, out = bridge_check(tmp_path, "tests.apps.check_apps:local_user_app")
    assert code == 0, out
    thread, greenlet = out.split("greenlet executor")
    assert "ok    5 at once: GET /                 same answers as one at a time" in thread
    assert "FAIL  5 at once: GET /                 answers mixed up" in greenlet
    assert "got the answer meant for bridge_check=" in greenlet
    assert "tests.apps.check_apps._current is a threading.local" in out
    assert "Use executor='thread' (the default), because concurrent requests get" in out
    assert "executor='greenlet' suits" not in out


def test_a_django_project_is_never_pointed_to_greenlets(tmp_path: Path) -> None:
    code, out = bridge_check(
        tmp_path, "benchmarks.django_site.wsgi:application", "--path", "/items", "--write"
    )
    assert code == 0, out
    thread = out.split("greenlet executor")[0]
    assert "ok    GET /" in thread
    assert "--    POST /items                      403" in thread  # CSRF: not a pass
    assert "ok    POST" not in out
    assert "the app itself refused 2 of 4 requests" in out
    assert "Ready as far as tested" in out
    assert "Django: its ORM refuses calls on the loop's thread" in out
    assert "executor='greenlet' suits" not in out


def test_header_and_cookie_get_a_write_past_csrf(tmp_path: Path) -> None:
    code, out = bridge_check(
        tmp_path, "benchmarks.django_site.wsgi:application", "--path", "/items", "--write",
        "--cookie", f"csrftoken={TOKEN}", "--header", f"X-CSRFToken: {TOKEN}",
    )  # fmt: skip
    thread = out.split("greenlet executor")[0]
    assert "ok    POST /items                      200" in thread
    assert "ok    POST /items (chunked upload)     200" in thread
    assert "Ready: every request worked" in out
    assert code == 0


def test_a_clean_app_is_pointed_to_greenlets(tmp_path: Path) -> None:
    code, out = bridge_check(tmp_path, "tests.apps.check_clean:clean_app")
    assert code == 0, out
    assert out.count("ok    5 at once: GET /                 same answers as one at a time") == 2
    assert "thread-affine state found" not in out
    assert "executor='greenlet' suits the paths checked" in out


def test_only_refusals_are_not_ready(tmp_path: Path) -> None:
    code, out = bridge_check(tmp_path, "tests.apps.check_clean:clean_app", "--path", "/missing")
    assert code == 1
    assert "--    GET /missing                     404" in out
    assert "Not tested: the app itself refused 2 of 2 requests" in out


@pytest.mark.parametrize(
    ("headers", "cookies", "message"),
    [
        (["X-Token abc"], [], "is not of the form 'Name: value'"),
        (["Bad Name: x"], [], "is not of the form 'Name: value'"),
        ([], ["session"], "is not of the form name=value"),
        ([], ["a=1; b=2"], "one cookie each"),
    ],
)
def test_bad_headers_and_cookies_say_what_to_write(
    headers: list[str], cookies: list[str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        request_headers(headers, cookies)


def test_headers_and_cookies_reach_the_app() -> None:
    seen: list[tuple[str, str]] = []

    def app(environ: dict[str, str], start_response: object) -> list[bytes]:
        seen.append((environ.get("HTTP_X_TENANT", ""), environ.get("HTTP_COOKIE", "")))
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"ok"]

    headers = request_headers(["X-Tenant: blue"], ["a=1", "b=2"])
    text, ready = check("here:app", app, ["/"], False, "wsgi", headers=headers)
    assert ready, text
    assert seen[0] == ("blue", "a=1; b=2")
    assert ("blue", "a=1; b=2; bridge_check=1") in seen


def test_state_is_found_in_the_apps_own_modules_only() -> None:
    import tests.apps.check_apps as module

    found = thread_affine_state(module.local_user_app, own_modules(module.__name__, None))
    assert found == ["tests.apps.check_apps._current is a threading.local"]
