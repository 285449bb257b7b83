#!/usr/bin/env bash
# The project's test command: lint, then the whole test suite (unit tests, notebooks executed in
# the smoke profile, the smoke book build). Installs what it needs into .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MPLBACKEND=Agg PYTHONHASHSEED=0
.venv/bin/ruff check .
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
