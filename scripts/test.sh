#!/usr/bin/env bash
# The project's test command: lint, then the whole test suite (unit tests, the smoke book build,
# headless-browser tests of the built book and of a notebook in JupyterLab, nbval on notebooks/).
# Installs what it needs into .venv first, and Debian's chromium for the browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium and chromium-driver for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
      chromium-driver) >/dev/null
  fi
fi
export MPLBACKEND=Agg PYTHONHASHSEED=0
.venv/bin/ruff check .
# tests/ (unit tests, the smoke book build and its browser tests, the JupyterLab test), then every
# notebook cell by nbval in the smoke profile (notebooks/conftest.py), in one session so that
# nbval reuses the smoke book's stored runs. Arguments narrow the run, e.g. -m "not slow" or a
# test file; `-m "not notebooks"` leaves out everything that executes notebooks.
.venv/bin/python -m pytest -q -p no:cacheprovider --nbval-lax -o "testpaths=tests notebooks" "$@"
