#!/usr/bin/env bash
# Build the whole book from scratch on the default data (mock universe, quick profile):
# generates the dataset, trains the models, runs every notebook with papermill, builds the HTML.
# Any argument is passed on, e.g. `bash scripts/build_book.sh --profile smoke`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export MPLBACKEND=Agg
if [ "$#" -eq 0 ]; then set -- --profile quick; fi
.venv/bin/python -m analysis_lib book "$@"
