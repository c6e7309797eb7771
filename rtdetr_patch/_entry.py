"""The ``rtdetr-patch`` command and ``python -m rtdetr_patch``: one short-lived process per command.

Such a process builds large syntax trees that hold no reference cycles (libcst nodes have no parent
links) and exits soon after, so Python's cyclic garbage collector would only walk them again and
again while they are built: it is switched off here, before the imports, for the command's process
only (the Python API leaves the caller's collector alone). Reference counting still frees memory.
"""

import gc
import sys

gc.disable()


def run() -> None:
    try:
        from .cli import main  # after the collector is off: the imports allocate too

        main(prog_name="rtdetr-patch")
    except KeyboardInterrupt:  # Ctrl-C before a command started (each command handles its own)
        from .patcher.errors import NOTHING_WRITTEN  # one wording per situation: nothing was written

        sys.stderr.write(f"\n{NOTHING_WRITTEN}\n")
        sys.exit(130)
