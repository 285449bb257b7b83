#!/usr/bin/env bash
# The project's test command: lint, then the whole test suite (unit tests, notebooks executed in
# the smoke profile, the smoke book build, a headless-browser test of the built book).
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
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
