#!/usr/bin/env bash
# Runs every check: installs the test extras into .venv, then ruff, mypy --strict, the docs
# site build (mkdocs --strict) and pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k environ`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "== ruff"
.venv/bin/ruff check bridge tests benchmarks docs/examples
echo "== mypy --strict"
.venv/bin/mypy
echo "== mkdocs build --strict"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
echo "== pytest"
.venv/bin/python -m pytest -p no:cacheprovider "$@"
