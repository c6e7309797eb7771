"""The last passing smoke verification of an install, kept beside its record, so that ``check`` need not run
the same verification again when nothing it depends on has changed (issue 27: a full ``check`` costs a
training step, and CI runs it before every training job).

What the verification depends on, and so what the key holds:

* this tool's version and the scripts that run the verification in the target (``target/*.py``);
* the bytes of every file of the Ultralytics package (``__pycache__`` aside): the files apply patched and
  added, the user's ``--module`` files it copied into ``nn/Addmodules``, and every file nobody patched, so a
  hand edit of ``nn/modules/block.py`` after a verified run is a new key; and the record (``manifest.json``);
* the model yaml built: its name or path, and its bytes;
* the interpreter that runs it: its Python version, its path, size and modification time, and the packages
  installed beside it (the names of the ``*.dist-info`` folders of its environment's site-packages and of the
  folder holding ``ultralytics``, which carry each package's version: an upgraded torch changes the key).

A ``--train`` verification is never taken from the cache: the trainer reads the user's Ultralytics settings and
callbacks, which live outside all of the above. ``check --fresh`` ignores the cache. A key that does not match
is simply a miss; the file is rewritten by the next passing verification.

The same file says which package bytes (with the same environment) last built stock ``rtdetr-l.yaml`` with its
parameter count (``stock``): a fresh run on those bytes need not build it again (``stock_checked``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
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


def package_digest(package: Path) -> str:
    """The SHA-256 of every file under ``package`` (its path and bytes, in path order), ``__pycache__`` aside."""
    digest = hashlib.sha256()
    for rel, path in sorted(_files(package, "")):
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            digest.update(b"unreadable")
    return digest.hexdigest()


def _files(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file below ``folder``, walked with scandir (no ``__pycache__``)."""
    found: list[tuple[str, Path]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for entry in entries:
        rel = prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            if entry.name != "__pycache__":
                found += _files(Path(entry.path), rel + "/")
        elif entry.is_file():
            found.append((rel, Path(entry.path)))
    return found


def _verifier() -> str:
    """The SHA-256 of the scripts that run the verification in the target (``patcher/target/*.py``)."""
    folder = Path(__file__).resolve().parent.parent / "target"
    return package_digest(folder)


def python_version(python: str) -> str:
    """The target interpreter's Python version, read without starting it: this very interpreter's, a virtual
    environment's ``pyvenv.cfg`` (``version``/``version_info``), else the resolved interpreter file's name
    (``python3.11``), which the interpreter's size and time in the key back up."""
    path = Path(python)
    try:
        if path.resolve() == Path(sys.executable).resolve():
            return platform.python_version()
    except OSError:
        pass
    for cfg in (path.parent.parent / "pyvenv.cfg", path.parent / "pyvenv.cfg"):
        try:
            lines = cfg.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, value = line.partition("=")
            if name.strip() in ("version", "version_info"):
                return value.strip()
    try:
        return path.resolve().name
    except OSError:
        return path.name


def _environment(install: Install) -> list[str]:
    """The interpreter (Python version, path, size, time) and the package versions beside it, as folder names."""
    python = Path(install.python)
    described = [python_version(install.python), str(python)]
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


class Keys:
    """The keys of one verification: ``run``, of the whole smoke run (None where there is no record), and
    ``stock``, of what stock ``rtdetr-l.yaml``'s build depends on (the same without the yaml)."""

    def __init__(self, run: str | None, stock: str) -> None:
        self.run, self.stock = run, stock


def _digest(parts: list[str]) -> str:
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def keys_of(install: Install, store: Store, yaml: str) -> Keys:
    """The verification's keys (``patcher/record/verified.py``'s docstring says what they hold)."""
    common = [__version__, _verifier(), install.release, package_digest(install.package), *_environment(install)]
    try:
        manifest = store.manifest_path.read_bytes()
    except OSError:
        return Keys(None, _digest(common))
    run = [*common, hashlib.sha256(manifest).hexdigest(), yaml, hashlib.sha256(_yaml_bytes(install, yaml)).hexdigest()]
    return Keys(_digest(run), _digest(common))


def key_of(install: Install, store: Store, yaml: str) -> str | None:
    """The verification's key, or None where there is no record to key it on."""
    return keys_of(install, store, yaml).run


def _kept(store: Store) -> dict[str, Any]:
    try:
        kept = json.loads((store.dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) else {}


def cached(store: Store, key: str) -> dict[str, Any] | None:
    """The figures of the last passing verification with this key, with ``cached`` saying when; else None."""
    kept = _kept(store)
    if kept.get("key") != key or not isinstance(kept.get("figures"), dict):
        return None
    return {**kept["figures"], "cached": {"verified_at": kept.get("at")}}


def stock_checked(store: Store, stock_key: str) -> dict[str, Any] | None:
    """``{"params": ..., "at": ...}`` where a passing run on these very package bytes (and environment) built stock
    ``rtdetr-l.yaml``; else None."""
    stock = _kept(store).get("stock")
    if not isinstance(stock, dict) or stock.get("key") != stock_key or not isinstance(stock.get("params"), int):
        return None
    return {"params": stock["params"], "at": stock.get("at")}


def remember(store: Store, keys: Keys, figures: dict[str, Any], at: str) -> None:
    """Keep a passing verification's figures under its key, and which package bytes built stock rtdetr-l (best
    effort: a failure to write is no failure)."""
    if keys.run is None:
        return
    stock = figures.get("stock_checked") or {"at": at}
    kept = {"key": keys.run, "at": at, "figures": figures}
    if isinstance(figures.get("rtdetr_l_params"), int):
        kept["stock"] = {"key": keys.stock, "at": stock.get("at", at), "params": figures["rtdetr_l_params"]}
    try:
        os.makedirs(store.dir, exist_ok=True)
        data = json.dumps(kept).encode("utf-8")
        replace_file(store.dir / FILE, data, store.dir / (FILE + ".tmp"))  # no kill point: not the install's
    except OSError:
        pass
