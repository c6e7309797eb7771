"""The last passing smoke verification of an install, kept beside its record, so that ``check`` need not run
the same verification again when nothing it depends on has changed (issue 27: a full ``check`` costs a
training step, and CI runs it before every training job).

What the verification depends on, and so what the key holds:

* this tool's version, and the record (``manifest.json``: every file apply wrote and added, with its SHA-256;
  ``check`` has just found each of them as recorded before it asks the cache);
* the model yaml built: its name or path, and its bytes;
* the interpreter that runs it: its path, size and modification time, and the packages installed beside it
  (the names of the ``*.dist-info`` folders of its environment's site-packages and of the folder holding
  ``ultralytics``, which carry each package's version: an upgraded torch changes the key).

A ``--train`` verification is never taken from the cache: the trainer reads the user's Ultralytics settings and
callbacks, which live outside all of the above. ``check --fresh`` ignores the cache. A key that does not match
is simply a miss; the file is rewritten by the next passing verification.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..disk.files import replace_file
from ..install.locate import Install
from ..version import __version__
from .store import Store

FILE = "verified.json"


def _yaml_bytes(install: Install, yaml: str) -> bytes:
    """The yaml the smoke run builds: the user's file, or the install's own of that name (b"" when not found)."""
    path = Path(yaml)
    if path.is_absolute():
        return path.read_bytes() if path.is_file() else b""
    found = sorted((install.package / "cfg" / "models").rglob(yaml))
    return found[0].read_bytes() if found else b""


def _environment(install: Install) -> list[str]:
    """The interpreter (path, size, time) and the package versions beside it, as folder names."""
    python = Path(install.python)
    described = [str(python)]
    try:
        stat = python.stat()
        described.append(f"{stat.st_size}:{stat.st_mtime_ns}")
    except OSError:
        described.append("missing")
    prefix = python.parent.parent  # <env>/bin/python or <env>\Scripts\python.exe (unresolved: a venv's own)
    folders = {install.root, *prefix.glob("lib/python*/site-packages"), *prefix.glob("Lib/site-packages")}
    for folder in sorted(folders):
        try:
            described += sorted(p.name for p in folder.iterdir() if p.name.endswith(".dist-info"))
        except OSError:
            continue
    return described


def key_of(install: Install, store: Store, yaml: str) -> str | None:
    """The verification's key, or None where there is no record to key it on."""
    try:
        manifest = store.manifest_path.read_bytes()
    except OSError:
        return None
    parts = [
        __version__,
        install.release,
        hashlib.sha256(manifest).hexdigest(),
        yaml,
        hashlib.sha256(_yaml_bytes(install, yaml)).hexdigest(),
        *_environment(install),
    ]
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def cached(store: Store, key: str) -> dict[str, Any] | None:
    """The figures of the last passing verification with this key, with ``cached`` saying when; else None."""
    try:
        kept = json.loads((store.dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("key") != key or not isinstance(kept.get("figures"), dict):
        return None
    return {**kept["figures"], "cached": {"verified_at": kept.get("at")}}


def remember(store: Store, key: str, figures: dict[str, Any], at: str) -> None:
    """Keep a passing verification's figures under its key (best effort: a failure to write is no failure)."""
    try:
        os.makedirs(store.dir, exist_ok=True)
        data = json.dumps({"key": key, "at": at, "figures": figures}).encode("utf-8")
        replace_file(store.dir / FILE, data, store.dir / (FILE + ".tmp"))  # no kill point: not the install's
    except OSError:
        pass
