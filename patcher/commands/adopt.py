"""``adopt``: survey the tree, probe what it carries on the target, then write it as one managed patch.

Orchestration only (the reading is ``adopt/survey.py``, the writing ``apply.write_plan``):

1. survey the tree against its pristine release (names, rules, files, yamls, edits);
2. before any yaml is built, everything fatal: the plans parse, each carried file imported on its own in a
   staged copy of the target with the patch written in it (a file whose import fails costs only its own
   names), the tree's own Ultralytics imported (checked: from the tree's folder, of its release), then the
   final patch staged and imported;
3. every yaml built on the staged target, then in the tree on its own release: each in a child of its own,
   with a time and a memory limit (``runner.BUILD_LIMITS``), ``JOBS`` at a time; parameters side by side;
4. unless ``dry_run``, write the final plan through ``apply.write_plan`` (a changeset handed to the transaction:
   all or nothing, originals recorded first). In
   place, the pristine release's ``tasks.py`` (and every file a transform edits) replaces the
   hand-edited one, and every hand-edited or added file of the tree is kept in the store first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable

from ..adopt import loss as box_loss
from ..adopt import survey as reading
from ..disk.files import sha256
from ..errors import Exit, PatchError
from ..install.locate import Install
from ..modules.pip_names import pip_package
from ..modules.user_module import UserModule
from ..record.manifest import AdoptedAccount, Record, package_inits
from ..record.store import Store
from ..results import AdoptEditRow, AdoptFileRow, AdoptNameRow, AdoptResult, AdoptSummary, AdoptYamlRow, Stage
from ..states import AdoptStatus
from ..target import runner
from ..version import __version__
from ..write.session import session
from .apply import Adoption, Found, write_plan
from .patch_state import recorded_modules, transforms_for

if TYPE_CHECKING:  # libcst: adopt plans, it loads when it does
    from ..plan.planner import Plan

JOBS = max(1, min(2, os.cpu_count() or 1))  # yamls built at a time, each in a child of its own


def _probe(
    python: str,
    root: Path,
    package: Path,
    imports: list[str],
    yamls: list[str],
    on_built: Callable[[int, int], None] = lambda done, of: None,
) -> dict:
    """The probe's answer for the ``ultralytics`` in ``package`` (``root`` first on the path): ``imports`` each
    imported, ``yamls`` each built in a bounded child. A probe that ends without its answer keeps the builds it
    reported, beside a ``fatal`` that says why."""
    built: dict[str, dict] = {}

    def event(found: dict) -> None:
        if "built" in found:
            built[found["built"]] = found["result"]
            on_built(found["done"], found["of"])

    spec = {"package": str(package), "imports": imports, "yamls": yamls, "jobs": JOBS, **runner.BUILD_LIMITS}
    try:  # the spec goes in a file: a fork's few hundred yaml paths would pass Windows' command-line limit
        answer = runner.run("adopt-probe", python, [str(root)], spec=spec, cwd=root, on_event=event).answer
    except runner.NoAnswer as exc:
        tail = exc.output(600)
        why = f"the probe did not answer ({type(exc.cause).__name__}: {exc.cause}) {tail}".strip()
        return {"fatal": {"error": why}, "builds": built}
    if "built" in answer:  # its last line was a yaml's, not the answer
        return {"fatal": {"error": "the probe ended before its answer"}, "builds": built}
    return answer


def _checked(answer: dict, package: Path, release: str, python: str, whose: str) -> None:
    """The probe imported the ``ultralytics`` in ``package`` and it is ``release``; else exit 16 naming both."""
    stray, found = answer.get("elsewhere"), answer.get("release")
    if stray:
        raise PatchError(
            Exit.ADOPT,
            f"{whose} would be built with another Ultralytics: {python} imported {stray['module']} from "
            f"{stray['file']}, not from {package}.",
            f"The tree lacks that file, or this interpreter puts another Ultralytics first (an editable install, a "
            f"path hook): restore the file in {package}, or run adopt with a --python that does not install "
            "Ultralytics from elsewhere. Nothing was written.",
        )
    if found and found != release:
        raise PatchError(
            Exit.ADOPT,
            f"{whose} would be built with Ultralytics {found} ({answer.get('package')}), not {release}: "
            f"{python} imported it in place of {package}.",
            f"Check {package / '__init__.py'}'s __version__, or run adopt with another --python. Nothing was written.",
        )


def _parses(plan: Plan, carried: set[str], release: str) -> None:
    """Every Python file the plan generates or edits parses (the fork's own carried files are probed on the
    target): a file that does not is known before any yaml is built."""
    files = [(c.rel, c.after) for c in plan.files if c.after] + [(a.rel, a.data) for a in plan.additions]
    for rel, data in files:
        if not rel.endswith(".py") or rel in carried:
            continue
        try:
            compile(data, rel, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            raise PatchError(
                Exit.ADOPT,
                f"The patch for Ultralytics {release} would write {rel} that does not parse "
                f"(line {getattr(exc, 'lineno', '?')}: {getattr(exc, 'msg', exc)}).",
                "This is a bug of rtdetr-patch: please report it with the tree. Nothing was written.",
            ) from None


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


@dataclass
class _Adopting:
    """One adopt run: the install as found, the tree read against its release, and what the plan starts from."""

    found: Found
    package: Path  # the tree's ultralytics/ folder
    in_place: bool
    survey: reading.Survey
    say: Callable[..., None]  # say(text, line=True): a stage of the progress line (``Stage``)
    transforms: tuple[Any, ...] = ()
    recorded: dict[str, UserModule] = field(default_factory=dict)  # the users' modules an earlier apply added
    sources: dict[str, bytes] = field(default_factory=dict)  # in place: a managed file planned from the pristine one
    current: dict[str, bytes] = field(default_factory=dict)  # in place: those files' bytes now (the originals)
    put_back: dict[str, bytes] = field(default_factory=dict)  # in place: an edited file the release's must replace
    built_with: dict | None = None  # the Ultralytics the tree's yamls are built with: release, package, python

    @property
    def install(self) -> Install:
        return self.found.install


def adopt(
    install: Install,
    *,
    source: str | None = None,
    wheel: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    on_stage: Callable[[str], None] = lambda s: None,
) -> AdoptResult:
    def say(text: str, line: bool = True) -> None:  # the progress line shows these (the smoke run's stages follow)
        on_stage(Stage(f"adopt: {text}", line=line))

    package = reading.source_package(source) if source is not None else install.package
    in_place = package.resolve() == install.package.resolve()
    with session(install) as held:
        found = Found.read(install, held.store)
        same = found.same
        _refuse_an_older_patch(install, same)
        if in_place and same is not None and same.adopted and same.intact(install, __version__):
            return _already(install, same, held.store, held.recovered)  # its tasks.py is the managed patch now
        ours = set()
        if in_place and same is not None:
            ours = {f.path for f in same.files} | {a.path for a in same.added}
        say("reading the tree against its release")
        survey = reading.survey(package, install, in_place=in_place, wheel=wheel, ours=ours)
        box_loss.carry(survey)  # the tree's loss flags, as the adopted yamls' iou_loss
        result = AdoptResult(
            in_place=in_place,
            source=str(package),
            source_release=survey.release,
            dry_run=dry_run,
            recovered=held.recovered,
            store=str(held.store.dir),
        )
        job = _adopting(found, package, in_place, survey, say)
        gained = [n for n in survey.names if n.status == "carried"]
        if not gained and not job.sources and not [y for y in survey.yamls if y.carried and not in_place]:
            return _nothing_to_carry(job, result)
        try:
            final, modules, replaced = _carry(job)
        except PatchError as exc:  # the survey so far goes with the error (--json prints it beside the error)
            _report(result, survey, job.built_with)
            exc.partial = result
            raise
        _report(result, survey, job.built_with)
        result.edits = [  # in place, a file a transform edits (or the patched tree needs) is replaced: say so
            replace(
                edit,
                why=f"replaced by Ultralytics {install.release}'s own file"
                + (
                    " with rtdetr-patch's patch"
                    if edit.path in job.sources
                    else " (yours does not import beside the release's files the patch puts back)"
                )
                + " (your copy is kept in the store; `rtdetr-patch revert` puts it back)",
            )
            if edit.path in job.sources or edit.path in job.put_back
            else edit
            for edit in result.edits
        ]
        adoption = _adoption(job, result, replaced)
        if dry_run:
            result.plan = final
            return result
        say("writing")
        applied = write_plan(found, final, modules, dry_run=False, force=force, adoption=adoption)
        result.written, result.added, result.plan = applied.written, applied.added, applied.plan
        result.already = applied.already
        return result


def _refuse_an_older_patch(install: Install, same: Record | None) -> None:
    if same is not None and same.tool != __version__:
        raise PatchError(
            Exit.ADOPT,
            f"Ultralytics {install.release} at {install.package} holds the patch of "
            f"rtdetr-patch {same.tool or 'an earlier release'}.",
            "Run `rtdetr-patch apply` first (it brings the patch up to this release), then adopt.",
        )


def _adopting(
    found: Found, package: Path, in_place: bool, survey: reading.Survey, say: Callable[[str], None]
) -> _Adopting:
    """The run, with what the plan starts from: in place, each file a transform edits is planned from the
    pristine release's copy (unless the transform keeps the tree's edits), its bytes now kept as the original."""
    install, same = found.install, found.same
    job = _Adopting(
        found,
        package,
        in_place,
        survey,
        say,
        transforms=transforms_for(same),
        recorded={m.name: m for m in recorded_modules(found.store, same)},
    )
    managed = {t.FILE for t in job.transforms}
    if in_place:
        kept_edits = {t.FILE for t in job.transforms if t.KEEPS_EDITS}  # patched as the tree has them
        for rel in survey.modified:
            if rel in managed and rel not in kept_edits:
                job.sources[rel] = (survey.pristine / PurePosixPath(rel)).read_bytes()
                job.current[rel] = (install.package / PurePosixPath(rel)).read_bytes()
    return job


def _nothing_to_carry(job: _Adopting, result: AdoptResult) -> AdoptResult:
    """No name gained, no file replaced, no yaml to add: adopted already, or nothing to adopt."""
    same, survey = job.found.same, job.survey
    result.already = bool(same and same.adopted)
    _report(result, survey)
    if not result.already and not survey.names:
        raise PatchError(
            Exit.ADOPT,
            f"{job.package} (Ultralytics {survey.release}) has no module of its own to "
            "carry: parse_model gained no name and no yaml was added.",
            "Nothing to adopt; `rtdetr-patch apply` patches a pristine install. Nothing was written.",
        )
    return result


def _carry(job: _Adopting) -> tuple[Plan, tuple[UserModule, ...], dict[str, bytes]]:
    """Probe the tree's files and yamls (dropping what fails), then the final patch: its plan, its modules, and the
    files of the tree it overwrites in place (with their bytes now). Everything fatal is found before any yaml
    is built: the plans parse, the staged target imports, each Ultralytics is the one meant."""
    from ..plan import planner as planning  # libcst: adopt always plans

    install, survey = job.install, job.survey
    for row in survey.files.values():
        if row.stem in job.recorded:
            reading.drop(
                row, survey.files, survey.names, f"an earlier apply already added a module file named {row.stem}.py"
            )
    # 1. each file imported on its own on the target (staged), and the tree's own Ultralytics imported (parallel)
    job.say("importing each module file on the target, and the tree's own Ultralytics")
    base = planning.make_plan(install, job.transforms, tuple(job.recorded.values()), sources=job.sources)
    stage = _stage(install)  # one copy for both passes: the second writes the final plan over the first
    staged = stage / "ultralytics"
    try:
        tree = _import(job, stage, base)
        # 2. the final patch, staged: it must import before any yaml is built; then every yaml built on the target
        modules = tuple(job.recorded.values()) + tuple(survey.modules())
        extra = (
            _yaml_rewrites(survey) + tuple(job.put_back.items())
            if job.in_place
            else _yaml_additions(install, survey, job.found.same)
        ) + tuple(
            (rel, data) for rel, data in survey.data_files().items() if not (install.package / rel).exists()
        )  # (in place, a data file already where it is carried stays as it is)
        final = planning.make_plan(install, job.transforms, modules, sources=job.sources, extra=extra)
        _parses(final, _carried_rels(survey), install.release)
        replaced = _replaced(install, final, job.current, job.in_place)
        _write(stage, final, {})
        yamls = [y for y in survey.yamls if y.carried]
        job.say("building the yamls on the target, patched")
        answer = _probe(
            install.python,
            stage,
            staged,
            [],
            [str(staged / PurePosixPath(y.rel)) for y in yamls],
            _counting(job, "on the target"),
        )
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if "fatal" in answer and not answer.get("builds"):
        raise PatchError(
            Exit.ADOPT,
            f"Ultralytics {install.release} with the adopted modules does not import: {answer['fatal']['error']}",
            "Please report this with the tree; nothing was written.",
        )
    _checked(answer, staged, install.release, install.python, f"Ultralytics {install.release}, staged with the patch,")
    for y in yamls:
        y.target = _built(answer, str(staged / PurePosixPath(y.rel)))
    # 3. every yaml built in the tree itself, on its own release (unless its Ultralytics does not import)
    if "fatal" in tree:
        for y in yamls:
            y.source = {
                "error": f"the tree's Ultralytics does not import with {install.python}: {tree['fatal']['error']}"
            }
        return final, modules, replaced
    job.say("building the yamls in the tree, on its own release")
    package = job.package
    built = _probe(
        install.python,
        package.parent,
        package,
        [],
        [str(package / PurePosixPath(y.rel)) for y in yamls],
        _counting(job, "in the tree"),
    )
    _checked(built, package, survey.release, install.python, "The tree's yamls")
    for y in yamls:
        y.source = _built(built, str(package / PurePosixPath(y.rel)))
    return final, modules, replaced


def _built(answer: dict, path: str) -> dict:
    """A yaml's build in a probe's answer; else why there is none."""
    found = (answer.get("builds") or {}).get(path)
    if found is not None:
        return found
    return dict(answer["fatal"]) if "fatal" in answer else {"error": "not built"}


def _counting(job: _Adopting, where: str) -> Callable[[int, int], None]:
    """The progress of a probe's builds: every yaml on the live line, a line of its own every hundred and at the end."""

    def built(done: int, of: int) -> None:
        job.say(f"building the yamls {where}: {done} of {of}", line=done % 100 == 0 or done == of)

    return built


