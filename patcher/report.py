"""``check``: the state of an install, per transform, per file, per added file, and its exit code.

Two ways to the same report. When this tool version's record of this release says the patch is
finished and every file it names still has the recorded SHA-256, the report is read off the record:
no source is parsed (libcst is not even imported). Otherwise every file is planned again and
compared, which finds what changed, what is missing and what was edited by hand.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from . import __version__
from .errors import Exit, PatchError
from .files import digest_of
from .locate import TESTED_RELEASES, Install
from .record import Record
from .session import session
from .store import Store

STATES = {"patched": "applied", "applied": "applied", "not-needed": "not-needed"}


# Why a transform is not needed, per transform (a fact about the release: a note, not a warning).
NOT_NEEDED_WHY = {
    "safe-load": "the release has no restricted checkpoint loading to extend",
    "restricted-layers": "the release has no restricted model construction to extend",
    "get-flops": "the release already profiles at the real image size when the small probe fails",
    "repc3-expansion": "the release's RepC3 already builds cv1/cv2 with its hidden width",
}


def not_needed_note(name: str, release: str) -> str:
    return f"{name} is not needed on {release}: {NOT_NEEDED_WHY.get(name, 'the release already does it')}"


def inspect(install: Install, trust_record: bool = True) -> dict:
    """The static state of an install, with its exit code (``report["exit_code"]``)."""
    with session(install) as held:
        record = Record.of(held.store.manifest())
        if trust_record and record is not None and record.intact(install, __version__):
            report = from_record(install, held.store, record)
        else:
            report = from_files(install, held.store)
    if held.recovered:
        report["warnings"].insert(0, held.recovered)
    return report


def _base(install: Install, store: Store, manifest_release: str | None) -> dict:
    report: dict = {
        "release": install.release, "package": str(install.package), "python": install.python,
        "tested_range": [TESTED_RELEASES[0], TESTED_RELEASES[-1]], "release_tested": install.tested,
        "store": str(store.dir), "recorded": manifest_release is not None, "recorded_release": manifest_release,
        "transforms": [], "files": [], "added": [], "hand_patched": [], "warnings": [], "notes": [], "problems": [],
    }
    if not install.tested:
        report["warnings"].append(f"release {install.release} lies outside the tested range "
                                  f"{TESTED_RELEASES[0]}-{TESTED_RELEASES[-1]}")
    return report


def from_record(install: Install, store: Store, record: Record) -> dict:
    """The report of an intact patch, read off its record."""
    report = _base(install, store, record.release)
    for step in record.transforms:
        state = STATES[step.outcome]
        report["transforms"].append({"name": step.name, "file": step.file, "blog_step": step.blog_step,
                                     "state": state})
        if state == "not-needed":
            report["notes"].append(not_needed_note(step.name, install.release))
    report["files"] = [{"path": f.path, "state": "patched"} for f in record.files]
    report["modules"] = [{"file": m.rel, "classes": list(m.classes)} for m in record.modules]
    report["added"] = [{"path": a.path, "state": "present"} for a in record.added]
    report["exit_code"] = int(Exit.OK)
    return report


def from_files(install: Install, store: Store) -> dict:
    """The report found by planning every file again (the record is absent, stale or contradicted)."""
    from .actions import hand_edits, recorded_modules, transforms_for
    from .plan import Outcome, make_plan, plan_file  # libcst from here on

    manifest = store.manifest()
    hand = hand_edits(install, manifest)
    report = _base(install, store, manifest["release"] if manifest else None)
    if hand:
        report["hand_patched"] = hand
        report["problems"].append("edited by hand (following the blog): " + "; ".join(hand))
    stale = manifest is not None and manifest["release"] != install.release
    if stale:
        report["problems"].append(f"the patch was applied to Ultralytics {manifest['release']}, but the install is "
                                  f"now {install.release}: the patch is gone; run `rtdetr-patch apply` again")
    by_file: dict[str, list] = {}
    for transform in transforms_for(None if stale else manifest):
        by_file.setdefault(transform.FILE, []).append(transform)
    for rel, group in by_file.items():
        try:
            change = plan_file(install, rel, group)
        except PatchError as exc:
            for transform in group:
                report["transforms"].append({"name": transform.NAME, "file": rel, "blog_step": transform.BLOG_STEP,
                                             "state": "unrecognised"})
            report["problems"].append(exc.message)
            continue
        for step in change.steps:
            state = {Outcome.APPLIED: "applied", Outcome.PATCHED: "missing",
                     Outcome.NOT_NEEDED: "not-needed"}[step.outcome]
            report["transforms"].append({"name": step.transform.NAME, "file": rel,
                                         "blog_step": step.transform.BLOG_STEP, "state": state})
            if state == "not-needed":
                report["notes"].append(not_needed_note(step.transform.NAME, install.release))
    missing = [t["name"] for t in report["transforms"] if t["state"] == "missing"]
    if missing and not stale:
        report["problems"].append(f"not applied: {', '.join(missing)}")
    older = manifest.get("tool") if manifest and not stale else None
    if older != __version__ and older and any(t["state"] in ("missing", "unrecognised") for t in report["transforms"]):
        report["problems"].append(f"the patch was written by rtdetr-patch {older}; run `rtdetr-patch apply` to "
                                  f"replace it with this release's ({__version__})")
    if manifest and not stale:
        for entry in manifest["files"]:
            digest = digest_of(install.package / PurePosixPath(entry["path"]))
            state = ("patched" if digest == entry["patched_sha256"] else
                     "pristine" if digest == entry["original_sha256"] else "changed since apply")
            report["files"].append({"path": entry["path"], "state": state})
            if state != "patched":
                report["problems"].append(f"{entry['path']} is {state}")
    modules = [] if stale else recorded_modules(store, manifest)
    report["modules"] = [{"file": m.rel, "classes": list(m.classes)} for m in modules]
    recorded_added = {a["path"]: a["sha256"] for a in (manifest or {}).get("added", [])}
    for add in make_plan(install, (), tuple(modules)).additions:
        if add.present:
            state = "present"
        elif add.path.is_file():
            state = "changed since apply" if add.rel in recorded_added else "not ours"
        else:
            state = "missing"
        report["added"].append({"path": add.rel, "state": state})
        if state != "present":
            report["problems"].append(f"{add.rel} is {state}")
    if manifest is None and not missing and not report["problems"]:
        report["warnings"].append(f"patched, but no record in {store.dir}: revert is not possible")
    if hand:
        code = Exit.HAND_PATCHED
    elif stale or (manifest and any(f["state"] != "patched" for f in report["files"])):
        code = Exit.CHANGED
    elif report["problems"]:
        code = Exit.NOT_PATCHED
        if missing and len(missing) == len(report["transforms"]) - len(report["notes"]) and not manifest:
            report["problems"].append("this install is not patched: run `rtdetr-patch apply`")
    else:
        code = Exit.OK
    report["exit_code"] = int(code)
    return report


def verdict(report: dict, error_on_warn: bool) -> int:
    """The exit code of ``check --static``: the report's, and warnings count as problems when asked."""
    if report["exit_code"] == Exit.OK and error_on_warn and report["warnings"]:
        report["problems"].append("warnings are errors (--error-on-warn)")
        return int(Exit.NOT_PATCHED)
    return report["exit_code"]
