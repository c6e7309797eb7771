"""``python -m rtdetr_patch``: the same as the ``rtdetr-patch`` command."""

from ._entry import run

run()