def _carried_rels(survey: reading.Survey) -> set[str]:
    return {r.target for r in survey.files.values() if r.status == "carried"}


def _import(job: _Adopting, stage: Path, base: Plan) -> dict:
    """The first pass: each carried file imported on the target, staged with the patch (a file that fails is
    dropped, with why), and the tree's own Ultralytics imported and checked; no yaml is built. Returns the tree's
    answer (with ``fatal`` where it does not import: its yamls are then not built)."""
    install, survey, package = job.install, job.survey, job.package
    carried = [r for r in survey.files.values() if r.status == "carried"]
    files = {r.target: r.data for r in carried} | {rel: b"" for rel in package_inits(survey.modules())}
    _parses(base, set(files), install.release)
    _write(stage, base, files)
    staged = stage / "ultralytics"
    modules = [r.module for r in carried]
    with ThreadPoolExecutor(2) as pool:
        target_imports = pool.submit(_probe, install.python, stage, staged, modules, [])
        tree_import = pool.submit(_probe, install.python, package.parent, package, [], [])
        imports, tree = target_imports.result(), tree_import.result()
    while "fatal" in imports and (rel := _to_put_back(job, staged, imports["fatal"])) is not None:
        job.put_back[rel] = (survey.pristine / PurePosixPath(rel)).read_bytes()  # (the tree's bytes: kept, restored)
        _write(stage, base, {rel: job.put_back[rel]})
        imports = _probe(install.python, stage, staged, modules, [])
    if "fatal" in imports:
        raise _staged_fails(job, staged, imports["fatal"])
    _checked(imports, staged, install.release, install.python, f"Ultralytics {install.release}, staged with the patch,")
    _checked(tree, package, survey.release, install.python, "The tree's yamls")
    if "fatal" not in tree:
        job.built_with = {"release": tree.get("release"), "package": tree.get("package"), "python": install.python}
    for row in list(survey.files.values()):
        failed = (imports.get("imports") or {}).get(row.module)
        if failed and row.status == "carried":
            missing = failed.get("missing", "")
            why = f"importing it with {install.python} fails: {failed['error']}{survey.edited_cause(failed['error'])}"
            if missing and not missing.startswith("ultralytics"):
                why += f"; install the package: {_pip_line(missing, install)}"
            reading.drop(row, survey.files, survey.names, why)
    return tree


