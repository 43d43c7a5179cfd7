"""`python -m bot` is the same as `mahalle`."""

import sys

from bot.cli import main

sys.exit(main())
