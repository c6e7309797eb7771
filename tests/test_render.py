"""What the command line prints for a result (``rtdetr_patch.render``), and the results' JSON: results built by
hand, printed on a console of fixed width without colour. No Ultralytics, no wheel: unit tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from rtdetr_patch.patcher.errors import Exit, PatchError
from rtdetr_patch.patcher.install.locate import Install
from rtdetr_patch.patcher.results import (
    AdoptEditRow,
    AdoptFileRow,
    AdoptNameRow,
    AdoptResult,
    AdoptSummary,
    AdoptYamlRow,
    ApplyAdditionRow,
    ApplyResult,
    ApplyTransformRow,
    CheckAddedRow,
    CheckFileRow,
    CheckModuleRow,
    CheckResult,
    CheckTransformRow,
    RevertResult,
)
from rtdetr_patch.patcher.states import AddedState, AdoptStatus, FileState, Outcome, TransformState

from rtdetr_patch import render

STORE = "/state/installs/abc"


def console(width: int = 120) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None, highlight=False)


def lines(out: Console) -> list[str]:
    """The printed lines, trailing blanks dropped."""
    return [line.rstrip() for line in out.file.getvalue().splitlines()]  # type: ignore[attr-defined]


def cells(out: Console) -> list[list[str]]:
    """The table rows printed, as their cells."""
    return [[c.strip() for c in line.strip("│┃ ").split("│")] for line in lines(out) if line.startswith("│")]


def applied(**kw) -> ApplyResult:
    return ApplyResult(
        transforms=[
            ApplyTransformRow("parse-model", "4.4", "nn/tasks.py", Outcome.PATCHED),
            ApplyTransformRow("get-flops", "4.8", "utils/torch_utils.py", Outcome.NOT_NEEDED),
        ],
        additions=[
            ApplyAdditionRow("nn/Addmodules/MobileNetV3.py", 12345, False),
            ApplyAdditionRow("nn/Addmodules/__init__.py", 99, True),
        ],
        store=STORE,
        **kw,
    )


# -- apply -------------------------------------------------------------------------------------------
def test_apply_written_without_verification():
    out = console()
    result = applied(
        written=["nn/tasks.py", "nn/modules/head.py"],
        added=["nn/Addmodules/MobileNetV3.py"],
        recovered="An interrupted apply was rolled back.",
        warnings=["restart the kernel"],
    )
    render.apply_text(out, result, no_verify=True, yaml="rtdetr-MobileNetV3.yaml")
    printed = lines(out)
    assert printed[0] == "An interrupted apply was rolled back."  # first, and once
    assert sum("rolled back" in line for line in printed) == 1
    assert cells(out) == [
        ["parse-model", "4.4", "nn/tasks.py", "patched"],
        ["get-flops", "4.8", "utils/torch_utils.py", "not-needed"],
    ]
    assert printed[-3:] == [
        f"Wrote 2 files, added 1 file; originals recorded in {STORE}",
        "warning: restart the kernel",
        "Verification skipped (--no-verify); run `rtdetr-patch check` before training.",
    ]


def test_apply_dry_run_shows_the_diff_the_additions_and_would_patch():
    out = console()
    diff = "--- a/ultralytics/nn/tasks.py\n+++ b/ultralytics/nn/tasks.py\n@@ -1 +1 @@\n-old\n+new\n"
    render.apply_text(out, applied(dry_run=True, diff=diff), no_verify=False, yaml="x.yaml")
    printed = lines(out)
    assert printed[:5] == diff.splitlines()
    assert "+ add ultralytics/nn/Addmodules/MobileNetV3.py (12,345 bytes)" in printed
    assert "+ add ultralytics/nn/Addmodules/__init__.py (99 bytes) (already there)" in printed
    assert cells(out)[0] == ["parse-model", "4.4", "nn/tasks.py", "would patch"]
    assert printed[-1] == "Dry run: nothing was written."
    assert not any(line.startswith("Wrote") for line in printed)


def test_apply_already_patched_and_an_upgrade():
    out = console()
    render.apply_text(out, applied(already=True, upgraded_from="0.9.0"), no_verify=False, yaml="x.yaml")
    printed = lines(out)
    assert printed[0].startswith(
        "The patch written by rtdetr-patch 0.9.0 was reverted and is replaced by this release's ("
    )
    assert printed[-1] == ("Already patched: every transform is applied and every file is in place; nothing changed.")
    assert cells(out) == []


def test_apply_modules_preflight_lines():
    out = console()
    rows = [
        {
            "name": "ThreeNet",
            "kind": "backbone",
            "channels": [24, 48, 96],
            "strides": [8.0, 16.0, 32.0],
            "params": 123456,
            "build_s": 0.25,
            "rule": "backbone",
            "inferred": True,
            "status": "ok",
        },
        {"name": "Gate", "kind": "module", "status": "refused", "note": "no forward"},
    ]
    render.modules(out, rows)
    assert lines(out)[1:] == [
        "  ThreeNet (backbone): rule backbone (from its signature), 3 maps, channels 24, 48, 96, strides 8/16/32, "
        "123,456 parameters, built in 0.25 s: ok",
        "  Gate (module): refused: no forward",
    ]


# -- check -------------------------------------------------------------------------------------------
def checked(**kw) -> CheckResult:
    return CheckResult(
        transforms=[CheckTransformRow("parse-model", "nn/tasks.py", "4.4", TransformState.MISSING)],
        files=[CheckFileRow("nn/modules/head.py", FileState.CHANGED)],
        added=[CheckAddedRow("nn/Addmodules/MobileNetV3.py", AddedState.PRESENT)],
        modules=[
            CheckModuleRow("three_net.py", ("ThreeNet",), {"ThreeNet": "backbone"}),
            CheckModuleRow("helpers.py", (), {}),
        ],
        **kw,
    )


def test_check_table_rows():
    out = console()
    render.check_text(out, checked(static=True))
    assert cells(out) == [
        ["parse-model", "4.4", "nn/tasks.py", "missing"],
        ["(patched file)", "", "nn/modules/head.py", "changed since apply"],
        ["(added)", "4.1-5.1", "nn/Addmodules/MobileNetV3.py", "present"],
        ["(--module)", "", "three_net.py", "ThreeNet (backbone)"],
        ["(--module)", "", "helpers.py", "no names: a file beside yours that they import"],
    ]
    assert lines(out)[-1] == "OK: the patch is whole (static check only)."


def test_check_failed_notes_problems_and_quiet():
    out, err = console(), console()
    result = checked(
        ok=False,
        exit_code=int(Exit.CHANGED),
        notes=["get-flops is not needed"],
        warnings=["outside the tested range"],
        problems=["nn/modules/head.py is changed since apply"],
        adopted={
            "source": "/fork",
            "source_release": "8.0.227",
            "names": [{"name": "EMA", "status": "carried"}, {"name": "W", "status": "not carried"}],
            "yamls": [{}],
            "edits": [{}, {}],
        },
    )
    render.check_text(out, result, err=err)
    assert lines(out)[-5:] == [
        "Adopted from /fork (Ultralytics 8.0.227): 1 module, 1 yaml; 2 edits left as they were.",
        "note: get-flops is not needed",
        "warning: outside the tested range",
        "problem: nn/modules/head.py is changed since apply",
        "FAILED (exit 7).",
    ]
    assert lines(err) == ["problem: nn/modules/head.py is changed since apply", "FAILED (exit 7)."]


# -- revert ------------------------------------------------------------------------------------------
def test_check_says_the_release_lies_in_the_tested_range_only_when_it_does():
    """Inside the range, one line says so; outside it, the warning says so instead (never both)."""
    install = {"release": "8.4.190", "package": "/site/ultralytics", "python": "py", "how": "x", "tested": True}
    inside = checked(ultralytics=install, tested_range=["8.0.136", "8.4.190"], release_tested=True)
    out = console()
    render.check_text(out, inside)
    assert "Ultralytics 8.4.190 lies in the tested range 8.0.136-8.4.190." in lines(out)
    outside = checked(
        ultralytics={**install, "release": "9.0.0"}, tested_range=["8.0.136", "8.4.190"], release_tested=False
    )
    out = console()
    render.check_text(out, outside)
    assert not any("lies in the tested range" in line for line in lines(out))


def test_revert_lines():
    result = RevertResult(
        restored=["nn/tasks.py"],
        removed=["nn/Addmodules/x.py"],
        kept=["/s/edited/nn/tasks.py"],
        left=["utils/loss.py"],
        left_as_edited=["utils/ops.py"],
        warnings=["restart"],
        stale_release="8.3.0",
        ultralytics={"release": "8.4.190"},
    )
    out = console(200)  # the stale-record line is not soft-wrapped: a terminal folds it
    render.revert_text(out, result)
    assert lines(out) == [
        "The patch was recorded for Ultralytics 8.3.0; the install is now 8.4.190. Its files were not touched; "
        "the stale record is dropped.",
        "restored ultralytics/nn/tasks.py",
        "removed  ultralytics/nn/Addmodules/x.py",
        "kept your edited copy at /s/edited/nn/tasks.py",
        "left untouched (changed by someone else): ultralytics/utils/loss.py",
        "left as you edited it (adopt never managed it): ultralytics/utils/ops.py",
        "warning: restart",
        "Reverted.",
    ]


@pytest.mark.parametrize(
    ("result", "said"),
    [
        (RevertResult(nothing=True), ["Nothing to revert: this install is not patched."]),
        (
            RevertResult(recovered="A killed revert was finished.", restored=["nn/tasks.py"]),
            ["A killed revert was finished."],
        ),
    ],
)
def test_revert_nothing_or_recovered(result, said):
    out = console()
    render.revert_text(out, result)
    assert lines(out) == said


# -- adopt -------------------------------------------------------------------------------------------
def adopted(**kw) -> AdoptResult:
    return AdoptResult(
        source="/fork/ultralytics",
        source_release="8.0.227",
        store=STORE,
        names=[
            AdoptNameRow("EMA", AdoptStatus.CARRIED, "same", "nn/Addmodules/attention.py", "runs as 'same'"),
            AdoptNameRow("Weird", AdoptStatus.NOT_CARRIED, why="no rule", code="c2 = ch[f] * 3"),
        ],
        files=[
            AdoptFileRow(
                "nn/Addmodules/needs_pkg.py", "needs_pkg", ("Absent",), AdoptStatus.NOT_CARRIED, "import fails"
            )
        ],
        yamls=[AdoptYamlRow("cfg/models/rt-detr/mine.yaml", ("EMA",), True, "", {"params": 100}, {"params": 90})],
        edits=[AdoptEditRow("models/utils/loss.py", "not carried")],
        summary=AdoptSummary(names=2, carried=1, yamls=1, build_in_source=1, build_on_target=1, same_params=0),
        **kw,
    )


def test_adopt_plan_then_written():
    out = console()
    render.adopt_text(out, adopted(written=["nn/tasks.py"], kept=f"{STORE}/adopted"), no_verify=True)
    printed = lines(out)
    assert printed[0] == "Adopting Ultralytics 8.0.227 from /fork/ultralytics"
    assert ["EMA", "carried", "same", "nn/Addmodules/attention.py", "runs as 'same'"] in cells(out)
    assert ["cfg/models/rt-detr/mine.yaml", "100", "90", "builds, -10 parameters"] in cells(out)
    for line in (
        "Weird: the branch no rule expresses:",
        "c2 = ch[f] * 3",
        "not carried nn/Addmodules/needs_pkg.py: import fails",
        "not carried models/utils/loss.py: not carried",
        "1 of 2 names carried; of 1 yamls, 1 build in the tree and 1 of those on the target (100%), 0 with "
        "the same parameters.",
        f"Wrote 1 file, added 0 files; originals recorded in {STORE}",
        f"Every hand-edited or added file of the tree is kept in {STORE}/adopted",
        "Verification skipped; run `rtdetr-patch check` before training.",
    ):
        assert line in printed, line


def test_adopt_dry_run_and_already():
    out = console()
    render.adopt_text(out, adopted(dry_run=True, in_place=True), no_verify=False)
    assert lines(out)[0] == "Adopting Ultralytics 8.0.227 in place"
    assert lines(out)[-1] == "Dry run: nothing was written."
    out = console()
    render.adopt_text(out, adopted(already=True), no_verify=False)
    assert lines(out)[-1] == "Already adopted: nothing new to carry; nothing changed."


@pytest.mark.parametrize(
    ("row", "state"),
    [
        (AdoptYamlRow("a.yaml", (), False, "taken", {}, {}), "not carried: taken"),
        (AdoptYamlRow("a.yaml", (), True, "", {"params": 5}, {"params": 5}), "same parameters"),
        (
            AdoptYamlRow("a.yaml", (), True, "ours", {"error": "x"}, {"params": 5}),
            "builds here, not in the tree: x (ours)",
        ),
        (AdoptYamlRow("a.yaml", (), True, "", {"params": 5}, {"error": "y"}), "fails on the target: y"),
        (AdoptYamlRow("a.yaml", (), True, "", {"error": "z"}, {"error": "y"}), "fails in the tree too: z"),
    ],
)
def test_a_yamls_state(row, state):
    out = console()
    out.print(render.yaml_state(row))
    assert lines(out) == [state]


# -- shared lines --------------------------------------------------------------------------------------
def test_install_error_and_interrupted_lines():
    out = console()
    render.install_line(out, Install(Path("/site/ultralytics"), "8.0.100", "/usr/bin/python3", "--target /site"))
    assert lines(out) == ["Ultralytics 8.0.100  (outside the tested range) at /site/ultralytics  (--target /site)"]
    err = console()
    render.error(err, PatchError(Exit.USAGE, "no such [file]", "give a path"))
    render.interrupted(err, "Interrupted.")
    assert lines(err) == ["error: no such [file]", "what to do: give a path", "Interrupted."]


def test_figures_table():
    fig = {
        "yaml": "rtdetr-MobileNetV3.yaml",
        "seconds": 12.5,
        "torch": "2.5.0",
        "backbone_shapes": [],
        "output_shape": [1, 300, 84],
        "loss": 12.3,
        "backbone_grad_tensors": 40,
        "stepped_tensors": 40,
        "params": 12_345_678,
        "imgsz": 640,
        "gflops": None,
        "rtdetr_l_params": 32_000_000,
    }
    out = console()
    out.print(render.figures_table(fig))
    assert ["eval forward output", "1x300x84"] in cells(out)
    assert ["train-mode loss, backward", "12.3, finite gradients in 40 model tensors"] in cells(out)
    assert ["GFLOPs at 640", "not reported for this model (its get_flops gives 0)"] in cells(out)
    assert ["parameters", "12.35 M (12,345,678)"] in cells(out)
    assert ["one optimizer step", "moved 40 weight tensors, all finite"] in cells(out)
    assert ["stock rtdetr-l.yaml", "32.00 M parameters, as shipped"] in cells(out)
    out = console()
    out.print(render.figures_table({**fig, "stock_checked": {"at": "2026-12-04T20:15:28+00:00"}}))
    stock = next(row for row in cells(out) if row[0] == "stock rtdetr-l.yaml")[1]
    assert stock.startswith("32.00 M parameters, as shipped (built 2026-12-04T20:15:28+00:00; package")


# -- JSON --------------------------------------------------------------------------------------------
def test_apply_json_rows():
    data = json.loads(render.json_text(applied(written=["nn/tasks.py"])))
    assert list(data)[:12] == [
        "schema",
        "command",
        "tool",
        "ok",
        "exit_code",
        "error",
        "ultralytics",
        "warnings",
        "notes",
        "problems",
        "restart_needed",
        "transforms",
    ]
    assert data["transforms"][0] == {
        "name": "parse-model",
        "blog_step": "4.4",
        "file": "nn/tasks.py",
        "state": "patched",
    }
    assert list(data["transforms"][0]) == ["name", "blog_step", "file", "state"]
    assert data["additions"][0] == {"path": "nn/Addmodules/MobileNetV3.py", "bytes": 12345, "present": False}
    assert "plan" not in data


def test_check_json_rows():
    data = checked().to_dict()
    assert data["transforms"] == [
        {"name": "parse-model", "file": "nn/tasks.py", "blog_step": "4.4", "state": "missing"}
    ]
    assert list(data["transforms"][0]) == ["name", "file", "blog_step", "state"]  # check's own order
    assert data["files"] == [{"path": "nn/modules/head.py", "state": "changed since apply"}]
    assert data["added"] == [{"path": "nn/Addmodules/MobileNetV3.py", "state": "present"}]
    assert data["modules"][0] == {"file": "three_net.py", "classes": ["ThreeNet"], "rules": {"ThreeNet": "backbone"}}
    assert type(data["files"][0]["state"]) is str  # the word itself, not the enum


def test_adopt_json_rows():
    data = adopted().to_dict()
    assert data["names"] == [
        {
            "name": "EMA",
            "status": "carried",
            "rule": "same",
            "file": "nn/Addmodules/attention.py",
            "why": "runs as 'same'",
        },
        {"name": "Weird", "status": "not carried", "why": "no rule", "code": "c2 = ch[f] * 3"},
    ]
    assert data["files"] == [
        {
            "path": "nn/Addmodules/needs_pkg.py",
            "stem": "needs_pkg",
            "names": ["Absent"],
            "status": "not carried",
            "why": "import fails",
        }
    ]
    assert list(data["yamls"][0]) == ["path", "uses", "carried", "why", "source", "target"]
    assert data["edits"] == [{"path": "models/utils/loss.py", "why": "not carried"}]
    assert AdoptEditRow("a.py", "why", ("X",)).to_dict() == {"path": "a.py", "why": "why", "defines": ["X"]}
    for row in data["names"]:  # as an adopt's record keeps them, read back by an adopt that finds nothing new
        assert AdoptNameRow.from_dict(row).to_dict() == row
    assert AdoptEditRow.from_dict({"path": "a.py", "why": "w", "defines": ["X"]}).defines == ("X",)
    assert list(data["summary"]) == ["names", "carried", "yamls", "build_in_source", "build_on_target", "same_params"]
    assert AdoptResult().to_dict()["summary"] == {}


def test_rows_are_frozen_and_read_as_their_json():
    row = ApplyTransformRow("parse-model", "4.4", "nn/tasks.py", Outcome.PATCHED)
    assert row["state"] == "patched" and row.get("missing") is None
    with pytest.raises(AttributeError):
        row.state = Outcome.APPLIED  # type: ignore[misc]
    with pytest.raises(KeyError):
        row["absent"]


def test_one_state_vocabulary():
    assert Outcome.after_apply("patched") is Outcome.APPLIED and Outcome.after_apply("not-needed") is Outcome.NOT_NEEDED
    assert TransformState.recorded("patched") is TransformState.APPLIED
    assert TransformState.planned(Outcome.PATCHED) is TransformState.MISSING
    assert TransformState.planned(Outcome.APPLIED) is TransformState.APPLIED
    assert str(FileState.CHANGED) == f"{FileState.CHANGED}" == "changed since apply"
    assert AddedState.NOT_OURS == "not ours"
    with pytest.raises(ValueError):
        TransformState.recorded("half-done")


def test_cli_keeps_its_names():
    from rtdetr_patch import cli
    from rtdetr_patch import console as consoles

    assert cli.figures_table is render.figures_table and callable(cli.main)
    cli.setup(True, False)
    assert cli.out is consoles.out and cli.out.quiet
