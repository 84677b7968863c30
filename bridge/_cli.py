"""The ``bridge`` command line: ``serve``, ``check`` and ``demo``."""

from __future__ import annotations

import argparse
import logging
import sys

from ._errors import BridgeError

_SERVE_EXAMPLES = """examples:
  bridge serve myproject.wsgi:application            a Django or Flask app on uvicorn
  bridge serve main:app --server gunicorn --workers 4   FastAPI on gunicorn (through to_wsgi)
  bridge serve main:create_app() --reload            an app factory, reloaded on changes
  bridge serve legacy:app --executor greenlet --root-path /legacy
"""

_CHECK_EXAMPLES = """examples:
  bridge check myproject.wsgi:application
  bridge check legacy:app --path / --path /health --write
  bridge check mysite.wsgi:application --write --cookie csrftoken=T --header "X-CSRFToken: T"
"""

_DEMO_EXAMPLES = """examples:
  bridge demo                     on http://127.0.0.1:8000/
  bridge demo --port 0            any free port (printed)
  bridge demo --executor thread
"""


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="bridge",
        description="Join WSGI and ASGI: serve either kind of app on any server, check an "
        "app's readiness, or run the demo.",
        epilog="Run 'bridge COMMAND --help' for each command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter

    serve = commands.add_parser(
        "serve",
        help="serve a WSGI or ASGI app on uvicorn, hypercorn, waitress or gunicorn",
        description="Serve an app of either kind. A WSGI app on an ASGI server goes through "
        "bridge.to_asgi, an ASGI app on a WSGI server through bridge.to_wsgi.",
        epilog=_SERVE_EXAMPLES,
        formatter_class=raw,
    )
    serve.add_argument("target", help="module:app, or module:factory() for an app factory")
    serve.add_argument(
        "--server", default="uvicorn", help="uvicorn (default), hypercorn, waitress or gunicorn"
    )
    serve.add_argument(
        "--interface",
        choices=["wsgi", "asgi"],
        help="the app's kind, when detection from the callable is unsure",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0 picks any free port")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, through the server's own supervisor",
    )
    serve.add_argument(
        "--threads", type=int, help="worker threads (waitress, gunicorn; to_asgi's thread executor)"
    )
    serve.add_argument(
        "--executor",
        choices=["thread", "greenlet"],
        default="thread",
        help="where a WSGI app runs under an ASGI server",
    )
    serve.add_argument("--root-path", default="", help="serve the app under this URL prefix")
    serve.add_argument("--reload", action="store_true", help="restart when code changes")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )

    check = commands.add_parser(
        "check",
        help="drive an app in process through the bridge and print a readiness report",
        description="Send a few requests to the app in process, through the bridge and "
        "wsgiref.validate, and report what works, what breaks, and which executor suits it. "
        "Only GET and HEAD unless --write: POST bodies reach the app's real code.",
        epilog=_CHECK_EXAMPLES,
        formatter_class=raw,
    )
    check.add_argument("target", help="module:app, or module:factory()")
    check.add_argument(
        "--path", action="append", dest="paths", help="a path to request (repeatable; default /)"
    )
    check.add_argument(
        "--write",
        action="store_true",
        help="also POST a small body and a chunked upload to the first path",
    )
    check.add_argument(
        "--header",
        action="append",
        dest="headers",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header sent with every request (repeatable)",
    )
    check.add_argument(
        "--cookie",
        action="append",
        dest="cookies",
        default=[],
        metavar="NAME=VALUE",
        help="a cookie sent with every request (repeatable), e.g. a session or CSRF cookie",
    )
    check.add_argument("--interface", choices=["wsgi", "asgi"])

    demo = commands.add_parser(
        "demo",
        help="serve the built-in demo: FastAPI, a mounted Flask app, await_, fallback",
        description="Serve a FastAPI app with a legacy Flask app mounted under /legacy and "
        "behind bridge.fallback, on uvicorn. Its index page links each part.",
        epilog=_DEMO_EXAMPLES,
        formatter_class=raw,
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000, help="0 picks any free port")
    demo.add_argument("--executor", choices=["thread", "greenlet"], default="greenlet")
    return parser


def _log_bridge_to_stderr(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     [%(name)s] %(message)s"))
    logger = logging.getLogger("bridge")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "serve":
            return _serve(arguments)
        if arguments.command == "check":
            return _check(arguments)
        return _demo(arguments)
    except KeyboardInterrupt:
        return 130  # Ctrl-C after a clean shutdown (uvicorn re-raises it): no traceback
    except BridgeError as error:
        print(f"bridge {arguments.command}: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        print(
            f"bridge {arguments.command}: {error.name} is not installed; install the extra "
            f"with: pip install 'bridge[{'demo' if arguments.command == 'demo' else 'servers'}]'",
            file=sys.stderr,
        )
        return 2


def _serve(arguments: argparse.Namespace) -> int:
    from ._serve import ServeOptions, serve

    _log_bridge_to_stderr(arguments.log_level)
    serve(
        ServeOptions(
            target=arguments.target,
            server=arguments.server,
            interface=arguments.interface,
            host=arguments.host,
            port=arguments.port,
            workers=arguments.workers,
            threads=arguments.threads,
            executor=arguments.executor,
            root_path=arguments.root_path,
            reload=arguments.reload,
            log_level=arguments.log_level,
        )
    )
    return 0


def _check(arguments: argparse.Namespace) -> int:
    from ._check import check, request_headers
    from ._loading import load_target

    headers = request_headers(arguments.headers, arguments.cookies)
    loaded_before = set(sys.modules)
    app = load_target(arguments.target)
    text, ready = check(
        arguments.target,
        app,
        arguments.paths or ["/"],
        arguments.write,
        arguments.interface,
        headers=headers,
        loaded_before=loaded_before,
    )
    print(text)
    return 0 if ready else 1


def _demo(arguments: argparse.Namespace) -> int:
    from ._demo import serve_demo

    _log_bridge_to_stderr("info")
    serve_demo(arguments.host, arguments.port, arguments.executor)
    return 0
