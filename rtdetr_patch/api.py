"""``apply``, ``check`` and ``revert`` as functions that return result objects.

The command line is a thin shell over these: it prints a result as tables, or as JSON with
``--json`` (``result.to_dict()``, the schema below). Each keyword argument has the name of the
command-line option it stands for (``--no-verify`` is ``no_verify=True``). A failure raises
:class:`PatchError` with ``.code``, the command line's exit code; ``check`` returns its findings
(``ok`` false, ``exit_code`` 7, 8 or 13) instead of raising, because they are its answer.

JSON schema (``"schema": 1``), common to the three commands::

    schema        1
    command       "apply" | "adopt" | "check" | "revert"
    tool          rtdetr-patch's version
    ok            true when exit_code is 0
    exit_code     the process's exit code (README, "Exit codes")
    error         null, or {"message", "hint"} when the command stopped on a failure
    ultralytics   null (not found), or {"release", "package", "python", "how", "tested"}
    warnings      things to act on (a recovered run and, for revert, the files left untouched
                  first; in Python ``result.all_warnings``, as ``result.warnings`` holds only the rest);
                  "notes" facts only; "problems" why a check failed
    restart_needed  true when this Python had already imported the Ultralytics just changed
    transforms    [{"name", "blog_step", "file", "state"}]; state is one of patched, applied,
                  not-needed (apply), or applied, missing, not-needed, unrecognised (check)

and per command: apply adds dry_run, already, written, added, additions, upgraded_from,
recovered, modules, store, diff (dry run), verification; revert adds nothing, restored, removed,
kept, left, stale_release, recovered, left_as_edited; adopt adds dry_run, already, in_place, source,
source_release, names, files, yamls, edits, written, added, kept, recovered, store, verification; check adds static, files, added, hand_patched, modules,
store, recorded, recorded_release, release_tested, tested_range, verification, adopted.
"""

from __future__ import annotations

import sys
import warnings as _warnings
from pathlib import Path
from typing import Callable

from .patcher.commands import apply as applying
from .patcher.commands import revert as reverting
from .patcher.commands.check import inspect, not_needed_note, verdict
from .patcher.errors import NOTHING_WRITTEN, WRITTEN_NOT_VERIFIED, Exit, PatchError, if_interrupted
from .patcher.install.locate import Install, locate
from .patcher.results import JSON_SCHEMA, AdoptResult, ApplyResult, CheckResult, Result, RevertResult, describe
from .patcher.states import Outcome
from .patcher.target.target_common import unscaled

DEFAULT_YAML = "rtdetr-MobileNetV3.yaml"
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def _restart_needed(install: Install, changed: bool) -> bool:
    """Whether this process imported the Ultralytics whose files just changed (it keeps the old code)."""
    loaded = sys.modules.get("ultralytics")
    where = getattr(loaded, "__file__", None)
    if not changed or not where:
        return False
    try:
        return Path(where).resolve().parent == install.package.resolve()
    except OSError:
        return False


def _restart_warning(result: Result, install: Install) -> None:
    message = (
        f"This Python process imported Ultralytics from {install.package} before it changed: restart the "
        "process (in a notebook: the kernel) before training, or it keeps the code it loaded."
    )
    result.restart_needed = True
    result.warnings.append(message)
    _warnings.warn(message, RuntimeWarning, stacklevel=3)


def _yaml(yaml: str) -> str:
    """A shipped yaml's name as given; the user's own yaml (a path) made absolute, and it must exist."""
    path = Path(yaml).expanduser()
    # Ultralytics' scale letter: yolo11n-x.yaml builds yolo11-x.yaml at scale n (its yaml_model_load rule)
    if path.is_file() or path.with_name(unscaled(path.name)).is_file():
        return str(path.parent.resolve() / path.name)
    if len(path.parts) > 1 or path.suffix not in (".yaml", ".yml"):
        raise PatchError(
            Exit.USAGE,
            f"--yaml {yaml}: there is no such file (from {Path.cwd()}).",
            "Give the path of your model yaml, or the name of a yaml shipped in Ultralytics' "
            "cfg/models, e.g. rtdetr-MobileNetV3.yaml. Nothing was written.",
        )
    return yaml


def _known_yaml(install: Install, yaml: str, adds: bool) -> None:
    """A yaml given by name must be one the install ships (or, for ``adds``, one ``apply`` adds): else refuse it
    before anything is written, with the closest names, instead of failing in the smoke run after writing."""
    if Path(yaml).is_absolute():
        return  # the user's own file (``_yaml`` made it absolute and checked it exists)
    wanted = {yaml, unscaled(yaml)}
    from importlib import resources  # only a verifying command with a yaml name looks the names up

    added = Path(str(resources.files("rtdetr_patch.templates")))  # the yamls apply adds
    roots = [install.package / "cfg" / "models"] + ([added] if adds else [])
    names = {p.name for root in roots if root.is_dir() for p in root.rglob("*.y*ml")}
    if wanted & names:
        return
    import difflib  # only for the refusal's closest names

    close = difflib.get_close_matches(yaml, sorted(names), n=4, cutoff=0.6)
    raise PatchError(
        Exit.USAGE,
        f"--yaml {yaml}: Ultralytics {install.release} at {install.package} ships no yaml of "
        f"that name{', nor does rtdetr-patch add one' if adds else ''}, and there is no such file in "
        f"{Path.cwd()}.",
        (f"Did you mean {', '.join(close)}? " if close else "")
        + f"The shipped yamls are under {install.package / 'cfg' / 'models'}; for your own yaml give its "
        "path. Nothing was written.",
    )


