"""``adopt``'s probe: import module files one by one and build yamls, in the interpreter that trains.

Started by ``runner.py`` as ``python adopt_probe.py ROOT SPEC``: ``ROOT`` holds the ``ultralytics`` to import
(a hand-edited tree, a fork, or the staged copy of the target with the planned patch written in
it), ``SPEC`` is a JSON file ``{"imports": [dotted module names], "yamls": [paths]}``. Each module is
imported on its own, so one that fails (a missing package, a name its release does not have)
costs only itself; each yaml is built as its head says (RT-DETR, detect, segment, pose, classify,
OBB) and its parameters counted. It prints one line, ``PREFIX`` then JSON:
``{"fatal": ...}`` when ``ultralytics`` itself does not import, else
``{"release", "imports": {name: null | {"error", "missing"}}, "builds": {path: {"params"} | {"error"}}}``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
import time

import target_common as common  # beside this file: the script's folder is first on sys.path

HEADS = (
    ("RTDETRDecoder", "RTDETRDetectionModel"),
    ("Segment", "SegmentationModel"),
    ("Pose", "PoseModel"),
    ("OBB", "OBBModel"),
    ("Classify", "ClassificationModel"),
)


def failure(exc: BaseException) -> dict:
    text = f"{type(exc).__name__}: {exc}".strip()
    found = {"error": text[:600]}
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        found["missing"] = exc.name
    return found


def model_class(tasks, rows: list) -> type:
    names = {str(r[2]) for r in rows if isinstance(r, (list, tuple)) and len(r) > 2}
    for head, cls in HEADS:
        if any(n == head or n.endswith("." + head) for n in names) and hasattr(tasks, cls):
            return getattr(tasks, cls)
    return tasks.DetectionModel


def build(tasks, path: str) -> dict:
    import torch

    started = time.perf_counter()
    try:
        cfg = tasks.yaml_model_load(path)
        cls = model_class(tasks, list(cfg.get("backbone") or []) + list(cfg.get("head") or []))
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            model = cls(path, verbose=False)
        return {
            "params": sum(p.numel() for p in model.parameters()),
            "seconds": round(time.perf_counter() - started, 2),
            "model": cls.__name__,
        }
    except BaseException as exc:  # every failure is an answer, the next yaml still builds
        if isinstance(exc, KeyboardInterrupt):
            raise
        return failure(exc)


def answer(found: dict) -> None:
    """Print the answer line (one write: nothing else printed can split it)."""
    sys.stdout.write(common.PREFIX + json.dumps(found) + "\n")
    sys.stdout.flush()


def imported(names: list) -> dict:
    """Each module imported on its own: None, or why it fails."""
    imports: dict = {}
    for name in names:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                importlib.import_module(name)
            imports[name] = None
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            imports[name] = failure(exc)
    return imports


def main() -> None:
    root = sys.argv[1]
    with open(sys.argv[2], encoding="utf-8") as given:
        spec = json.load(given)
    sys.path.insert(0, root)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import ultralytics
            from ultralytics.nn import tasks
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        answer({"fatal": failure(exc)})
        return
    found = {
        "release": ultralytics.__version__,
        "package": str(ultralytics.__path__[0]),
        "imports": imported(spec.get("imports", [])),
    }
    found["builds"] = {path: build(tasks, path) for path in spec.get("yamls", [])}
    answer(found)


if __name__ == "__main__":
    main()
