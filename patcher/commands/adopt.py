"""``adopt``: survey the tree, probe what it carries on the target, then write it as one managed patch.

Orchestration only (the reading is ``adopt/survey.py``, the writing ``apply._apply``):

1. survey the tree against its pristine release (names, rules, files, yamls, edits);
2. probe, in the target interpreter and in parallel: each carried file imported on its own in a
   staged copy of the target with the patch written in it (a file whose import fails costs only
   its own names), and every yaml built in the tree itself, on its own release;
3. stage the final patch and build every yaml on the target: parameters side by side;
4. unless ``dry_run``, write through ``apply._apply`` (all or nothing, originals recorded first). In
   place, the pristine release's ``tasks.py`` (and every file a transform edits) replaces the
   hand-edited one, and every hand-edited or added file of the tree is kept in the store first.
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Callable

from ..adopt import survey as reading
from ..disk.files import sha256
from ..errors import Exit, PatchError
from ..install.locate import Install
from ..modules.pip_names import pip_package
from ..results import AdoptResult
from ..target import runner
from ..version import __version__
from ..write.session import session
from .recorded import recorded_modules, transforms_for


def _probe(python: str, root: Path, imports: list[str], yamls: list[str]) -> dict:
    try:  # the spec goes in a file: a fork's few hundred yaml paths would pass Windows' command-line limit
        return runner.run("adopt-probe", python, [str(root)], spec={"imports": imports, "yamls": yamls},
                          cwd=root).answer
    except runner.NoAnswer as exc:
        tail = exc.output(600)
        return {"fatal": {"error": f"the probe did not answer ({type(exc.cause).__name__}: {exc.cause}) {tail}".strip()}}


def _stage(install: Install) -> Path:
    """A folder holding a copy of the target package, for the probes; the caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix="rtdetr-patch-adopt-"))
    shutil.copytree(install.package, folder / "ultralytics", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return folder


def _write(folder: Path, plan, files: dict[str, bytes]) -> None:
    """The plan's files and additions (and ``files``) written into the staged copy."""
    writes = {c.rel: c.after for c in plan.files if c.after} | {a.rel: a.data for a in plan.additions} | files
    for rel, data in writes.items():
        path = folder / "ultralytics" / PurePosixPath(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _pip_line(missing: str, install: Install) -> str:
    return f"{install.python} -m pip install {pip_package(missing)}"


def adopt(install: Install, *, source: str | None = None, wheel: str | None = None, dry_run: bool = False,
          force: bool = False, on_stage: Callable[[str], None] = lambda s: None) -> AdoptResult:
    from ..plan import planner as planning  # libcst: adopt always plans
    from . import apply as applying

    def say(text: str) -> None:  # the progress line shows these as they are (the smoke run's stages follow)
        on_stage(f"adopt: {text}")

    package = reading.source_package(source) if source is not None else install.package
    in_place = package.resolve() == install.package.resolve()
    with session(install) as held:
        store = held.store
        record = store.read()
        same = record if record and record.release == install.release else None
        if same is not None and same.tool != __version__:
            raise PatchError(Exit.ADOPT, f"Ultralytics {install.release} at {install.package} holds the patch of "
                             f"rtdetr-patch {same.tool or 'an earlier release'}.",
                             "Run `rtdetr-patch apply` first (it brings the patch up to this release), then adopt.")
        if in_place and same is not None and same.adopted and same.intact(install, __version__):
            return _already(install, same, store, held.recovered)  # its tasks.py is the managed patch now
        ours = set()
        if in_place and same is not None:
            ours = {f.path for f in same.files} | {a.path for a in same.added}
        say("reading the tree against its release")
        survey = reading.survey(package, install, in_place=in_place, wheel=wheel, ours=ours)
        result = AdoptResult(in_place=in_place, source=str(package), source_release=survey.release,
                             dry_run=dry_run, recovered=held.recovered, store=str(store.dir))
        recorded = {m.name: m for m in recorded_modules(store, same)}
        transforms = transforms_for(same)
        managed = {t.FILE for t in transforms}
        sources, current = {}, {}
        if in_place:
            kept_edits = {t.FILE for t in transforms if t.KEEPS_EDITS}  # patched as the tree has them
            for rel in survey.modified:
                if rel in managed and rel not in kept_edits:
                    sources[rel] = (survey.pristine / PurePosixPath(rel)).read_bytes()
                    current[rel] = (install.package / PurePosixPath(rel)).read_bytes()
        gained = [n for n in survey.names if n.status == "carried"]
        if not gained and not sources and not [y for y in survey.yamls if y.carried and not in_place]:
            result.already = bool(same and same.adopted)
            _report(result, survey)
            if not result.already and not survey.names:
                raise PatchError(Exit.ADOPT, f"{package} (Ultralytics {survey.release}) has no module of its own to "
                                 "carry: parse_model gained no name and no yaml was added.",
                                 "Nothing to adopt; `rtdetr-patch apply` patches a pristine install. Nothing was written.")
            return result

        taken = set(recorded)
        for row in survey.files.values():
            if row.stem in taken:
                reading._drop(row, survey.files, survey.names, f"an earlier apply already added a module file "
                              f"named {row.stem}.py")
        # 1. each file imported on its own on the target (staged), and every yaml built in the tree (parallel)
        say("importing each module file on the target, building the yamls in the tree")
        base = planning.make_plan(install, transforms, tuple(recorded.values()), sources=sources)
        files = {f"nn/Addmodules/{r.stem}.py": r.data for r in survey.files.values() if r.status == "carried"}
        stage = _stage(install)  # one copy for both passes: the second writes the final plan over the first
        try:
            _write(stage, base, files)
            with ThreadPoolExecutor(2) as pool:
                target_imports = pool.submit(_probe, install.python, stage, [r.module for r in survey.files.values()
                                                                              if r.status == "carried"], [])
                source_builds = pool.submit(_probe, install.python, package.parent, [],
                                            [str(package / PurePosixPath(y.rel)) for y in survey.yamls if y.carried])
                imports, built = target_imports.result(), source_builds.result()
            if "fatal" in imports:
                raise PatchError(Exit.ADOPT, f"Ultralytics {install.release} at {install.package}, staged with the "
                                 f"patch, does not import with {install.python}: {imports['fatal']['error']}",
                                 "Check that this interpreter runs Ultralytics (`python -c 'import ultralytics'`). "
                                 "Nothing was written.")
            for row in list(survey.files.values()):
                failed = (imports.get("imports") or {}).get(row.module)
                if failed and row.status == "carried":
                    missing = failed.get("missing", "")
                    why = f"importing it with {install.python} fails: {failed['error']}"
                    if missing and not missing.startswith("ultralytics"):
                        why += f"; install the package: {_pip_line(missing, install)}"
                    reading._drop(row, survey.files, survey.names, why)
            for y in survey.yamls:
                if y.carried:
                    y.source = built.get("fatal") or (built.get("builds") or {}).get(
                        str(package / PurePosixPath(y.rel)), {"error": "not built"})
            # 2. the final patch, staged, and every yaml built on the target
            modules = tuple(recorded.values()) + tuple(survey.modules())
            extra = () if in_place else _yaml_additions(install, survey, same)
            say("building the yamls on the target, patched")
            final = planning.make_plan(install, transforms, modules, sources=sources, extra=extra)
            replaced = _replaced(install, final, current, in_place)
            _write(stage, final, {})
            yamls = [y for y in survey.yamls if y.carried]
            answer = _probe(install.python, stage, [],
                            [str(stage / "ultralytics" / PurePosixPath(y.rel)) for y in yamls])
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        if "fatal" in answer:
            raise PatchError(Exit.ADOPT, f"Ultralytics {install.release} with the adopted modules does not import: "
                             f"{answer['fatal']['error']}", "Please report this with the tree; nothing was written.")
        for y in yamls:
            y.target = answer["builds"].get(str(stage / "ultralytics" / PurePosixPath(y.rel)), {"error": "not built"})
        _report(result, survey)
        for edit in result.edits:  # in place, a file a transform edits is replaced, not left: say so
            if edit["path"] in sources:
                edit["why"] = (f"replaced by Ultralytics {install.release}'s own file with rtdetr-patch's patch (your "
                               "copy is kept in the store; `rtdetr-patch revert` puts it back)")
        adopted = {"source": str(package), "source_release": survey.release, "in_place": in_place,
                   "names": [n.to_dict() for n in survey.names],
                   "yamls": [{"path": y["path"], "source": y["source"], "target": y["target"]} for y in result.yamls
                             if y["carried"]],
                   "edits": result.edits}
        kept = {}
        if in_place:
            kept = {rel: (package / PurePosixPath(rel)).read_bytes() for rel in survey.modified + survey.added}
            result.kept = str(store.dir / "adopted")
        if dry_run:
            result.plan = final
            return result
        say("writing")
        applied = applying._apply(install, store, record, same, dry_run=False, options=frozenset(), force=force,
                                 modules=modules, sources=sources, extra=extra, current=current | replaced,
                                 adopted=adopted, kept=kept)
        result.written, result.added, result.plan = applied.written, applied.added, applied.plan
        result.already = applied.already
        return result


def _already(install: Install, record, store, recovered: str | None) -> AdoptResult:
    """An install adopted in place before, every file as recorded: the account from the record."""
    adopted = record.adopted
    return AdoptResult(already=True, in_place=True, source=adopted.get("source"),
                       source_release=adopted.get("source_release"), names=list(adopted.get("names", [])),
                       yamls=[{**y, "uses": [], "carried": True, "why": ""} for y in adopted.get("yamls", [])],
                       edits=list(adopted.get("edits", [])), recovered=recovered, store=str(store.dir))


def _yaml_additions(install: Install, survey: reading.Survey, same) -> tuple[tuple[str, bytes], ...]:
    """The tree's yamls, each where the tree has it, unless the target holds another file there."""
    from ..plan.planner import template_files  # libcst: already loaded, adopt plans

    ours = {a.path: a.sha256 for a in same.added} if same else {}
    shipped = {rel for rel, _ in template_files(install)}
    out = []
    for y in survey.yamls:
        if not y.carried:
            continue
        if y.rel in shipped:  # the series' yamls rtdetr-patch ships itself (rtdetr-resnet18.yaml): built as ours
            y.why = f"rtdetr-patch ships its own {y.rel}: the target builds that one"
            continue
        there = install.package / PurePosixPath(y.rel)
        if there.is_file() and there.read_bytes() != y.data and ours.get(y.rel) != sha256(there.read_bytes()):
            y.carried, y.why = False, f"Ultralytics {install.release} has its own {y.rel}"
            continue
        out.append((y.rel, y.data))
    return tuple(out)


def _replaced(install: Install, plan, current: dict[str, bytes], in_place: bool) -> dict[str, bytes]:
    """In place: the files of the tree an addition overwrites (its own nn/Addmodules/__init__.py, MobileNetV3.py
    ...), with their bytes now, to be recorded as originals."""
    if not in_place:
        return {}
    out = {}
    for add in plan.additions:
        if add.rel not in current and add.path.is_file() and not add.path.is_symlink():
            out[add.rel] = add.path.read_bytes()
    return out


def _report(result: AdoptResult, survey: reading.Survey) -> None:
    result.names = [n.to_dict() for n in survey.names]
    result.files = [{"path": r.rel, "stem": r.stem, "names": r.names, "status": r.status, "why": r.why}
                    for r in survey.files.values()]
    result.yamls = [y.to_dict() for y in survey.yamls]
    result.edits = list(survey.edits)
    for y in survey.yamls:
        if y.stock_edit:
            result.edits.append({"path": y.rel, "why": "a yaml of Ultralytics edited in place: not carried"})
    built = [y for y in survey.yamls if y.carried and "params" in y.source]
    on_target = [y for y in built if "params" in y.target]
    result.summary = {"names": len(survey.names), "carried": sum(n.status == "carried" for n in survey.names),
                      "yamls": sum(y.carried for y in survey.yamls), "build_in_source": len(built),
                      "build_on_target": len(on_target),
                      "same_params": sum(y.source["params"] == y.target["params"] for y in on_target)}


__all__ = ["adopt"]
