"""`python -m bursa` = the `bursa` command."""

import sys

from bursa.cli import main

sys.exit(main())
