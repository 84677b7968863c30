#!/usr/bin/env bash
# Runs every check: installs Debian's postgresql when missing and the test extras into .venv,
# then ruff, mypy --strict, the docs site build (mkdocs --strict) and pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k environ`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
    # The database tests start their own PostgreSQL server (tests/postgres.py).
    echo "== installing Debian's postgresql package for the database tests"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "== ruff"
.venv/bin/ruff check bridge tests benchmarks docs/examples
.venv/bin/ruff format --check --quiet bridge tests benchmarks docs/examples
echo "== mypy --strict"
.venv/bin/mypy
echo "== mkdocs build --strict"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
echo "== pytest"
.venv/bin/python -m pytest -p no:cacheprovider "$@"
