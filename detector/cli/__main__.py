"""`python -m detector.cli`, the same as `detector` without its early signal handlers."""

import sys

from detector.cli import main

sys.exit(main())
