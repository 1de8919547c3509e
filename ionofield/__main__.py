"""``python -m ionofield``: the ``ionofield`` command (how torchrun starts its ranks)."""

import sys

from ionofield.cli import main

if __name__ == "__main__":
    sys.exit(main())
