"""``python -m advguard.cli``."""

import sys

from advguard.cli import main

sys.exit(main())
