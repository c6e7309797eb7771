"""``python -m rtdetr_patch.patcher``: the same entry as ``python -m rtdetr_patch``."""

from .._entry import run

run()
