"""The kill-point hook for the crash-safety tests.

``checkpoint`` is called after every step that changes disk state. With ``RTDETR_PATCH_KILL_AT=N`` the
process dies (``os._exit``, no clean-up, as SIGKILL) at the N-th checkpoint it reaches; with
``RTDETR_PATCH_INTERRUPT_AT=N`` a ``KeyboardInterrupt`` is raised there instead, as Ctrl-C would.
Unset (always, outside the tests) a checkpoint only counts.
"""

from __future__ import annotations

import os

KILL_ENV = "RTDETR_PATCH_KILL_AT"
INTERRUPT_ENV = "RTDETR_PATCH_INTERRUPT_AT"
_reached = 0


def checkpoint() -> None:
    global _reached
    at = os.environ.get(KILL_ENV)
    if at is not None and _reached == int(at):
        os._exit(137)
    ctrl_c = os.environ.get(INTERRUPT_ENV)
    _reached += 1
    if ctrl_c is not None and _reached - 1 == int(ctrl_c):
        raise KeyboardInterrupt
