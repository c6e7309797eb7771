"""``python -m rtdetr_patch``: the same as the ``rtdetr-patch`` command."""

from .patcher.cli import main

main(prog_name="rtdetr-patch")
