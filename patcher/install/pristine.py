"""The pristine files of an Ultralytics release: its wheel, from the tool's cache, pip, or ``--wheel PATH``.

``adopt`` reads a hand-edited tree against the files of its own release. The wheel is kept in
``<cache>/wheels`` and its ``ultralytics/`` folder extracted once into ``<cache>/pristine/<release>``
(``$RTDETR_PATCH_CACHE``, else ``%LOCALAPPDATA%\\rtdetr-patch\\cache`` on Windows and
``${XDG_CACHE_HOME:-~/.cache}/rtdetr-patch`` elsewhere). Nothing here imports Ultralytics.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import Exit, PatchError
from .folders import tool_folder
from .locate import read_release

ENV = "RTDETR_PATCH_CACHE"


def cache_home() -> Path:
    return tool_folder(ENV, "XDG_CACHE_HOME", ".cache", windows_sub="cache")


def _unavailable(release: str, why: str) -> PatchError:
    return PatchError(
        Exit.ADOPT,
        f"The pristine files of Ultralytics {release} are needed to tell your edits from "
        f"the release's own, and cannot be had: {why}.",
        f"Either let pip reach PyPI (rtdetr-patch runs `pip download --no-deps ultralytics=={release}` "
        f"into {cache_home() / 'wheels'}), or download ultralytics-{release}-py3-none-any.whl yourself "
        "and pass it: --wheel PATH. Nothing was written.",
    )


def _wheel_release(wheel: Path) -> str | None:
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read("ultralytics/__init__.py").decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    for line in data.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("'\"")
    return None


def _download(release: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
                str(folder),
                f"ultralytics=={release}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _unavailable(release, f"pip did not run ({exc})")
    found = sorted(folder.glob(f"ultralytics-{release}-*.whl"))
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel was downloaded"]
        raise _unavailable(release, f"pip download failed: {tail[0][:300]}")
    return found[0]


def pristine_package(release: str, wheel: str | Path | None = None) -> Path:
    """The ``ultralytics/`` folder of ``release`` as published, extracted once into the cache."""
    home = cache_home()
    target = home / "pristine" / release / "ultralytics"
    if (target / "__init__.py").is_file():
        return target
    if wheel is not None:
        path = Path(wheel).expanduser()
        if not path.is_file():
            raise _unavailable(release, f"--wheel {path} does not exist")
        found = _wheel_release(path)
        if found != release:
            raise PatchError(
                Exit.ADOPT,
                f"--wheel {path} is "
                + (f"Ultralytics {found}" if found else "not an Ultralytics wheel")
                + f", but the tree to adopt is Ultralytics {release}.",
                f"Pass the wheel of {release}: ultralytics-{release}-py3-none-any.whl. Nothing was written.",
            )
    else:
        cached = sorted((home / "wheels").glob(f"ultralytics-{release}-*.whl"))
        path = cached[0] if cached else _download(release, home / "wheels")
    scratch = Path(tempfile.mkdtemp(prefix=f".{release}-", dir=_made(home / "pristine")))
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.startswith("ultralytics/") and ".." not in Path(member).parts:
                    archive.extract(member, scratch)
        (target.parent).mkdir(parents=True, exist_ok=True)
        try:
            (scratch / "ultralytics").rename(target)
        except OSError:
            if not (target / "__init__.py").is_file():  # another run extracted it meanwhile: that copy will do
                raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise _unavailable(release, f"the wheel {path} cannot be read ({exc})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if read_release(target) != release:
        raise _unavailable(release, f"the wheel {path} holds Ultralytics {read_release(target)}")
    return target


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