def _to_put_back(job: _Adopting, staged: Path, fatal: dict) -> str | None:
    """In place, the file of the tree's edits that the staged target's failed import goes through, innermost first
    (the tree's ``nn/modules/__init__.py`` importing ``C3k`` from its edited ``block.py``, which the patch replaced
    with the release's; its ``engine/trainer.py`` importing its own ``nn/extra_modules``, which need its edited
    ``nn/modules``): it is replaced by the release's own too, so that the tree is adopted whole. None: no such file
    (the failure is reported)."""
    if not job.in_place:
        return None
    for where in reversed(fatal.get("trace") or [fatal.get("where")]):
        rel = _inside(staged, where)
        if rel in job.survey.modified and rel not in job.sources and rel not in job.put_back:
            return rel if (job.survey.pristine / PurePosixPath(rel)).is_file() else None
    return None


def _staged_fails(job: _Adopting, staged: Path, fatal: dict) -> PatchError:
    """The staged target does not import: where it fails says whose it is. In place, a file the tree edited and
    adopt leaves as it is (beside the release's own files put back for the patch); else the interpreter."""
    install = job.install
    rel, at = _inside(staged, fatal.get("where")), ""
    if rel:
        at = f" (in {rel}, line {fatal['where'][1]})"
    message = (
        f"Ultralytics {install.release} at {install.package}, staged with the patch, does not import with "
        f"{install.python}{at}: {fatal['error']}"
    )
    if job.in_place and rel in job.survey.modified and rel not in job.sources:
        put_back = ", ".join(sorted(job.sources)) or "files"
        return PatchError(
            Exit.ADOPT,
            message,
            f"{rel} is one of your edits, which adopt leaves as you made them; it does not import beside "
            f"Ultralytics {install.release}'s own {put_back}, which adopt puts back for the patch. Carry the tree "
            "with `rtdetr-patch adopt --from` a copy of it onto a pristine install (a fresh virtual environment), "
            "which leaves this one as it is. Nothing was written.",
        )
    if rel:
        return PatchError(Exit.ADOPT, message, "Please report this with the tree. Nothing was written.")
    return PatchError(
        Exit.ADOPT,
        message,
        "Check that this interpreter runs Ultralytics (`python -c 'import ultralytics'`). Nothing was written.",
    )


