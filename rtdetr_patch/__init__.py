"""rtdetr-patch: patch an installed Ultralytics so RT-DETR (and YOLO) train with list-returning backbones.

The Python API, for scripts and notebooks::

    from rtdetr_patch import apply, check, revert, PatchError

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

from .patcher import __version__

_API = {"apply", "check", "revert", "ApplyResult", "CheckResult", "RevertResult", "JSON_SCHEMA"}


def __getattr__(name: str):
    # The API loads on first use, so `import rtdetr_patch` and `--version` stay cheap.
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in ("PatchError", "Exit"):
        from .patcher import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'rtdetr_patch' has no attribute {name!r}")


__all__ = ["__version__", "apply", "check", "revert", "PatchError", "Exit", "ApplyResult", "CheckResult",
           "RevertResult", "JSON_SCHEMA"]
