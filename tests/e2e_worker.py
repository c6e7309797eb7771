"""Subprocess worker for tests/test_e2e.py: one phase of the end-to-end run on a patched release tree.

Run as ``python e2e_worker.py PHASE SPEC_JSON`` with ``SPEC_JSON`` a JSON object holding at least ``root``
(the folder that holds the patched ``ultralytics/``). The tree is put first on ``sys.path`` before anything
imports Ultralytics, so the copy under test is the one that runs, never the interpreter's own install.
The last stdout line is ``E2E_RESULT {json}``, read back by the test.

Phases:

* ``train``  - ``RTDETR(yaml).train(...)`` on the generated dataset (Ultralytics' own trainer and validator).
* ``reload`` - in a fresh process: ``RTDETR(best.pt)``, ``predict``, ``val``, ONNX export and an
  onnxruntime-vs-torch comparison on the same input.
* ``safe``   - ``RTDETR(best.pt)`` and ``predict`` only (run with ``ULTRALYTICS_SAFE_LOAD=1``).
* ``backbones`` - for each of several yamls (users' backbones): build, eval forward at 640, train-mode loss,
  then one training epoch (tests/test_backbones.py).
* ``predict_many`` - in a fresh process, reload each ``best.pt`` and predict.
* ``yolo_cli`` - ``yolo train``, ``yolo predict`` and ``yolo export format=onnx`` through Ultralytics' own command
  line entry point, then ONNX against torch on one image (tests/test_yolo.py).

Network: every socket connection and name lookup is refused in the worker (and recorded in
``network_attempts``), so nothing can be downloaded whatever a release tries.

Compatibility shims for old releases on today's libraries (test harness only, not product code):

* NumPy 2.4 removed ``np.trapz``, which 8.0.x's ``compute_ap`` calls: alias it to ``np.trapezoid``.
* torch 2.9+ exports ONNX with the dynamo exporter unless ``dynamo=False``; 8.0.x predates the flag, so
  ``torch.onnx.export`` defaults to ``dynamo=False`` here (8.4.x passes it itself).
* torch 2.6+ loads with ``weights_only=True`` unless told otherwise; 8.0.x calls plain ``torch.load`` on
  its own checkpoints, so the test sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for that release only.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
import traceback
from pathlib import Path


def _shims() -> None:
    import numpy as np
    import torch

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid
    export = torch.onnx.export

    def export_legacy(*args, **kwargs):
        kwargs.setdefault("dynamo", False)
        return export(*args, **kwargs)

    torch.onnx.export = export_legacy


NETWORK_ATTEMPTS: list[str] = []


def _no_network() -> None:
    """Refuse every outbound connection and name lookup in this process, and record what was tried.

    ``YOLO_OFFLINE=1`` is honoured by recent releases only; 8.0.x probes DNS servers and PyPI regardless. With
    sockets refused, each release takes its offline path at once, and any download it would still need (a font,
    AMP-check weights, a dataset) fails loudly instead of reaching the internet.
    """
    import socket

    def refuse(what):
        def blocked(*args, **kwargs):
            if what == "connect":  # sock.connect(address)
                target = args[1] if len(args) > 1 else kwargs.get("address")
            elif what == "create_connection":  # create_connection(address, ...)
                target = args[0] if args else kwargs.get("address")
            else:  # getaddrinfo(host, port, ...)
                target = (args + (kwargs.get("host"), kwargs.get("port")))[:2]
            NETWORK_ATTEMPTS.append(f"{what} {target!r}")
            raise OSError(f"e2e: network access blocked ({what})")

        return blocked

    socket.socket.connect = refuse("connect")
    socket.socket.connect_ex = refuse("connect")
    socket.create_connection = refuse("create_connection")
    socket.getaddrinfo = refuse("getaddrinfo")


def _quiet_settings() -> None:
    """No telemetry, whatever the release (settings live in $YOLO_CONFIG_DIR, a tmp folder)."""
    from ultralytics.utils import SETTINGS

    with contextlib.suppress(Exception):  # a release without that key: nothing to switch off
        SETTINGS.update(sync=False)


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _read_results_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = [h.strip() for h in rows[0]]
    return [dict(zip(header, (v.strip() for v in row))) for row in rows[1:] if row]


def phase_train(spec: dict) -> dict:
    import torch
    from ultralytics import RTDETR

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = RTDETR(spec["yaml"])
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.train(
        data=spec["data"],
        epochs=spec["epochs"],
        imgsz=spec["imgsz"],
        batch=spec["batch"],
        workers=0,
        device="cpu",
        plots=False,
        project=spec["project"],
        name=spec.get("name", "e2e"),
        exist_ok=True,
        val=True,
        amp=False,
        seed=0,
        deterministic=False,
        verbose=False,
        patience=100,
        warmup_epochs=0,
        close_mosaic=0,
        cache=False,
    )
    t_train = time.perf_counter() - t0
    trainer = model.trainer
    save_dir = Path(trainer.save_dir)
    rows = _read_results_csv(save_dir / "results.csv")
    losses = {k: v for k, v in rows[-1].items() if k.startswith(("train/", "val/")) and k.endswith("loss")}
    metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
    return {
        "save_dir": str(save_dir),
        "best": str(save_dir / "weights" / "best.pt"),
        "best_exists": (save_dir / "weights" / "best.pt").is_file(),
        "last_exists": (save_dir / "weights" / "last.pt").is_file(),
        "results_csv_rows": len(rows),
        "losses": losses,
        "losses_finite": bool(losses) and all(_finite(v) for v in losses.values()),
        "metrics": metrics,
        "validator_ran": trainer.validator is not None and getattr(trainer.validator, "seen", 0) > 0,
        "val_images_seen": int(getattr(trainer.validator, "seen", 0) or 0),
        "epochs_done": int(trainer.epoch) + 1,
        "seconds": {"build": t_build, "train": t_train},
    }


def _image_tensor(path: str, imgsz: int):
    import cv2
    import numpy as np
    import torch

    im = cv2.imread(path)  # BGR, imgsz x imgsz already (the dataset is generated square at imgsz)
    im = cv2.resize(im, (imgsz, imgsz), interpolation=cv2.INTER_LINEAR)
    im = np.ascontiguousarray(im[..., ::-1].transpose(2, 0, 1))  # RGB, CHW
    return torch.from_numpy(im).float().div(255.0)[None]


def _predict(best: str, image: str, imgsz: int) -> dict:
    from ultralytics import RTDETR

    model = RTDETR(best)
    res = model.predict(image, imgsz=imgsz, device="cpu", save=False, verbose=False, conf=0.0)
    boxes = res[0].boxes
    return {
        "model_class": type(model.model).__name__,
        "backbone": [type(m).__name__ for m in model.model.model if getattr(m, "backbone", False)],
        "results": len(res),
        "boxes": int(len(boxes)),
        "orig_shape": list(res[0].orig_shape),
        "conf_finite": bool(len(boxes) == 0 or boxes.conf.isfinite().all().item()),
    }


def phase_reload(spec: dict) -> dict:
    import torch

    seconds = {}
    t0 = time.perf_counter()
    out = {"predict": _predict(spec["best"], spec["image"], spec["imgsz"])}
    seconds["reload_predict"] = time.perf_counter() - t0

    from ultralytics import RTDETR

    t0 = time.perf_counter()
    model = RTDETR(spec["best"])
    metrics = model.val(
        data=spec["data"],
        imgsz=spec["imgsz"],
        batch=spec["batch"],
        device="cpu",
        workers=0,
        plots=False,
        project=spec["project"],
        name="val",
        exist_ok=True,
        verbose=False,
    )
    seconds["val"] = time.perf_counter() - t0
    rd = getattr(metrics, "results_dict", None) or {}
    out["val"] = {
        "results_dict": {k: float(v) for k, v in rd.items()},
        "finite": bool(rd) and all(_finite(v) for v in rd.values()),
    }

    t0 = time.perf_counter()
    onnx_path = RTDETR(spec["best"]).export(
        format="onnx", imgsz=spec["imgsz"], opset=spec["opset"], simplify=False, dynamic=False, device="cpu"
    )
    seconds["export"] = time.perf_counter() - t0
    out["onnx"] = str(onnx_path)

    t0 = time.perf_counter()
    import onnxruntime as ort

    x = _image_tensor(spec["image"], spec["imgsz"])
    net = RTDETR(spec["best"]).model.float().eval()  # the checkpoint as Ultralytics loads it, unfused
    with torch.no_grad():
        ref = net(x)
    ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    seconds["onnx_compare"] = time.perf_counter() - t0
    out["compare"] = {
        "torch_shape": list(ref.shape),
        "onnx_shape": list(got.shape),
        **(_differences(ref, got) if got.shape == ref.shape else {}),
        "max_abs_ref": float(abs(ref).max()),
        "onnxruntime": ort.__version__,
        "ort_inputs": [(i.name, i.shape) for i in session.get_inputs()],
    }
    out["seconds"] = seconds
    return out


def _differences(ref, got) -> dict:
    """Element-wise and query-order-free differences of two (1, queries, 4 + nc) decoder outputs.

    RT-DETR keeps the top-k encoder proposals; on a barely trained model many scores tie to float precision,
    so a last-bit difference between torch and onnxruntime can swap queries in the output. Rows are matched
    one-to-one (Hungarian assignment on the max abs difference of a row pair) before comparing values.
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    in_order = np.abs(got - ref).max(-1)  # (1, queries)
    cost = np.abs(ref[0][:, None, :] - got[0][None, :, :]).max(-1)
    rows, cols = linear_sum_assignment(cost)
    return {
        "max_abs_diff_in_order": float(in_order.max()),
        "rows_out_of_order": int((in_order[0] > 1e-4).sum()),
        "max_abs_diff": float(cost[rows, cols].max()),  # after matching queries
    }