def _inside(package: Path, where: list | None) -> str | None:
    """The path inside ``package`` of the file a failure was raised in, or None (outside it, or not known)."""
    if not where:
        return None
    try:
        return Path(where[0]).resolve().relative_to(package.resolve()).as_posix()
    except ValueError:
        return None


def _adoption(job: _Adopting, result: AdoptResult, replaced: dict[str, bytes]) -> Adoption:
    """What the write adds to the patch: the account for the record, the originals an in-place adopt replaces,
    and (in place) every hand-edited or added file of the tree, kept in the store."""
    adopted = AdoptedAccount(
        source=str(job.package),
        source_release=job.survey.release,
        in_place=job.in_place,
        names=tuple(n.to_dict() for n in job.survey.names),
        yamls=tuple({"path": y.path, "source": y.source, "target": y.target} for y in result.yamls if y.carried),
        edits=tuple(e.to_dict() for e in result.edits),
    )
    kept = {}
    if job.in_place:
        kept = {rel: (job.package / PurePosixPath(rel)).read_bytes() for rel in job.survey.modified + job.survey.added}
        result.kept = str(job.found.store.dir / "adopted")
    return Adoption(current=job.current | replaced, adopted=adopted, kept=kept)


def _already(install: Install, record: Record, store: Store, recovered: str | None) -> AdoptResult:
    """An install adopted in place before, every file as recorded: the account from the record."""
    adopted = record.adopted
    assert adopted is not None  # asked only of a record adopt wrote
    return AdoptResult(
        already=True,
        in_place=True,
        source=adopted.source,
        source_release=adopted.source_release,
        names=[AdoptNameRow.from_dict(n) for n in adopted.names],
        yamls=[AdoptYamlRow(y["path"], (), True, "", y["source"], y["target"]) for y in adopted.yamls],
        edits=[AdoptEditRow.from_dict(e) for e in adopted.edits],
        recovered=recovered,
        store=str(store.dir),
    )


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
        data = y.data if y.adopted is None else y.adopted  # (rows rewritten for the target, where they need it)
        if there.is_file() and there.read_bytes() != data and ours.get(y.rel) != sha256(there.read_bytes()):
            y.carried, y.why = False, f"Ultralytics {install.release} has its own {y.rel}"
            continue
        out.append((y.rel, data))
    return tuple(out)


