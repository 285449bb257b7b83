"""Where the project keeps generated data, results and the book (all under the repository)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("ANALYSIS_LIB_DATA", REPO_ROOT / "data"))
RESULTS_DIR = DATA_DIR / "results"
DATASETS_DIR = DATA_DIR / "datasets"
REFERENCE_DIR = REPO_ROOT / "book" / "reference"
