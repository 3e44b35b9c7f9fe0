"""`python -m bpe ...`: see bpe.cli."""

import sys

from bpe.cli import main

sys.exit(main())
