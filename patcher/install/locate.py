"""Find the Ultralytics to patch and read its release, without importing it (that loads torch)."""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import Exit, PatchError, reinstall

MIN_RELEASE = "8.0.136"  # the blog's layout: ultralytics/nn/tasks.py and ultralytics/utils/torch_utils.py
# Releases whose real files the test suite patches; check warns outside [first, last].
TESTED_RELEASES = ("8.0.136", "8.0.227", "8.1.0", "8.2.0", "8.3.0", "8.3.100", "8.3.253", "8.4.0", "8.4.190")
REQUIRED_FILES = ("__init__.py", "nn/tasks.py", "utils/torch_utils.py", "nn/modules/block.py")


@dataclass(frozen=True)
class Install:
    package: Path  # the ``ultralytics`` package folder
    release: str
    python: str  # the interpreter that verifies it
    how: str  # how it was chosen, for the report

    @property
    def root(self) -> Path:
        """The folder that holds ``ultralytics/`` (site-packages, a checkout, a --target tree)."""
        return self.package.parent

    @property
    def tested(self) -> bool:
        lo, hi = release_key(TESTED_RELEASES[0]), release_key(TESTED_RELEASES[-1])
        return lo <= release_key(self.release) <= hi


def release_key(release: str) -> tuple[int, ...]:
    """(8, 0, 136) from "8.0.136"; a pre-release suffix ("8.1.0rc1") sorts with its base release."""
    parts = []
    for piece in release.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def read_release(package: Path) -> str:
    """``__version__`` from ``ultralytics/__init__.py``, read as source."""
    init = package / "__init__.py"
    try:
        tree = ast.parse(init.read_bytes(), filename=str(init))
    except (OSError, SyntaxError, ValueError) as exc:
        raise PatchError(
            Exit.NOT_FOUND,
            f"Cannot read the release from {init}: {exc}",
            f"Reinstall Ultralytics ({reinstall()}) and try again.",
        )
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise PatchError(
        Exit.NOT_FOUND,
        f"{init} has no __version__: this does not look like an Ultralytics release.",
        "Point --target at the `ultralytics` package folder of a real install.",
    )


def _from_python(python: str) -> tuple[Path | None, str]:
    """The ``ultralytics`` package folder ``python`` would import (None where none), and its executable."""
    from ..target import runner  # a process in the target interpreter: only --python asks one

    try:
        done = runner.run("locate", python, [], cwd=Path.cwd())
    except runner.NoAnswer as exc:
        if exc.kind in ("start", "timeout"):
            raise PatchError(
                Exit.NOT_FOUND,
                f"The interpreter {python} does not run: {exc.cause}",
                "Pass --python the path of a working Python (e.g. .venv/bin/python or C:\\envs\\yolo\\python.exe).",
            )
        raise PatchError(
            Exit.NOT_FOUND,
            f"The interpreter {python} failed (exit {exc.returncode}): {exc.output(400)}",
            "Pass --python the path of a working Python.",
        )
    found = done.answer
    return (Path(found["package"]) if found.get("package") else None), str(found.get("executable") or python)


