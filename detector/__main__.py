"""`python -m detector` is the `detector` command."""

import sys

from detector.entry import main

sys.exit(main())