def _verify(install: Install, yaml: str, on_stage: Progress, train: bool = False, fresh: bool = True) -> dict:
    """The smoke figures: from the last passing verification with the same key unless ``fresh`` or ``train``
    (``patcher/record/verified.py`` says what the key holds), else from a new smoke run, kept for next time. A new
    run builds stock rtdetr-l only where no passing run built it on these very package bytes."""
    # torch-free, but only a verification needs them: kept off the fast paths
    from .patcher.commands.verify import verify
    from .patcher.record import verified  # the last passing smoke run, kept by its key
    from .patcher.record.store import Store, now  # (loaded already by the command)

    store = Store(install)
    keys = verified.keys_of(install, store, yaml)
    if keys.run is not None and not fresh and not train:
        kept = verified.cached(store, keys.run)
        if kept is not None:
            return kept
    stock = verified.stock_checked(store, keys.stock)
    figures = verify(install, yaml=yaml, on_stage=on_stage, train=train, stock=stock is None)
    if stock is not None:  # no byte of the package changed since a passing run built it: its count stands
        figures["rtdetr_l_params"] = stock["params"]
        figures["stock_checked"] = {"at": stock["at"]}
    if not train:
        verified.remember(store, keys, figures, now())
    return figures


def apply(
    *,
    python: str | None = None,
    target: str | None = None,
    dry_run: bool = False,
    no_verify: bool = False,
    val_rect_fix: bool = False,
    force: bool = False,
    modules: tuple[str, ...] | list[str] = (),
    yaml: str = DEFAULT_YAML,
    train: bool = False,
    on_install: Callable[[Install], None] | None = None,
    on_stage: Progress = _quiet,
) -> ApplyResult:
    """Patch the Ultralytics found (this Python's, or ``python=``/``target=``), record the originals,
    then verify with a smoke run (skipped by ``no_verify`` and ``dry_run``).

    ``val_rect_fix`` also runs the opt-in transform of blog step 4.10. ``modules`` are ``FILE.py[:NAME[=RULE]]``
    modules of your own (README, "Your own backbones and modules"). ``train`` adds one short epoch through Ultralytics' own
    trainer to the smoke run (docs/verification.md). ``on_install`` is called with the install once it is found, ``on_stage``
    with each verification stage (for progress display).
    """
    yaml = _yaml(yaml)
    options = frozenset({"val_rect_fix"} if val_rect_fix else ())  # keyword -> the transform's OPTION
    with if_interrupted(NOTHING_WRITTEN):
        install = locate(python, target)
        if on_install:
            on_install(install)
        if not no_verify and not dry_run:
            _known_yaml(install, yaml, adds=True)
        result = applying.apply(
            install,
            dry_run=dry_run,
            options=options,
            force=force,
            module_specs=tuple(str(m) for m in modules),
            yaml=yaml,
        )
    with if_interrupted(NOTHING_WRITTEN if dry_run or not (result.written or result.added) else WRITTEN_NOT_VERIFIED):
        return _finish_apply(
            install, result, dry_run=dry_run, no_verify=no_verify, yaml=yaml, on_stage=on_stage, train=train
        )


def _finish_apply(
    install: Install,
    result: ApplyResult,
    *,
    dry_run: bool,
    no_verify: bool,
    yaml: str,
    on_stage: Progress,
    train: bool = False,
) -> ApplyResult:
    result.notes = [
        not_needed_note(t.name, install.release) for t in result.transforms if t.state is Outcome.NOT_NEEDED
    ]
    if dry_run and result.plan is not None:
        import difflib  # only a dry run shows a diff

        result.diff = "".join(
            "".join(
                difflib.unified_diff(
                    change.before.decode("utf-8", "replace").splitlines(keepends=True),
                    change.after.decode("utf-8", "replace").splitlines(keepends=True),
                    fromfile=f"a/ultralytics/{change.rel}",
                    tofile=f"b/ultralytics/{change.rel}",
                )
            )
            for change in result.plan.changes
        )
    if dry_run:
        return result
    if _restart_needed(install, bool(result.written or result.added)):
        _restart_warning(result, install)
    if not no_verify and not result.already:
        try:
            result.verification = _verify(install, yaml, on_stage, train)
        except PatchError as exc:  # say which rule each module went in with: a wrong one is the usual cause
            rules = [
                f"{r['name']}={r['rule']}" + (" (from its signature)" if r.get("inferred") else "")
                for r in result.modules
                if r.get("rule")
            ]
            if rules:
                exc.message += "\nThe modules were registered as: " + ", ".join(rules) + "."
            raise
    return result