def phase_safe(spec: dict) -> dict:
    import os

    from ultralytics.nn import tasks

    t0 = time.perf_counter()
    out = {
        "safe_load_env": os.environ.get("ULTRALYTICS_SAFE_LOAD"),
        "has_safe_load": hasattr(tasks, "_SafeLoad"),
        "restricted_supported": bool(getattr(getattr(tasks, "_SafeLoad", None), "SUPPORTED", False)),
    }
    try:
        out["predict"] = _predict(spec["best"], spec["image"], spec["imgsz"])
        out["ok"] = True
    except Exception as e:  # the flags above still go back with the traceback
        out.update(ok=False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    out["seconds"] = {"safe_reload_predict": time.perf_counter() - t0}
    return out


def phase_backbones(spec: dict) -> dict:
    """For each yaml: build, eval forward at 640, train-mode loss and backward, then train one epoch.

    ``spec["cases"]``: ``[{"yaml": path, "imgsz": n}]``; a case that fails is reported, the others still run.
    """
    import torch
    from ultralytics import RTDETR

    out = {}
    for case in spec["cases"]:
        name = Path(case["yaml"]).stem
        entry = out[name] = {}
        try:
            torch.manual_seed(0)
            model = RTDETR(case["yaml"])
            net = model.model.eval()
            entry["backbone"] = [type(m).__name__ for m in net.model if getattr(m, "backbone", False)]
            with torch.no_grad():
                y = net(torch.zeros(1, 3, 640, 640))
            y = y[0] if isinstance(y, (list, tuple)) else y
            entry["eval_shape"] = list(y.shape)
            net.train()
            net.nc = net.yaml.get("nc", 80)  # the trainer sets this from the dataset
            batch = {
                "img": torch.rand(2, 3, case["imgsz"], case["imgsz"]),
                "batch_idx": torch.tensor([0.0, 1.0]),
                "cls": torch.tensor([[0.0], [1.0]]),
                "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.3, 0.3, 0.2, 0.2]]),
            }
            loss = net.loss(batch)
            total = (loss[0] if isinstance(loss, (list, tuple)) else loss).sum()
            total.backward()
            entry["loss_finite"] = bool(torch.isfinite(total))
            entry["backbone_grads"] = sum(p.grad is not None for p in net.model[0].parameters())
            run = phase_train({**spec, "yaml": case["yaml"], "imgsz": case["imgsz"], "epochs": 1, "name": name})
            entry.update({k: run[k] for k in ("best", "best_exists", "losses_finite", "validator_ran", "epochs_done")})
            entry["ok"] = True
        except Exception as e:  # reported per case
            entry.update(ok=False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-3000:])
    return {"cases": out}


