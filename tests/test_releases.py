"""Every transform and the whole CLI cycle against the real files of each supported release.

In memory: each transform over its real file (outcomes, the result compiles, a second run changes
nothing, only the targeted lines change, the marker comments and patched layer loops counted).
On a copy: apply -> apply again -> check -> revert -> revert again, and apply --dry-run. The smoke
verification (torch) is left out: ``apply`` always runs with ``--no-verify``, ``check`` with ``--static``.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field

import libcst as cst
import pytest
from conftest import RELEASES, snapshot
from rtdetr_patch.patcher.errors import Exit
from rtdetr_patch.patcher.install.locate import release_key
from rtdetr_patch.patches import MARK, Outcome
from rtdetr_patch.patches.layer_loops import REQUIRED, LayerLoops

from rtdetr_patch import patches

FILES = (
    "nn/tasks.py",
    "utils/torch_utils.py",
    "nn/modules/block.py",
    "nn/modules/head.py",
    "models/yolo/detect/train.py",
    "utils/loss.py",
    "models/utils/loss.py",
)
ADDED = ("nn/Addmodules/__init__.py", "nn/Addmodules/MobileNetV3.py", "cfg/models/rt-detr/rtdetr-MobileNetV3.yaml")

# `for m in self.model` loops with `y.append(x if m.i in self.save else None)`, per release:
# BaseModel._predict_once and RTDETRDetectionModel.predict everywhere, WorldModel.predict from 8.2,
# YOLOEModel.predict from 8.3.100.
LOOPS = {
    "8.0.136": 2,
    "8.0.227": 2,
    "8.1.0": 2,
    "8.2.0": 3,
    "8.3.0": 3,
    "8.3.100": 4,
    "8.3.253": 4,
    "8.4.0": 4,
    "8.4.190": 4,
}
LOOP_METHODS = {
    2: set(REQUIRED),
    3: set(REQUIRED) | {("WorldModel", "predict")},
    4: set(REQUIRED) | {("WorldModel", "predict"), ("YOLOEModel", "predict")},
}


# `return ...` lines of init_criterion methods (iou-loss-choice wraps each), per release: Detection, Segmentation,
# Pose, Classification, RT-DETR everywhere; OBB from 8.1; 8.4.190 adds SemanticSegmentation and Depth.
CRITERIA = {
    "8.0.136": 5,
    "8.0.227": 5,
    "8.1.0": 6,
    "8.2.0": 6,
    "8.3.0": 6,
    "8.3.100": 6,
    "8.3.253": 6,
    "8.4.0": 6,
    "8.4.190": 8,
}
INIT_CRITERION_RETURN = r"return (?!rtdetr_patch_criterion)\w+\(.*\)(?: if .* else .*\))?"


def expected_outcome(name: str, release: str) -> Outcome:
    key = release_key(release)
    if name == "get-flops":
        return Outcome.PATCHED if key < release_key("8.1.0") else Outcome.NOT_NEEDED
    if name == "repc3-expansion":
        return Outcome.PATCHED if key < release_key("8.3.100") else Outcome.NOT_NEEDED
    if name == "decoder-anchors":  # RTDETRDecoder caches its anchors from 8.3.206 on
        return Outcome.PATCHED if key >= release_key("8.3.210") else Outcome.NOT_NEEDED
    if name == "legacy-head-preds":  # Detect's dict contract starts at 8.4.0
        return Outcome.PATCHED if key >= release_key("8.4.0") else Outcome.NOT_NEEDED
    if name in ("safe-load", "restricted-layers"):  # restricted loading (_SafeLoad) appears after 8.4.0
        return Outcome.PATCHED if key > release_key("8.4.0") else Outcome.NOT_NEEDED
    return Outcome.PATCHED


def expected_marks(rel: str, release: str) -> int:
    """Lines holding the `rtdetr-patch` marker comment in the patched file."""
    if rel == "nn/tasks.py":
        # the import, parse_model's five (shift init, flag, branch, guard, ch update), the modules' branch, one per layer
        # loop, and the _SafeLoad allow-list line where the release has restricted loading (the stride
        # probe's new call names rtdetr_patch_probe_size and keeps the release's own comment)
        restricted = expected_outcome("safe-load", release) is Outcome.PATCHED
        return (
            1 + 5 + 1 + 1 + LOOPS[release] + 2 * restricted + 1 + 1
        )  # ... the iou_loss check in parse_model ... fuse-deploy, and parse_model's return (iou-loss-state)
    if rel == "utils/torch_utils.py":
        return 1 if expected_outcome("get-flops", release) is Outcome.PATCHED else 0
    if rel == "nn/modules/block.py":
        return 2 if expected_outcome("repc3-expansion", release) is Outcome.PATCHED else 0
    if rel == "nn/modules/head.py":
        return 1 if expected_outcome("decoder-anchors", release) is Outcome.PATCHED else 0
    if rel in ("utils/loss.py", "models/utils/loss.py"):
        return 1  # the box term's bbox_iou call, routed through the yaml's iou_loss
    return 0  # val-rect changes one argument and adds no comment


# Lines a transform may remove for good (not just re-indent), with how many times per file.
def removable(rel: str, release: str) -> dict[str, int]:
    if rel == "nn/tasks.py":
        restricted = 1 if expected_outcome("restricted-layers", release) is Outcome.PATCHED else 0
        dict_preds = 1 if expected_outcome("legacy-head-preds", release) is Outcome.PATCHED else 0
        multiline = 1 if release_key(release) >= release_key("8.3.100") else 0  # _apply's `isinstance(\n m, Detect\n):`
        return {
            r"s = 256  # 2x min stride": 1,
            # registered-heads: the head checks of _apply, DetectionModel.__init__ and guess_model_task
            r"(el)?if isinstance\(m, (Detect|\(Detect, [\w, ]+\))\):( +# includes all Detect subclasses.*)?": 3
            - multiline,
            r"\):  # includes all Detect subclasses.*": multiline,
            r"return self\.criterion\(preds, batch\)": dict_preds,  # legacy-head-preds
            INIT_CRITERION_RETURN: CRITERIA[release],  # iou-loss-choice: each init_criterion's return
            r"return (torch\.)?nn\.Sequential\(\*layers\), sorted\(save\)": 1,  # iou-loss-state
            r"output = self\.forward\(x\)": dict_preds,
            r"m_\.i, m_\.f, m_\.type = i, f, t\b.*": 1,
            r"save\.extend\(x % i for x in .*": 1,
            r"if restricted and not \(isinstance\(m, type\) and issubclass\(m, torch\.nn\.Module\)\):": restricted,
        }
    if rel == "nn/modules/block.py":
        n = 1 if expected_outcome("repc3-expansion", release) is Outcome.PATCHED else 0
        return {r"self\.cv1 = Conv\(c1, c2, 1, 1\)": n, r"self\.cv2 = Conv\(c1, c2, 1, 1\)": n}
    if rel == "nn/modules/head.py":
        n = 1 if expected_outcome("decoder-anchors", release) is Outcome.PATCHED else 0
        return {r"if self\.dynamic or self\.shapes != shapes:": n}
    if rel == "utils/loss.py":
        return {r"iou = bbox_iou\(pred_bboxes\[fg_mask\], target_bboxes\[fg_mask\], xywh=False, CIoU=True\)": 1}
    if rel == "models/utils/loss.py":
        return {r"loss\[name_giou\] = 1\.0 - bbox_iou\(pred_bboxes, gt_bboxes, xywh=True, GIoU=True\)": 1}
    if rel == "utils/torch_utils.py":
        return {r"return 0": 0}  # re-indented into the fallback, never dropped
    return {r"return build_yolo_dataset\(.*rect=mode == (\"val\"|'val').*": 1}


@dataclass
class FileRun:
    rel: str
    before: str
    after: str = ""
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    again: dict[str, Outcome] = field(default_factory=dict)
    again_same: dict[str, bool] = field(default_factory=dict)  # second run of each transform kept the code
    loops_patched: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture(scope="session")
def runs(release_trees):
    """release -> {file: FileRun}: every transform of ``patches.ALL`` run twice, memoised."""
    cache: dict[str, dict[str, FileRun]] = {}

    def get(release: str) -> dict[str, FileRun]:
        if release in cache:
            return cache[release]
        package = release_trees(release) / "ultralytics"
        out = {}
        for rel in FILES:
            run = FileRun(rel, (package / rel).read_text(encoding="utf-8"))
            module = cst.parse_module(run.before)
            for transform in (t for t in patches.ALL if rel == t.FILE):
                instance = transform()
                module, run.outcomes[transform.NAME] = instance.run(module)
                if isinstance(instance, LayerLoops):
                    run.loops_patched = list(instance.patched)
            run.after = module.code
            module = cst.parse_module(run.after)  # the second run starts from the written text, as apply does
            for transform in (t for t in patches.ALL if rel == t.FILE):
                module, run.again[transform.NAME] = transform().run(module)
                run.again_same[transform.NAME] = module.code == run.after
            out[rel] = run
        cache[release] = out
        return out

    return get


def test_every_transform_has_a_file_here():
    assert sorted({t.FILE for t in patches.ALL}) == sorted(FILES)


@pytest.mark.parametrize("release", RELEASES)
def test_outcomes(runs, release):
    got = {name: outcome for run in runs(release).values() for name, outcome in run.outcomes.items()}
    assert got == {t.NAME: expected_outcome(t.NAME, release) for t in patches.ALL}


@pytest.mark.parametrize("release", RELEASES)
def test_patched_files_compile(runs, release):
    for rel, run in runs(release).items():
        compile(run.after, f"{release}/{rel}", "exec")
        changed = any(o is Outcome.PATCHED for o in run.outcomes.values())
        assert (run.after != run.before) == changed, rel


@pytest.mark.parametrize("release", RELEASES)
def test_second_run_changes_nothing(runs, release):
    for rel, run in runs(release).items():
        for name, first in run.outcomes.items():
            want = Outcome.NOT_NEEDED if first is Outcome.NOT_NEEDED else Outcome.APPLIED
            assert run.again[name] is want, (rel, name)
            assert run.again_same[name], (rel, name)


@pytest.mark.parametrize("release", RELEASES)
def test_only_targeted_lines_change(runs, release):
    for rel, run in runs(release).items():
        diff = list(difflib.unified_diff(run.before.splitlines(), run.after.splitlines(), lineterm="", n=0))
        removed = [line[1:].strip() for line in diff if line.startswith("-") and not line.startswith("---")]
        added = {line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")}
        allowed = removable(rel, release)
        hits = {pattern: 0 for pattern in allowed}
        for line in removed:
            if line in added:
                continue  # kept, only re-indented under a new `if`/`try`
            pattern = next((p for p in allowed if re.fullmatch(p, line)), None)
            assert pattern is not None, f"{release} {rel}: unexpected line removed: {line!r}"
            hits[pattern] += 1
        assert hits == allowed, (release, rel)


@pytest.mark.parametrize("release", RELEASES)
def test_replacements_are_the_intended_ones(runs, release):
    files = runs(release)
    tasks = files["nn/tasks.py"].after
    assert re.search(r"^ +s = rtdetr_patch_probe_size\(self\.model, 256\)  # 2x min stride$", tasks, re.M)
    assert re.search(r"^ +backbone_built = m in RTDETR_PATCH_BACKBONES  # rtdetr-patch", tasks, re.M)
    assert "isinstance(c2, list)" not in tasks  # every edit keys on the flag, never on the type of c2
    assert "m_.i, m_.f, m_.type = i + backbone_shift, f, t" in tasks
    assert "save.extend(x % (i + backbone_shift) for x in" in tasks
    assert tasks.count("from ultralytics.nn.Addmodules import *") == 1
    heads = re.findall(
        r"^ +(?:el)?if isinstance\(\s*m, (?:Detect|\(Detect[^)]*\))\s*\) or rtdetr_patch_is_head\(m\):", tasks, re.M
    )
    assert len(heads) == 3 and tasks.count("rtdetr_patch_is_head(m)") == 4  # ... and cfg2task's last branch
    assert re.search(r"^ +if rtdetr_patch_is_head\(m\):\n +return \"detect\"$", tasks, re.M)
    dict_preds = expected_outcome("legacy-head-preds", release) is Outcome.PATCHED
    assert ("return self.criterion(rtdetr_patch_preds(self.model[-1], preds), batch)" in tasks) == dict_preds
    assert ("output = rtdetr_patch_preds(self.model[-1], self.forward(x))" in tasks) == dict_preds
    assert tasks.count("return rtdetr_patch_criterion(self, ") == CRITERIA[release]
    assert re.search(r"^    rtdetr_patch_iou_loss\(d\)  # rtdetr-patch", tasks, re.M)
    for rel, flag in (("utils/loss.py", "CIoU"), ("models/utils/loss.py", "GIoU")):
        after = files[rel].after
        assert (
            after.count(f'{flag}=True) if getattr(self, "rtdetr_patch_iou", None) is None else self.rtdetr_patch_iou(')
            == 1
        )
        assert after.count("release=bbox_iou") == 1
    train = files["models/yolo/detect/train.py"].after
    assert "rect=False" in train and "rect=mode ==" not in train
    repc3 = re.search(r"^class RepC3\b.*?(?=^class )", files["nn/modules/block.py"].after, re.M | re.S).group(0)
    assert "self.cv1 = Conv(c1, c_, 1, 1)" in repc3 and "self.cv2 = Conv(c1, c_, 1, 1)" in repc3
    assert "Conv(c1, c2, 1, 1)" not in repc3


@pytest.mark.parametrize("release", RELEASES)
def test_marker_comments(runs, release):
    for rel, run in runs(release).items():
        assert MARK not in run.before, rel
        marked = [line for line in run.after.splitlines() if MARK in line]
        assert len(marked) == expected_marks(rel, release), (rel, marked)
        assert all("#" in line and line.index("#") < line.index(MARK) for line in marked), "always in a comment"


@pytest.mark.parametrize("release", RELEASES)
def test_layer_loops(runs, release):
    run = runs(release)["nn/tasks.py"]
    n = LOOPS[release]
    assert run.before.count("y.append(x if m.i in self.save else None)") == n
    assert run.after.count('if getattr(m, "backbone", False):') == n
    assert run.after.count("x = rtdetr_patch_outputs(x, y, self.save)") == n
    assert len(run.loops_patched) == n
    assert set(run.loops_patched) == LOOP_METHODS[n]


# -- through the CLI, on a copy --------------------------------------------------------------
@pytest.mark.parametrize("release", RELEASES)
def test_cli_apply_check_revert(tree, cli, state_home, memo_plans, release):
    root = tree(release)
    package = root / "ultralytics"
    pristine = snapshot(root)

    first = cli("apply", "--target", root, "--no-verify")
    assert first.exit_code == Exit.OK, first.output
    assert release in first.output
    patched = snapshot(root)
    for rel in ADDED:
        assert (package / rel).is_file(), rel
        assert f"ultralytics/{rel}" in patched
    changed = {p for p in pristine if patched[p] != pristine[p]}
    want = {"ultralytics/nn/tasks.py", "ultralytics/utils/loss.py", "ultralytics/models/utils/loss.py"}
    if expected_outcome("get-flops", release) is Outcome.PATCHED:
        want.add("ultralytics/utils/torch_utils.py")
    if expected_outcome("repc3-expansion", release) is Outcome.PATCHED:
        want.add("ultralytics/nn/modules/block.py")
    if expected_outcome("decoder-anchors", release) is Outcome.PATCHED:
        want.add("ultralytics/nn/modules/head.py")
    assert changed == want  # val-rect is opt-in: train.py untouched
    new = set(patched) - set(pristine)
    assert new >= {f"ultralytics/{rel}" for rel in ADDED}
    assert all(
        re.fullmatch(
            r"ultralytics/(nn/Addmodules/\w+\.py|cfg/models/rt-detr/rtdetr-(MobileNetV3[\w-]*|resnet\d+(-series)?)\.yaml"
            r"|cfg/models/(v8|11|12|26)/yolo(v8|11|12|26)-MobileNetV3\.yaml)",
            p,
        )
        for p in new
    ), new
    assert "ultralytics/cfg/models/v8/yolov8-MobileNetV3.yaml" in new  # every release ships YOLOv8

    again = cli("apply", "--target", root, "--no-verify")
    assert again.exit_code == Exit.OK, again.output
    assert "Already patched" in again.output
    assert snapshot(root) == patched

    check = cli("check", "--target", root, "--static")
    assert check.exit_code == Exit.OK, check.output
    assert "OK" in check.output

    as_json = cli("check", "--target", root, "--static", "--json")
    assert as_json.exit_code == Exit.OK, as_json.output
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and report["exit_code"] == 0
    assert report["ultralytics"]["release"] == release and report["recorded"] is True
    states = {t["name"]: t["state"] for t in report["transforms"]}
    assert states == {
        t.NAME: ("not-needed" if expected_outcome(t.NAME, release) is Outcome.NOT_NEEDED else "applied")
        for t in patches.selected()
    }
    assert {a["state"] for a in report["added"]} == {"present"}
    assert snapshot(root) == patched

    back = cli("revert", "--target", root)
    assert back.exit_code == Exit.OK, back.output
    assert "Reverted" in back.output
    assert snapshot(root) == pristine
    assert not (package / "nn" / "Addmodules").exists()
    assert not list(state_home.rglob("manifest.json"))

    twice = cli("revert", "--target", root)
    assert twice.exit_code == Exit.OK, twice.output
    assert "Nothing to revert" in twice.output
    assert snapshot(root) == pristine


@pytest.mark.parametrize("release", RELEASES)
def test_cli_dry_run_writes_nothing(tree, cli, state_home, memo_plans, release):
    root = tree(release)
    before = snapshot(root)
    result = cli("apply", "--target", root, "--dry-run", "--no-verify")
    assert result.exit_code == Exit.OK, result.output
    assert "+++ b/ultralytics/nn/tasks.py" in result.output
    assert "--- a/ultralytics/nn/tasks.py" in result.output
    assert "+from ultralytics.nn.Addmodules import *" in result.output
    assert "Dry run" in result.output
    assert snapshot(root) == before
    assert not (root / "ultralytics" / "nn" / "Addmodules").exists()
    assert not list(state_home.rglob("manifest.json"))
