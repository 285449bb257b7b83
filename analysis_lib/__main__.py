"""`python -m analysis_lib ...` (see analysis_lib.cli)."""

import sys

from analysis_lib.cli import main

sys.exit(main())
