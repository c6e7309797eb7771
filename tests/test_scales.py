"""The shipped RT-DETR yamls carry no ``scales:`` block (issue 27: Ultralytics warned "no model scale passed.
Assuming scale='l'" on every build of them, twice in the README's train.py). Without it they build the very same
models as with the block they had (``l: [1.00, 1.00, 1024]``): on a patched 8.0.x and 8.4.x, each yaml and a copy
of it with the block put back build, from the same seed, with the same parameters, bit-identical weights and
bit-identical eval outputs, and only the copy makes Ultralytics warn.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LATEST, OLD

pytestmark = pytest.mark.slow  # real model builds

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SHIPPED = sorted(p.name for p in [*TEMPLATES.glob("rtdetr-*.yaml"), *TEMPLATES.glob("native/*.yaml")])
OLD_BLOCK = "scales:  # [depth, width, max_channels]\n  l: [1.00, 1.00, 1024]\n"

# argv: a JSON list of [shipped yaml path, the copy with the block]; prints one JSON line per yaml.
WORKER = r"""
import json, logging, os, sys
sys.path.insert(0, os.getcwd())
os.environ["YOLO_OFFLINE"] = "1"
import torch
from ultralytics import RTDETR

warned = []

class Catch(logging.Handler):
    def emit(self, record):
        if "no model scale passed" in record.getMessage():
            warned.append(record.getMessage())

logging.getLogger("ultralytics").addHandler(Catch())
torch.set_num_threads(1)
for shipped, scaled in json.loads(sys.argv[1]):
    built = []
    for path in (shipped, scaled):
        del warned[:]
        torch.manual_seed(0)
        model = RTDETR(path).model.eval()
        with torch.no_grad():
            out = model(torch.linspace(0, 1, 3 * 160 * 160).reshape(1, 3, 160, 160))
        out = out[0] if isinstance(out, (list, tuple)) else out
        built.append((model, out, len(warned)))
    (a, ya, wa), (b, yb, wb) = built
    sa, sb = a.state_dict(), b.state_dict()
    print("ROW " + json.dumps({
        "yaml": os.path.basename(shipped),
        "params": [sum(p.numel() for p in a.parameters()), sum(p.numel() for p in b.parameters())],
        "same_weights": list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa),
        "same_output": ya.shape == yb.shape and torch.equal(ya, yb),
        "warnings": [wa, wb],
    }), flush=True)
"""


# 8.0.x builds RT-DETR models about twice as slowly: there, the light yamls (every yaml passed there once, in
# 35 s; parse_model caps channels the same way on both releases, and 8.4.190 checks every yaml on each run)
LIGHT = [
    "rtdetr-MobileNetV3.yaml",
    "rtdetr-MobileNetV3-large.yaml",
    "rtdetr-MobileNetV3-small.yaml",
    "rtdetr-resnet18.yaml",
]


@pytest.mark.parametrize(("release", "names"), [(LATEST, SHIPPED), (OLD, LIGHT)], ids=[LATEST, OLD])
def test_the_shipped_yamls_build_the_same_models_without_the_scale_warning(release, names, tree, cli, tmp_path):
    root = tree(release)
    assert cli("apply", "--target", root, "--no-verify").exit_code == 0
    models = root / "ultralytics"
    pairs = []
    for name in names:
        found = sorted((models / "cfg" / "models").rglob(name))
        if not found:  # the native TorchVision yaml: added only where the release has TorchVision rows
            continue
        text = found[0].read_text(encoding="utf-8")
        assert "\nscales:" not in text, name
        scaled = tmp_path / name
        scaled.write_text(text.replace("\nbackbone:", "\n" + OLD_BLOCK + "\nbackbone:", 1), encoding="utf-8")
        pairs.append([str(found[0]), str(scaled)])
    assert len(pairs) >= min(len(names), 7), pairs
    done = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(pairs)], cwd=root, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line[4:]) for line in done.stdout.splitlines() if line.startswith("ROW ")]
    assert [r["yaml"] for r in rows] == [Path(p).name for p, _ in pairs]
    for row in rows:
        assert row["params"][0] == row["params"][1] > 0, row
        assert row["same_weights"] and row["same_output"], row
        assert row["warnings"] == [0, 1], row  # the copy with the block warns; the shipped yaml does not
