"""End to end on a patched real install: train RT-DETR-MobileNetV3, validate, reload, predict, export to ONNX.

For the latest release and an 8.0.x release: copy the real wheel's ``ultralytics/``, ``apply --no-verify``,
generate a tiny detection dataset (drawn rectangles and ellipses, YOLO labels, a data yaml), then, each in a
subprocess of this interpreter with the patched tree first on ``sys.path`` (tests/e2e_worker.py):

1. train through Ultralytics' own ``RTDETR(...).train()`` on CPU (its validator runs after each epoch);
2. in a fresh process, reload ``best.pt``, ``predict`` on an image, ``val``, export to ONNX and compare
   onnxruntime's output with torch's on the same input;
3. on releases with restricted loading (``_SafeLoad``, 8.4.x), reload and predict with ``ULTRALYTICS_SAFE_LOAD=1``.

Everything runs offline: ``YOLO_OFFLINE=1``, ``HOME`` and ``YOLO_CONFIG_DIR`` in a tmp folder, and a local font
placed where Ultralytics looks for ``Arial.ttf`` (``check_det_dataset`` would otherwise download it).
Phase wall times and the ONNX-vs-torch difference are printed with the prefix ``[e2e]``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import LATEST, OLD
from helpers import IMGSZ, NAMES, assert_offline, make_dataset, offline_env, run_phase

from rtdetr_patch.cli import main as cli_main

pytestmark = pytest.mark.slow  # real torch builds or killed runs: minutes (`make test-fast` leaves them out)

EPOCHS = 2
BATCH = 4
OPSET = 17  # RT-DETR's decoder needs grid_sample (opset 16+)
ONNX_TOLERANCE = 1e-3  # outputs are normalized boxes and sigmoid scores, all in [0, 1]


def say(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"[e2e] {text}", flush=True)


@pytest.fixture(scope="module")
def trained(release_trees, tmp_path_factory):
    """release -> a patched tree with a trained run: {root, work, data, image, train, wall}; trained once per module."""
    runs: dict[str, dict] = {}

    def get(release: str) -> dict:
        if release in runs:
            return runs[release]
        work = tmp_path_factory.mktemp(f"e2e-{release}")
        root = work / "site"
        shutil.copytree(release_trees(release), root)
        t0 = time.perf_counter()
        applied = CliRunner().invoke(
            cli_main,
            ["apply", "--target", str(root), "--no-verify"],
            env={"RTDETR_PATCH_HOME": str(work / "state")},
            catch_exceptions=False,
        )
        t_apply = time.perf_counter() - t0
        assert applied.exit_code == 0, applied.output
        data = make_dataset(work / "data")
        run = work / "run"
        run.mkdir()
        spec = {
            "root": str(root),
            "yaml": "rtdetr-MobileNetV3.yaml",
            "data": str(data),
            "epochs": EPOCHS,
            "imgsz": IMGSZ,
            "batch": BATCH,
            "project": str(work / "runs"),
        }
        result, wall, log = run_phase("train", spec, offline_env(work, release), run)
        assert result["ok"], f"training failed on {release}:\n{result.get('traceback')}\n{log}"
        runs[release] = {
            "root": root,
            "work": work,
            "data": data,
            "run": run,
            "train": result,
            "wall": wall,
            "apply": t_apply,
            "image": str(data.parent / "images" / "val" / "val0.png"),
        }
        return runs[release]

    return get


@pytest.mark.parametrize("release", [LATEST, OLD])
def test_train_reload_predict_export(release, trained, capsys):
    t = trained(release)
    tr = t["train"]
    assert tr["release"] == release
    say(
        capsys,
        f"{release} apply --no-verify: {t['apply']:.1f}s; train ({EPOCHS} epochs, imgsz {IMGSZ}, "
        f"8+4 images) subprocess wall {t['wall']:.1f}s (train() {tr['seconds']['train']:.1f}s)",
    )

    # Training: weights and results written, Ultralytics' validator ran, losses finite (mAP is ~0: not asserted).
    assert tr["best_exists"] and tr["last_exists"], tr
    assert tr["results_csv_rows"] == EPOCHS, tr
    assert tr["epochs_done"] == EPOCHS, tr
    assert tr["validator_ran"] and tr["val_images_seen"] == 4, tr
    assert tr["losses_finite"] and any(k.startswith("train/") for k in tr["losses"]), tr["losses"]
    assert any(k.startswith("metrics/mAP50") for k in tr["metrics"]), tr["metrics"]
    say(capsys, f"{release} losses after epoch {EPOCHS}: {tr['losses']}")
    say(capsys, f"{release} train: network attempts refused: {tr['network_attempts'] or 'none'}")
    assert_offline(tr["network_attempts"], f"{release} training")

    # Fresh process: reload best.pt, predict, val, export to ONNX, onnxruntime vs torch.
    spec = {
        "root": str(t["root"]),
        "best": tr["best"],
        "image": t["image"],
        "data": str(t["data"]),
        "imgsz": IMGSZ,
        "batch": BATCH,
        "opset": OPSET,
        "project": str(t["work"] / "runs"),
    }
    out, wall, log = run_phase("reload", spec, offline_env(t["work"], release), t["run"])
    assert out["ok"], f"reload/predict/export failed on {release}:\n{out.get('traceback')}\n{log}"
    s = out["seconds"]
    say(
        capsys,
        f"{release} reload subprocess wall {wall:.1f}s: reload+predict {s['reload_predict']:.1f}s, "
        f"val {s['val']:.1f}s, export {s['export']:.1f}s, onnxruntime+compare {s['onnx_compare']:.1f}s",
    )

    say(capsys, f"{release} reload: network attempts refused: {out['network_attempts'] or 'none'}")
    assert_offline(out["network_attempts"], f"{release} reload/predict/val/export")

    pred = out["predict"]
    assert pred["model_class"] == "RTDETRDetectionModel", pred
    assert pred["backbone"] == ["MobileNetV3"], pred
    assert pred["results"] == 1 and pred["orig_shape"] == [IMGSZ, IMGSZ] and pred["conf_finite"], pred
    assert pred["boxes"] > 0, pred  # conf=0: the decoder's top queries come back as boxes
    assert out["val"]["finite"] and any(k.startswith("metrics/mAP50") for k in out["val"]["results_dict"]), out["val"]

    cmp = out["compare"]
    assert Path(out["onnx"]).is_file()
    assert cmp["onnx_shape"] == cmp["torch_shape"] == [1, 300, 4 + len(NAMES)], cmp
    say(
        capsys,
        f"{release} ONNX (opset {OPSET}, onnxruntime {cmp['onnxruntime']}) vs torch on a val image: "
        f"max abs diff {cmp['max_abs_diff']:.3g} with queries matched, {cmp['max_abs_diff_in_order']:.3g} "
        f"in output order ({cmp['rows_out_of_order']} of 300 queries swapped by near-tied top-k scores); "
        f"outputs up to {cmp['max_abs_ref']:.3g}",
    )
    assert cmp["max_abs_diff"] < ONNX_TOLERANCE, cmp


def has_safe_load(root: Path) -> bool:
    """Whether a release has opt-in restricted checkpoint loading (``ULTRALYTICS_SAFE_LOAD``, 8.4.x)."""
    return "class _SafeLoad" in (root / "ultralytics" / "nn" / "tasks.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("release", [LATEST])  # restricted loading (_SafeLoad) exists on 8.4.x releases only
def test_reload_with_safe_load(release, trained, release_trees, capsys):
    """``ULTRALYTICS_SAFE_LOAD=1`` (weights_only loading, allow-listed classes): best.pt reloads and predicts."""
    assert has_safe_load(release_trees(release))
    t = trained(release)
    spec = {"root": str(t["root"]), "best": t["train"]["best"], "image": t["image"], "imgsz": IMGSZ}
    out, wall, log = run_phase("safe", spec, offline_env(t["work"], release, ULTRALYTICS_SAFE_LOAD="1"), t["run"])
    say(
        capsys,
        f"{release} ULTRALYTICS_SAFE_LOAD=1 reload subprocess wall {wall:.1f}s: "
        f"{'ok' if out['ok'] else out['error'].splitlines()[0]}",
    )
    assert out["has_safe_load"] and out["restricted_supported"] and out["safe_load_env"] == "1", out
    assert_offline(out["network_attempts"], f"{release} restricted reload")
    assert out["ok"], f"{out.get('error')}\n{out.get('traceback')}"
    pred = out["predict"]
    assert pred["backbone"] == ["MobileNetV3"] and pred["results"] == 1, pred


def test_modules_of_every_rule_train_and_reload_under_safe_load(release_trees, tmp_path, capsys):
    """One yaml combining a module of every rule (the series' ResNet18 base, a block of one's own, attention,
    convolutions, fusions) trains an epoch under ``ULTRALYTICS_SAFE_LOAD=1``; ``best.pt`` reloads with
    restricted loading and predicts."""
    from test_rules import ALL_MODULES, FIXTURES, modules_args

    assert len(ALL_MODULES) >= 6
    work = tmp_path
    root = work / "site"
    shutil.copytree(release_trees(LATEST), root)
    applied = CliRunner().invoke(
        cli_main,
        ["apply", "--target", str(root), "--no-verify", *modules_args()],
        env={"RTDETR_PATCH_HOME": str(work / "state")},
        catch_exceptions=False,
    )
    assert applied.exit_code == 0, applied.output
    data = make_dataset(work / "data")
    run = work / "run"
    run.mkdir()
    env = offline_env(work, LATEST, ULTRALYTICS_SAFE_LOAD="1")
    spec = {
        "root": str(root),
        "yaml": str(FIXTURES / "rtdetr-r18-modules.yaml"),
        "data": str(data),
        "epochs": 1,
        "imgsz": IMGSZ,
        "batch": BATCH,
        "project": str(work / "runs"),
    }
    result, wall, log = run_phase("train", spec, env, run)
    assert result["ok"], f"training failed:\n{result.get('traceback')}\n{log}"
    spec = {
        "root": str(root),
        "best": result["best"],
        "image": str(data.parent / "images" / "val" / "val0.png"),
        "imgsz": IMGSZ,
    }
    out, wall_safe, log = run_phase("safe", spec, env, run)
    say(
        capsys,
        f"modules of every rule: trained 1 epoch in {wall:.1f}s; restricted reload and predict "
        f"{'ok' if out['ok'] else out.get('error', '').splitlines()[0]} ({wall_safe:.1f}s)",
    )
    assert out["restricted_supported"] and out["ok"], f"{out.get('error')}\n{out.get('traceback')}"
    assert out["predict"]["results"] == 1
