"""Plan every change in memory: the transforms over each file, and the files to add.

Nothing here writes. A plan either holds every change or raises before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import libcst as cst

from ... import patches
from ...patches import Outcome, TargetMissing, Transform
from ..errors import Exit, PatchError, reinstall
from ..install.locate import Install, release_key, start_again
from ..modules.registry import registry_block
from ..record.manifest import ADDED_PACKAGE, package_inits
from .source import parse, render

YAML_DIR = "cfg/models/rt-detr"


@dataclass
class Step:
    transform: type[Transform]
    outcome: Outcome


@dataclass
class FileChange:
    """One file's plan. Where no transform can be needed on the release, the file is not read:
    ``before`` and ``after`` are both empty and ``changed`` is false."""

    rel: str
    path: Path
    before: bytes
    after: bytes
    steps: list[Step] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass
class Addition:
    rel: str
    path: Path
    data: bytes

    @property
    def present(self) -> bool:
        return self.path.is_file() and self.path.read_bytes() == self.data


@dataclass
class Plan:
    install: Install
    files: list[FileChange]
    additions: list[Addition]

    @property
    def steps(self) -> list[Step]:
        return [s for f in self.files for s in f.steps]

    @property
    def changes(self) -> list[FileChange]:
        return [f for f in self.files if f.changed]

    @property
    def complete(self) -> bool:
        """Already fully patched: no transform would change a file and every added file is in place."""
        return not self.changes and all(a.present for a in self.additions)


def has_native_torchvision(install: Install) -> bool:
    """Whether ``parse_model`` knows Ultralytics' own ``TorchVision`` and ``Index`` rows (8.3.59 and later)."""
    tasks = install.package / "nn" / "tasks.py"
    try:
        module = parse(tasks.read_bytes(), str(tasks))[0]  # the run's one parse of tasks.py
    except (OSError, PatchError):
        return False
    # Both names are imported at the top of tasks.py where parse_model builds such rows.
    names: set[str] = set()
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                    names.update(alias.name.value for alias in small.names if isinstance(alias.name, cst.Name))
    return {"TorchVision", "Index"} <= names


def template_files(install: Install | None = None, modules: tuple = ()) -> list[tuple[str, bytes]]:
    """(path inside the ultralytics package, bytes) of every file copied in (blog steps 4.1, 4.2, 5.1).

    The native ``TorchVision``/``Index`` yaml (``templates/native``) is added only where the
    release can build it, so that both ways can be compared on the same install. Users' own
    backbones (``modules``, see ``patcher/modules/``) are copied beside MobileNetV3 and registered at the
    end of the package's ``__init__.py``.
    """
    root = resources.files("rtdetr_patch.templates")
    out = []
    for item in sorted(root.joinpath("Addmodules").iterdir(), key=lambda p: p.name):
        if item.name.endswith(".py"):
            data = item.read_bytes()
            if item.name == "__init__.py":
                data += registry_block(list(modules))
            out.append((f"{ADDED_PACKAGE}/{item.name}", data))
    out.extend((m.rel, m.data) for m in modules)
    out.extend((rel, b"") for rel in package_inits(modules))  # the folders of files adopt carries at depth
    folders = [(root, YAML_DIR)]
    if install is not None and has_native_torchvision(install):
        folders.append((root.joinpath("native"), YAML_DIR))
    # YOLO families: each yaml goes beside the family's own, on releases that ship that family's folder.
    for family in sorted(root.joinpath("yolo").iterdir(), key=lambda p: p.name):
        if family.is_dir() and install is not None and (install.package / "cfg" / "models" / family.name).is_dir():
            folders.append((family, f"cfg/models/{family.name}"))
    for folder, where in folders:
        for item in sorted(folder.iterdir(), key=lambda p: p.name):
            if item.name.endswith(".yaml"):
                out.append((f"{where}/{item.name}", item.read_bytes()))
    return out


def needed_on(transform: type[Transform], release: str) -> bool:
    """Whether ``release`` lies where the transform can be needed (its shape check then decides)."""
    if transform.RELEASES is None:
        return True
    first, last = transform.RELEASES
    return first <= release_key(release) <= last


def plan_file(install: Install, rel: str, transforms: list[type[Transform]], data: bytes | None = None) -> FileChange:
    path = install.package / rel
    where = f"{path} (Ultralytics {install.release})"
    if not any(needed_on(t, install.release) for t in transforms):
        # No transform can be needed on this release: the file is not even read.
        return FileChange(
            rel=rel, path=path, before=b"", after=b"", steps=[Step(t, Outcome.NOT_NEEDED) for t in transforms]
        )
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PatchError(Exit.TRANSFORM, f"Cannot read {where}: {exc}", f"Reinstall Ultralytics ({reinstall()}).")
    module, bom = parse(data, where)
    steps = []
    for transform in transforms:
        if not needed_on(transform, install.release):
            steps.append(Step(transform, Outcome.NOT_NEEDED))
            continue
        try:
            module, outcome = transform().run(module)
        except TargetMissing as exc:
            raise PatchError(
                Exit.TRANSFORM,
                f"Transform '{transform.NAME}' (blog step {transform.BLOG_STEP}) failed on {where}: "
                f"looked for {exc.looked_for}, and it is not there.",
                f"Nothing was written. If you edited this file by hand, `rtdetr-patch adopt --dry-run` shows what "
                f"adopt carries of your edits, or to start again {start_again(install, rel)}; otherwise please "
                "report the release.",
            )
        steps.append(Step(transform, outcome))
    after = render(module, bom) if any(s.outcome is Outcome.PATCHED for s in steps) else data
    return FileChange(rel=rel, path=path, before=data, after=after, steps=steps)


def make_plan(
    install: Install,
    transforms: tuple[type[Transform], ...] | None = None,
    modules: tuple = (),
    sources: dict[str, bytes] | None = None,
    extra: tuple[tuple[str, bytes], ...] = (),
) -> Plan:
    """``sources``: bytes to plan a file from instead of its current ones; ``extra``: more files to add
    (``adopt``'s yamls)."""
    transforms = transforms if transforms is not None else patches.selected()
    by_file: dict[str, list[type[Transform]]] = {}
    for transform in transforms:
        by_file.setdefault(transform.FILE, []).append(transform)
    files = [plan_file(install, rel, group, (sources or {}).get(rel)) for rel, group in by_file.items()]
    additions = [Addition(rel, install.package / rel, data) for rel, data in template_files(install, modules)]
    additions += [Addition(rel, install.package / rel, data) for rel, data in extra]
    return Plan(install=install, files=files, additions=additions)