def phase_predict_many(spec: dict) -> dict:
    """A fresh process: reload each ``best.pt`` and predict one image."""
    out = {}
    for best in spec["bests"]:
        try:
            out[best] = {"ok": True, **_predict(best, spec["image"], spec["imgsz"])}
        except Exception as e:  # reported per checkpoint
            out[best] = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    return {"predictions": out}


def phase_yolo_cli(spec: dict) -> dict:
    """Ultralytics' own command line, as a user types it: ``yolo train``, ``yolo predict``, ``yolo export``.

    Each command goes through ``ultralytics.cfg.entrypoint`` (what the ``yolo`` script runs), given the
    command line; then the exported ONNX model and the torch model of ``best.pt`` run the same image.
    """
    import torch
    from ultralytics.cfg import entrypoint

    def yolo(*args: str) -> float:
        # entrypoint(debug=...) is the command line split on spaces (8.4 reads sys.argv once, at import)
        assert not any(" " in a for a in args), args
        t0 = time.perf_counter()
        entrypoint(" ".join(["yolo", *args]))
        return time.perf_counter() - t0

    project, imgsz = spec["project"], spec["imgsz"]
    seconds = {
        "train": yolo(
            "train",
            f"model={spec['yaml']}",
            f"data={spec['data']}",
            "epochs=1",
            f"imgsz={imgsz}",
            "batch=4",
            "workers=0",
            "device=cpu",
            "plots=False",
            f"project={project}",
            "name=cli",
            "exist_ok=True",
            "amp=False",
            "seed=0",
            "warmup_epochs=0",
            "close_mosaic=0",
        )
    }
    best = Path(project) / "cli" / "weights" / "best.pt"
    seconds["predict"] = yolo(
        "predict",
        f"model={best}",
        f"source={spec['image']}",
        f"imgsz={imgsz}",
        "device=cpu",
        "save=False",
        "conf=0.0",
        f"project={project}",
        "name=pred",
        "exist_ok=True",
    )
    seconds["export"] = yolo(
        "export",
        f"model={best}",
        "format=onnx",
        f"imgsz={imgsz}",
        "simplify=False",
        "device=cpu",
        f"opset={spec.get('opset', 17)}",
    )
    onnx_path = best.with_suffix(".onnx")
    import onnxruntime as ort
    from ultralytics import YOLO

    model = YOLO(str(best))
    x = _image_tensor(spec["image"], imgsz)
    net = model.model.float().eval()
    with torch.no_grad():
        ref = net(x)
    ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    import numpy as np

    return {
        "best": str(best),
        "best_exists": best.is_file(),
        "onnx_exists": onnx_path.is_file(),
        "model_class": type(net).__name__,
        "backbone": [type(m).__name__ for m in net.model if getattr(m, "backbone", False)],
        "torch_shape": list(ref.shape),
        "onnx_shape": list(got.shape),
        "max_abs_diff": float(np.abs(got - ref).max()) if got.shape == ref.shape else None,
        "max_abs_ref": float(np.abs(ref).max()),
        "seconds": seconds,
    }


PHASES = {
    "yolo_cli": phase_yolo_cli,
    "train": phase_train,
    "reload": phase_reload,
    "safe": phase_safe,
    "backbones": phase_backbones,
    "predict_many": phase_predict_many,
}


def main() -> int:
    phase, spec = sys.argv[1], json.loads(sys.argv[2])
    sys.path.insert(0, spec["root"])  # the patched tree first: its ultralytics is the one imported
    _shims()
    _no_network()
    import ultralytics

    assert Path(ultralytics.__file__).resolve().is_relative_to(Path(spec["root"]).resolve()), ultralytics.__file__
    _quiet_settings()
    t0 = time.perf_counter()
    try:
        result = {"ok": True, **PHASES[phase](spec)}
    except Exception as e:  # report the traceback to the test as data, so it can assert on it
        result = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    result["network_attempts"] = NETWORK_ATTEMPTS
    result["release"] = ultralytics.__version__
    result["phase_seconds"] = time.perf_counter() - t0
    print("E2E_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
