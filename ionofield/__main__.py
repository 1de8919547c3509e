"""``python -m ionofield``: the ``ionofield`` command (how torchrun starts its ranks)."""

import logging
import os
import sys

from ionofield._distributed import launched_by_torchrun
from ionofield.cli import main

if __name__ == "__main__":
    status = main()
    if launched_by_torchrun():
        # A rank can abort in torch's C++ teardown, after Python's exit handlers have
        # run ("terminate called without an active exception": 7 two-rank CLI fits in
        # 106 on a loaded machine, none in 40 since this exit), and torchrun then
        # reports the whole fit as failed. By now the rank's files are written and
        # closed: flush what it printed and leave without that teardown.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
