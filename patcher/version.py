"""The tool's version: the one place the string is written.

It lives in the engine, not in ``rtdetr_patch/``, because the engine stamps it into every record it
writes and compares it with the record it reads, and the engine never imports the presentation layer
above it. ``rtdetr_patch.__version__`` re-exports it, and ``pyproject.toml`` reads it from this file
(``rtdetr_patch.patcher.version.__version__``, found statically, without importing anything).
"""

__version__ = "0.4.0"
