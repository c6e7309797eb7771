"""rtdetr-patch: patch an installed Ultralytics so RT-DETR (and YOLO) train with list-returning backbones.

The Python API, for scripts and notebooks::

    from rtdetr_patch import adopt, apply, check, revert, PatchError

    result = apply()                 # the ultralytics this Python imports; same options as the CLI
    print(result.ok, result.written, result.verification["params"])
    report = check(static=True)      # report.ok, report.exit_code, report.problems
    revert()

Every function returns a result object (``.ok``, ``.exit_code``, ``.to_dict()`` gives the JSON
that ``--json`` prints); a failure raises :class:`PatchError`, whose ``.code`` is the exit code
the command line would give. The installed tree: ``rtdetr_patch.patcher`` (the orchestration),
``rtdetr_patch.patches`` (the libcst transforms) and ``rtdetr_patch.templates`` (the files copied in).
"""

from __future__ import annotations

import os as _os
import sys as _sys


def _source_layout() -> None:
    """Resolve ``rtdetr_patch.patcher``, ``.patches`` and ``.templates`` when this package is imported from
    the repository itself rather than from an install.

    An install holds those three inside this folder (pyproject's ``package-dir`` maps them there). In the
    repository they are its siblings, and Python, which puts the working directory first on ``sys.path``,
    imports this folder instead of the installed package whenever a command runs in the repository
    (``python -m rtdetr_patch`` after ``pip install .``). Then, and only then (this folder lacks
    ``patcher/``, and its parent is this project's source: its ``pyproject.toml`` and the three folders),
    a finder maps exactly those three names onto the siblings, as an editable install's finder does. No
    other name is mapped and ``sys.path`` is not touched, so nothing else in the repository becomes importable.
    """
    here = _os.path.dirname(_os.path.abspath(__file__))
    if _os.path.isdir(_os.path.join(here, "patcher")):  # an install: the subpackages are inside
        return
    root = _os.path.dirname(here)
    folders = {f"{__name__}.{name}": _os.path.join(root, name) for name in ("patcher", "patches", "templates")}
    try:
        with open(_os.path.join(root, "pyproject.toml"), encoding="utf-8") as handle:
            ours = 'name = "rtdetr-patch"' in handle.read()
    except OSError:
        return
    if not ours or not all(_os.path.isfile(_os.path.join(f, "__init__.py")) for f in folders.values()):
        return
    from importlib.util import spec_from_file_location  # only in the source layout

    class _Siblings:
        @staticmethod
        def find_spec(name, path=None, target=None):
            folder = folders.get(name)
            if folder is None:
                return None
            return spec_from_file_location(
                name, _os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
            )

    _sys.meta_path.insert(0, _Siblings())


_source_layout()

from .patcher.version import __version__  # noqa: E402  (after the source layout's finder is in place)

_API = {"apply", "adopt", "check", "revert", "ApplyResult", "AdoptResult", "CheckResult", "RevertResult", "JSON_SCHEMA"}


def __getattr__(name: str):
    if name in _API:
        from . import api  # loaded on first use: `import rtdetr_patch` and `--version` stay cheap

        return getattr(api, name)
    if name in ("PatchError", "Exit"):
        from .patcher import errors  # as cheap, but loaded on first use like the API

        return getattr(errors, name)
    raise AttributeError(f"module 'rtdetr_patch' has no attribute {name!r}")


__all__ = [
    "__version__",
    "apply",
    "adopt",
    "check",
    "revert",
    "PatchError",
    "Exit",
    "ApplyResult",
    "AdoptResult",
    "CheckResult",
    "RevertResult",
    "JSON_SCHEMA",
]
