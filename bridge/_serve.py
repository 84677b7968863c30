"""``bridge serve``: either kind of app on a real server, wrapped as that server needs.

The listening socket is bound here, before the server starts, so the URL
printed is the one served (``--port 0`` included) and every server gets the
same socket: uvicorn and waitress take it as a socket, hypercorn and gunicorn
as ``fd://``. Server worker processes rebuild the app from the options in
the environment (``app_from_environment``), since an app object cannot
cross into them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import signal
import socket
import sys
from collections.abc import Iterable
from typing import Any

from ._detect import Interface, interface_of
from ._errors import ConfigurationError
from ._executors import Executor, ThreadExecutor
from ._loading import load_target
from ._to_asgi import to_asgi
from ._to_wsgi import to_wsgi
from ._types import ASGIApp, Environ, Receive, Scope, Send, StartResponse, WSGIApp

ASGI_SERVERS = ("uvicorn", "hypercorn")
WSGI_SERVERS = ("waitress", "gunicorn")
_OPTIONS_VARIABLE = "BRIDGE_SERVE_OPTIONS"


@dataclasses.dataclass
class ServeOptions:
    target: str
    server: str = "uvicorn"
    interface: Interface | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int | None = None
    executor: str = "thread"
    root_path: str = ""
    reload: bool = False
    log_level: str = "info"


def build_app(options: ServeOptions) -> tuple[Any, Interface]:
    """The app as ``options.server`` needs it, and the interface it was written for."""
    app = load_target(options.target)
    interface = options.interface or interface_of(app)
    if options.server in ASGI_SERVERS:
        if interface == "wsgi":
            executor: str | Executor = options.executor
            if options.threads and options.executor == "thread":
                executor = ThreadExecutor(max_workers=options.threads)
            app = to_asgi(app, executor=executor)
        if options.root_path:
            app = AsgiRootPath(app, options.root_path)
    else:
        if interface == "asgi":
            app = to_wsgi(app)
        if options.root_path:
            app = RootPath(app, options.root_path)
    return app, interface


def app_from_environment() -> Any:
    """The app for a server's worker process, from the options ``serve`` left in the environment."""
    options = ServeOptions(**json.loads(os.environ[_OPTIONS_VARIABLE]))
    return build_app(options)[0]