def adopt(
    *,
    python: str | None = None,
    target: str | None = None,
    source: str | None = None,
    wheel: str | None = None,
    dry_run: bool = False,
    no_verify: bool = False,
    force: bool = False,
    yaml: str = DEFAULT_YAML,
    on_install: Callable[[Install], None] | None = None,
    on_stage: Progress = _quiet,
) -> AdoptResult:
    """Carry a hand-edited tree's modules and yamls into a managed patch (README, "Coming from a hand-edited
    install or a fork").

    ``source`` is a fork's ``ultralytics/`` folder (or the checkout holding one); without it the install found
    (this Python's, ``python=``, ``target=``) is adopted in place. ``wheel`` is the tree's own release's wheel,
    for a machine without PyPI. The plan is in the result (``names``, ``files``, ``yamls``, ``edits``); with
    ``dry_run`` nothing is written, else the patch is written and verified (``no_verify`` skips that). A
    ``PatchError`` raised once the tree is read carries the plan as far as it went in ``partial`` (an
    ``AdoptResult``: names, files, yamls, edits).
    """
    from .patcher.commands.adopt import adopt as adopting  # the survey and its probes load only for adopt

    yaml = _yaml(yaml)
    with if_interrupted(NOTHING_WRITTEN):
        install = locate(python, target, adopting=source is None)  # (in place, a fork without cfg/models/rt-detr)
        if on_install:
            on_install(install)
        result = adopting(install, source=source, wheel=wheel, dry_run=dry_run, force=force, on_stage=on_stage)
    result.ultralytics = describe(install)
    if dry_run or result.already or not (result.written or result.added):
        return result
    with if_interrupted(WRITTEN_NOT_VERIFIED):
        if _restart_needed(install, True):
            _restart_warning(result, install)
        if not no_verify:
            result.verification = _verify(install, yaml, on_stage)
    return result


def revert(
    *,
    python: str | None = None,
    target: str | None = None,
    force: bool = False,
    on_install: Callable[[Install], None] | None = None,
) -> RevertResult:
    """Restore every changed file byte for byte and remove every added file.

    Files edited since ``apply`` stop the revert (``PatchError``, exit 7) unless ``force=True``,
    which keeps the edited copies in the store.
    """
    with if_interrupted(NOTHING_WRITTEN):
        install = locate(python, target)
        if on_install:
            on_install(install)
        result = reverting.revert(install, force=force)
    if _restart_needed(install, bool(result.restored or result.removed)):
        _restart_warning(result, install)
    return result


def check(
    *,
    python: str | None = None,
    target: str | None = None,
    static: bool = False,
    error_on_warn: bool = False,
    yaml: str = DEFAULT_YAML,
    train: bool = False,
    fresh: bool = False,
    on_install: Callable[[Install], None] | None = None,
    on_stage: Progress = _quiet,
) -> CheckResult:
    """Is the patch whole and unchanged, and does it run (skipped by ``static``)? ``train`` adds one short
    epoch through Ultralytics' own trainer to the smoke run. A smoke run that passed before with nothing it
    depends on changed since (every file of the Ultralytics package, the yaml, Python and its packages) is not run again:
    its figures come back with ``cached``; ``fresh`` runs it anyway (``--train`` always runs).

    Returns the findings; ``result.ok`` is true only if all holds. Raises ``PatchError`` only when
    there is nothing to check (no Ultralytics found, an unreadable record).
    """
    with if_interrupted(NOTHING_WRITTEN):  # check writes nothing to the install
        return _check(python, target, static, error_on_warn, yaml, on_install, on_stage, train, fresh)


def _check(python, target, static, error_on_warn, yaml, on_install, on_stage, train=False, fresh=False) -> CheckResult:
    yaml = _yaml(yaml)
    install = locate(python, target)
    if on_install:
        on_install(install)
    result = inspect(install)
    result.static = static
    code = verdict(result, error_on_warn)
    if code == Exit.OK and not static:
        # the name is looked up once the patch is found whole: on an unpatched install, the yamls apply adds are
        # not there yet, and "not patched" is the answer, not "no yaml of that name"
        _known_yaml(install, yaml, adds=False)
        try:
            result.verification = _verify(install, yaml, on_stage, train, fresh=fresh)
        except PatchError as exc:
            code = int(exc.code)
            result.problems.append(str(exc))
    result.exit_code = int(code)
    result.ok = code == Exit.OK
    return result


__all__ = [
    "apply",
    "adopt",
    "check",
    "revert",
    "AdoptResult",
    "ApplyResult",
    "CheckResult",
    "RevertResult",
    "Result",
    "PatchError",
    "Exit",
    "JSON_SCHEMA",
]
