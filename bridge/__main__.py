"""The ``bridge`` command line (``python -m bridge``)."""

from __future__ import annotations

import argparse
import sys

from ._errors import BridgeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bridge", description="Join WSGI and ASGI.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="serve a demo Flask app through bridge.to_asgi")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000, help="0 picks any free port")
    demo.add_argument("--executor", choices=["thread", "greenlet"], default="thread")
    arguments = parser.parse_args(argv)
    try:
        from ._demo import serve_demo

        serve_demo(arguments.host, arguments.port, arguments.executor)
    except ImportError as error:
        print(f"bridge demo needs the demo extra: pip install 'bridge[demo]' ({error})")
        return 2
    except BridgeError as error:
        print(f"bridge: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