def _under(prefix: str, path: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class RootPath:
    """Serves a WSGI app under ``--root-path``.

    Requests may come with the prefix, or with it stripped by a proxy in front.
    """

    def __init__(self, app: WSGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = "/" + root_path.strip("/")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if _under(self.root_path, path):
            path = path[len(self.root_path) :]
        environ["SCRIPT_NAME"] = self.root_path + environ.get("SCRIPT_NAME", "")
        environ["PATH_INFO"] = path
        return self.app(environ, start_response)


class AsgiRootPath:
    """Serves an ASGI app under ``--root-path``, with or without a proxy stripping it.

    In ASGI ``path`` includes ``root_path``; both servers' own ``root_path``
    options expect the prefix stripped, so this one handler serves both ways.
    """

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = "/" + root_path.strip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            path = scope["path"]
            if not _under(self.root_path, path):
                scope["path"] = self.root_path + path
                raw_path = scope.get("raw_path")
                if raw_path is not None:
                    scope["raw_path"] = self.root_path.encode() + raw_path
            scope["root_path"] = self.root_path
        await self.app(scope, receive, send)


def check_options(options: ServeOptions) -> None:
    """Refuse what the chosen server cannot do, before anything starts."""
    if options.server not in ASGI_SERVERS + WSGI_SERVERS:
        raise ConfigurationError(
            f"unknown server {options.server!r}; choose one of "
            + ", ".join(ASGI_SERVERS + WSGI_SERVERS)
        )
    if importlib.util.find_spec(options.server) is None:
        raise ConfigurationError(
            f"{options.server} is not installed; install it with: pip install 'bridge[servers]'"
        )
    if options.server == "waitress" and options.workers > 1:
        raise ConfigurationError(
            "waitress runs one process (use --threads); for several worker processes use "
            "--server gunicorn, uvicorn or hypercorn"
        )
    if options.server == "waitress" and options.reload:
        raise ConfigurationError("waitress has no reloader; use --server uvicorn or gunicorn")
    if options.workers < 1:
        raise ConfigurationError(f"--workers must be at least 1, got {options.workers}")
    if options.reload and options.workers > 1:
        raise ConfigurationError("--reload runs one worker; drop --workers or --reload")


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({error.strerror}); pick another with --port, "
            "or --port 0 for any free one"
        ) from error
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def url_of(listener: socket.socket, root_path: str = "") -> str:
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{'/' + root_path.strip('/') if root_path.strip('/') else ''}/"


def serve(options: ServeOptions) -> None:
    """Serve ``options.target`` until Ctrl-C or SIGTERM."""
    check_options(options)
    app, interface = build_app(options)  # fails here, once, with a clear message
    options.interface = interface
    os.environ[_OPTIONS_VARIABLE] = json.dumps(dataclasses.asdict(options))
    listener = listen(options.host, options.port)
    print(
        f"bridge serve: {options.target} ({interface.upper()} app) on {options.server} at "
        f"{url_of(listener, options.root_path)}  (Ctrl-C stops)",
        flush=True,
    )
    runners = {
        "uvicorn": _uvicorn,
        "hypercorn": _hypercorn,
        "waitress": _waitress,
        "gunicorn": _gunicorn,
    }
    runners[options.server](options, app, listener)


def _uvicorn(options: ServeOptions, app: Any, listener: socket.socket) -> None:
    import uvicorn
    from uvicorn.supervisors import ChangeReload, Multiprocess

    settings: dict[str, Any] = {"log_level": options.log_level}
    if not options.reload and options.workers == 1:
        uvicorn.Server(uvicorn.Config(app, **settings)).run(sockets=[listener])
        return
    config = uvicorn.Config(
        f"{__name__}:app_from_environment",
        factory=True,
        reload=options.reload,
        workers=options.workers,
        **settings,
    )
    if options.reload:
        ChangeReload(config, target=uvicorn.Server(config).run, sockets=[listener]).run()
    else:
        Multiprocess(config, sockets=[listener]).run()


def _hypercorn(options: ServeOptions, app: Any, listener: socket.socket) -> None:
    from hypercorn.config import Config
    from hypercorn.run import run

    config = Config()
    config.application_path = f"{__name__}:app_from_environment()"
    config.bind = [f"fd://{listener.fileno()}"]
    # One worker runs in this process (hypercorn's workers=0), where hypercorn's
    # own SIGINT/SIGTERM handlers run lifespan shutdown; more go to its supervisor.
    config.workers = options.workers if options.workers > 1 or options.reload else 0
    config.use_reloader = options.reload
    config.loglevel = options.log_level.upper()
    config.accesslog = "-"
    sys.exit(run(config))


def _waitress(options: ServeOptions, app: Any, listener: socket.socket) -> None:
    import waitress  # type: ignore[import-untyped]

    server = waitress.create_server(app, sockets=[listener], threads=options.threads or 4)
    # waitress leaves SIGTERM to its default (an exit that skips clean-up);
    # as the process owner here, end it like Ctrl-C so lifespan shutdown runs.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # then the interpreter exits normally: to_wsgi's lifespan shutdown runs
    finally:
        server.close()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _gunicorn(options: ServeOptions, app: Any, listener: socket.socket) -> None:
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    settings = {
        "bind": [f"fd://{listener.fileno()}"],
        "workers": options.workers,
        "threads": options.threads or 4,
        "worker_class": "gthread",
        "reload": options.reload,
        "loglevel": options.log_level,
        "accesslog": "-",
    }

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            return app_from_environment()

    Gunicorn().run()
