"""The platform's folders for rtdetr-patch's own files: the state (records, backups) and the cache (wheels).

One rule for both: the tool's own variable wins (``RTDETR_PATCH_HOME``, ``RTDETR_PATCH_CACHE``); else
``%LOCALAPPDATA%\\rtdetr-patch`` on Windows, and the XDG folder elsewhere (``${XDG_STATE_HOME:-~/.local/state}``,
``${XDG_CACHE_HOME:-~/.cache}``) with ``rtdetr-patch`` under it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TOOL = "rtdetr-patch"


def tool_folder(override: str, xdg: str, xdg_default: str, windows_sub: str = "") -> Path:
    """``$override`` if set; else ``%LOCALAPPDATA%\\rtdetr-patch[\\windows_sub]`` on Windows, and
    ``${xdg:-~/xdg_default}/rtdetr-patch`` elsewhere (``xdg_default`` relative to the home folder)."""
    if os.environ.get(override):
        return Path(os.environ[override]).expanduser()
    if sys.platform == "win32":
        folder = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / TOOL
        return folder / windows_sub if windows_sub else folder
    return Path(os.environ.get(xdg) or Path.home() / xdg_default) / TOOL
