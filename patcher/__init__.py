"""The engine of rtdetr-patch, installed as ``rtdetr_patch.patcher``: locate an install, plan, record,
write, undo and check. It imports only itself, ``rtdetr_patch.patches`` and (for the files to copy)
``rtdetr_patch.templates``; never the public layer above it (``rtdetr_patch.api`` and ``.cli``).
"""

from .version import __version__

__all__ = ["__version__"]
