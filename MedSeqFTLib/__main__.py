"""``python -m MedSeqFTLib`` is the same as the ``medseqft`` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