def _yaml_rewrites(survey: reading.Survey) -> tuple[tuple[str, bytes], ...]:
    """In place: the tree's yamls whose rows the target's parse_model would not read as the tree's did (yaml-level
    variables it substitutes, arguments a branch never reads), rewritten where they are. Written as additions over
    the tree's files, so their bytes now are kept as originals, and revert puts them back byte for byte."""
    out = []
    for y in survey.yamls:
        if y.carried and y.adopted is not None:
            y.why = "rewritten in place for this release's parse_model (your copy is kept; revert puts it back)"
            out.append((y.rel, y.adopted))
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


def _report(result: AdoptResult, survey: reading.Survey, built_with: dict | None = None) -> None:
    result.built_with = built_with
    result.names = [AdoptNameRow(n.name, AdoptStatus(n.status), n.rule, n.file, n.why, n.code) for n in survey.names]
    result.files = [
        AdoptFileRow(r.rel, r.stem, tuple(r.names), AdoptStatus(r.status), r.why) for r in survey.files.values()
    ]
    result.yamls = [AdoptYamlRow(y.rel, tuple(y.uses), y.carried, y.why, y.source, y.target) for y in survey.yamls]
    result.edits = [AdoptEditRow.from_dict(e) for e in survey.edits]
    for y in survey.yamls:
        if y.stock_edit:
            result.edits.append(AdoptEditRow(y.rel, "a yaml of Ultralytics edited in place: not carried"))
    built = [y for y in survey.yamls if y.carried and "params" in y.source]
    on_target = [y for y in built if "params" in y.target]
    result.summary = AdoptSummary(
        names=len(survey.names),
        carried=sum(n.status == "carried" for n in survey.names),
        yamls=sum(y.carried for y in survey.yamls),
        build_in_source=len(built),
        build_on_target=len(on_target),
        same_params=sum(y.source["params"] == y.target["params"] for y in on_target),
    )


__all__ = ["adopt"]
