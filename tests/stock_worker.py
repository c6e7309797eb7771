"""Build every stock model yaml of one Ultralytics tree and print a fingerprint of each, as JSON.

Run as ``python stock_worker.py ROOT OUT.json [YAML ...]`` in a fresh process: ``ROOT`` holds the
``ultralytics/`` package to import (pristine or patched). For each yaml under
``ultralytics/cfg/models`` (or those given): seed 0, build it through ``YOLO``/``RTDETR`` as a user
would, count parameters, hash the state dict, run one eval forward on a fixed 128x128 input and hash
every output tensor, and time the build. A yaml that fails to build is recorded with its error.
Also records whether torchvision was imported by ``from ultralytics import YOLO`` + ``nn.tasks``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path


def tensors(obj):
    """Every tensor in a nested output (tuple, list, dict), in a fixed order."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            yield from tensors(obj[key])
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from tensors(item)


def digest(items) -> str:
    h = hashlib.sha256()
    for t in items:
        t = t.detach().contiguous().cpu()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes() if t.dtype != __import__("torch").bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def main() -> int:
    root, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    sys.path.insert(0, str(root))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import ultralytics.nn.tasks
    from ultralytics import YOLO

    torchvision_at_import = "torchvision" in sys.modules
    import torch
    from ultralytics import RTDETR, YOLO

    assert Path(ultralytics.__file__).resolve().parent == root / "ultralytics", ultralytics.__file__
    torch.set_num_threads(int(os.environ.get("STOCK_THREADS", "1")))
    models = root / "ultralytics" / "cfg" / "models"
    names = sys.argv[3:] or sorted(p.relative_to(models).as_posix() for p in models.rglob("*.yaml"))
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    results = {}
    for rel in names:
        name = Path(rel).name
        entry: dict = {}
        try:
            torch.manual_seed(0)
            t0 = time.perf_counter()
            wrapper = (RTDETR if "rtdetr" in name else YOLO)(name)
            entry["build_s"] = time.perf_counter() - t0
            model = wrapper.model.eval()
            entry["params"] = sum(p.numel() for p in model.parameters())
            entry["weights"] = digest(model.state_dict().values())
            with torch.no_grad():
                entry["outputs"] = digest(tensors(model(x)))
        except Exception as exc:  # recorded and compared, pristine against patched
            entry = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        results[rel] = entry
    out.write_text(json.dumps({"torchvision_at_import": torchvision_at_import, "yamls": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
