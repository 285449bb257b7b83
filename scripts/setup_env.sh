#!/usr/bin/env bash
# Create or reuse .venv at the repository root and install what the project needs.
# Re-installs only when requirements.txt changed (a stamp file records its hash).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating virtual environment .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing requirements into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install --quiet -r requirements.txt 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -m pip install --quiet --no-deps -e . 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import torch, torchvision, lightgbm, galpy, colossus, pynbody, jampy, mgefit, papermill, jupyter_book" \
    || { echo "error: the environment is incomplete after installing requirements.txt" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
