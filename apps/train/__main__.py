"""`uv run apps/train [...]`: the whole pipeline from raw text to generated text.

uv runs this file when it is given the directory; the real entry point is `train_app.cli.main`.
"""

import sys

from train_app.cli import main

if __name__ == "__main__":
    sys.exit(main())
