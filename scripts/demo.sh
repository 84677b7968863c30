#!/usr/bin/env bash
# Serves the demo: a Flask app under uvicorn through bridge.to_asgi. Ctrl-C stops it.
# Arguments go to `bridge demo`, e.g. `bash scripts/demo.sh --port 8080 --executor greenlet`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[demo]'
exec .venv/bin/python -m bridge demo "$@"