def locate(python: str | None = None, target: str | None = None, adopting: bool = False) -> Install:
    """The install chosen by --target, by --python, or the one this interpreter would import. ``adopting``: it is
    to be adopted in place (a fork that deleted Ultralytics' RT-DETR yamls is taken whole: adopt adds the folder)."""
    if target is not None:
        given = Path(target).expanduser()
        if not given.exists():
            raise PatchError(
                Exit.NOT_FOUND,
                f"--target {given} does not exist.",
                "Give the `ultralytics` package folder, the site-packages folder that holds it, or a source checkout.",
            )
        given = given.resolve()
        candidates = [given, given / "ultralytics"]
        package = next((c for c in candidates if (c / "__init__.py").is_file() and (c / "nn").is_dir()), None)
        if package is None:
            raise PatchError(
                Exit.NOT_FOUND,
                f"--target {given} holds no Ultralytics package "
                "(looked for ultralytics/__init__.py and ultralytics/nn/).",
                "Give the `ultralytics` package folder, the site-packages folder that holds it, or a source checkout.",
            )
        how = f"--target {target}"
        executable = python or sys.executable
        if python is not None:
            _from_python(python)  # fail early and clearly when the verifying interpreter does not run
    elif python is not None:
        found, executable = _from_python(python)
        if found is None:
            raise PatchError(
                Exit.NOT_FOUND,
                f"The interpreter {python} has no `ultralytics` to import.",
                f"Install it first: {python} -m pip install ultralytics",
            )
        package, how = found.resolve(), f"--python {python}"
    else:
        spec = importlib.util.find_spec("ultralytics")
        if spec is None or not spec.submodule_search_locations:
            raise PatchError(
                Exit.NOT_FOUND,
                f"This Python ({sys.executable}) has no `ultralytics` to import.",
                "Install it (pip install ultralytics), or use --python / --target to point at one.",
            )
        package = Path(list(spec.submodule_search_locations)[0]).resolve()
        executable, how = sys.executable, "the Python running rtdetr-patch"
    release = read_release(package)
    install = Install(package=package, release=release, python=executable, how=how)
    check_supported(install, adopting)
    return install


def check_supported(install: Install, adopting: bool = False) -> None:
    missing = [f for f in REQUIRED_FILES if not (install.package / f).is_file()]
    if release_key(install.release) < release_key(MIN_RELEASE) or missing:
        why = f"it lacks {', '.join(missing)}" if missing else f"it is older than {MIN_RELEASE}"
        raise PatchError(
            Exit.UNSUPPORTED,
            f"Ultralytics {install.release} at {install.package} is not supported: "
            f"{why} (the blog's layout exists from {MIN_RELEASE} on).",
            f"Upgrade: pip install -U 'ultralytics>={MIN_RELEASE}'",
        )
    if not (install.package / "cfg" / "models" / "rt-detr").is_dir() and not (adopting and not pip_installed(install)):
        if pip_installed(install):
            hint = (
                f"Reinstall it ({reinstall(install.release)}); if the folder is still missing, this release was "
                "published without its model yamls (8.0.179 was; 8.0.180 replaced it): install another release."
            )
        else:  # a checkout or a fork: a reinstall would not bring the folder back here, and must not be run over it
            hint = (
                "This tree is not a pip-installed Ultralytics (a checkout or a fork): put the folder back from your "
                "copy of the release (in a git checkout: `git checkout -- ultralytics/cfg/models/rt-detr`), or "
                "carry your fork onto a pip-installed Ultralytics with `rtdetr-patch adopt --from "
                f"{install.root}`."
            )
        raise PatchError(
            Exit.UNSUPPORTED,
            f"Ultralytics {install.release} at {install.package} has no RT-DETR (cfg/models/rt-detr is missing).",
            hint + " Nothing was written.",
        )


def pip_installed(install: Install) -> bool:
    """Whether pip installed this package (its ``ultralytics-*.dist-info`` beside it): only then does a reinstall
    give Ultralytics' own files back here; a checkout or a fork holds the user's work instead."""
    return any(install.root.glob("ultralytics-*.dist-info"))


def start_again(install: Install, rel: str | None = None) -> str:
    """How to get the release's own files back (all of them, or the file ``rel``) without advice that destroys work:
    a reinstall only where pip installed the package (it discards every edit made in it, said so); in a checkout or
    a fork, which a reinstall would not give back and must never be run over, the file from the user's own copy."""
    if pip_installed(install):
        return f"reinstall Ultralytics ({reinstall(install.release)}; it discards every edit made in the package)"
    where = f"ultralytics/{rel}" if rel else "the file"
    return (
        f"this is a checkout or a fork, not a pip install: restore {where} from your own copy (in a git checkout, "
        f"`git checkout -- {where}`), or carry the tree onto a pip-installed Ultralytics with "
        f"`rtdetr-patch adopt --from {install.root}`"
    )
