"""What several test files share, so that no test file imports another.

* transforms on small sources: ``src``, ``transform``, ``assert_before_after`` (LibCST's ``CodemodTest`` in
  spirit: before -> PATCHED with exactly after, after -> APPLIED and unchanged), ``assert_missing``, and the
  ``tasks.py`` source the head transforms share (``HEADS_BEFORE``);
* the end-to-end runs (``test_e2e``, ``test_backbones``, ``test_yolo``): a synthetic dataset, an offline
  environment for the worker process, one worker phase, and the no-network check;
* commands on a terminal (``test_terminal``, ``test_adopt``): deadlines, the environment, the cursor.

Fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import libcst as cst
import pytest
from rtdetr_patch.patches import Outcome, TargetMissing, Transform
from terminal import HIDE_CURSOR, SHOW_CURSOR


# -- transforms on small sources ---------------------------------------------------------------------
def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def transform(cls: type[Transform], code: str) -> tuple[str, Outcome]:
    module, outcome = cls().run(cst.parse_module(code))
    return module.code, outcome


def assert_before_after(cls: type[Transform], before: str, after: str) -> None:
    """Pristine -> PATCHED with exactly ``after``; ``after`` -> APPLIED and unchanged."""
    code, outcome = transform(cls, before)
    assert outcome is Outcome.PATCHED
    assert code == after
    compile(code, cls.NAME, "exec")
    again, outcome = transform(cls, after)
    assert outcome is Outcome.APPLIED
    assert again == after


def assert_missing(cls: type[Transform], code: str, *words: str) -> str:
    with pytest.raises(TargetMissing) as info:
        transform(cls, code)
    message = info.value.looked_for
    assert str(info.value) == message
    for word in words:
        assert word in message, (word, message)
    return message


# ``tasks.py``'s head checks, loss and stride probe: registered-heads and legacy-head-preds patch it.
HEADS_BEFORE = src('''
    class BaseModel(nn.Module):
        def _apply(self, fn):
            self = super()._apply(fn)
            m = self.model[-1]  # Detect()
            if isinstance(
                m, Detect
            ):  # includes all Detect subclasses
                m.stride = fn(m.stride)
            return self

        def loss(self, batch, preds=None):
            if preds is None:
                preds = self.forward(batch["img"])
            return self.criterion(preds, batch)


    class DetectionModel(BaseModel):
        def __init__(self, cfg="yolov8n.yaml", ch=3, nc=None, verbose=True):
            m = self.model[-1]  # Detect()
            if isinstance(m, (Detect, Segment)):
                s = 256  # 2x min stride

                def _forward(x):
                    output = self.forward(x)
                    if "one2many" in output:
                        output = output["one2many"]
                    return output["feats"]

                m.stride = torch.tensor([s / x.shape[-2] for x in _forward(torch.zeros(1, ch, s, s))])


    class WorldModel(DetectionModel):
        def loss(self, batch, preds=None):
            return self.criterion(preds, batch)


    def guess_model_task(model):
        def cfg2task(cfg):
            """Guess from YAML dictionary."""
            m = cfg["head"][-1][-2].lower()  # output module name
            if "detect" in m:
                return "detect"

        for m in model.modules():
            if isinstance(m, Segment):
                return "segment"
            elif isinstance(m, (Detect, WorldDetect)):
                return "detect"
''')


# -- the end-to-end runs -------------------------------------------------------------------------------
WORKER = Path(__file__).with_name("e2e_worker.py")
IMGSZ = 128
NAMES = ("box", "disc")
PHASE_TIMEOUT = 600


def make_dataset(folder: Path, n_train: int = 8, n_val: int = 4, size: int = IMGSZ, seed: int = 0) -> Path:
    """Images with 1-3 filled rectangles (class 0) or ellipses (class 1), YOLO labels, and a data yaml."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        (folder / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            background = tuple(rng.randint(0, 80) for _ in range(3))
            img = Image.new("RGB", (size, size), background)
            draw = ImageDraw.Draw(img)
            lines = []
            for _ in range(rng.randint(1, 3)):
                cls = rng.randint(0, 1)
                w, h = rng.randint(size // 6, size // 2), rng.randint(size // 6, size // 2)
                x0, y0 = rng.randint(0, size - w - 1), rng.randint(0, size - h - 1)
                colour = tuple(rng.randint(120, 255) for _ in range(3))
                box = [x0, y0, x0 + w, y0 + h]
                (draw.rectangle if cls == 0 else draw.ellipse)(box, fill=colour)
                lines.append(f"{cls} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
            img.save(folder / "images" / split / f"{split}{i}.png")
            (folder / "labels" / split / f"{split}{i}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = folder / "data.yaml"
    data.write_text(
        f"path: {folder.as_posix()}\ntrain: images/train\nval: images/val\n"
        f"names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES)),
        encoding="utf-8",
    )
    return data


def offline_env(work: Path, release: str, **extra: str) -> dict[str, str]:
    """Environment for a worker: offline, user settings and caches in tmp, a local font as Arial.ttf."""
    home, config = work / "home", work / "yolo-config"
    config.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    # check_det_dataset wants Arial.ttf in USER_CONFIG_DIR: $YOLO_CONFIG_DIR (8.0.x) or $YOLO_CONFIG_DIR/Ultralytics
    for font in (config / "Arial.ttf", config / "Ultralytics" / "Arial.ttf"):
        if not font.exists():
            import matplotlib

            font.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ULTRALYTICS_", "YOLO_", "TORCH_FORCE_"))}
    env.update(
        HOME=str(home),
        YOLO_CONFIG_DIR=str(config),
        YOLO_OFFLINE="1",
        XDG_CONFIG_HOME=str(home / ".config"),
        MPLCONFIGDIR=str(home / "mpl"),
        TORCH_HOME=str(home / "torch"),
        OMP_NUM_THREADS="2",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONWARNINGS="ignore",
    )
    if release.startswith("8.0."):
        # 8.0.x calls torch.load without weights_only on its own checkpoints; torch 2.6+ would refuse them.
        env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    env.update(extra)
    return env


def run_phase(phase: str, spec: dict, env: dict[str, str], cwd: Path) -> tuple[dict, float, str]:
    """Run one worker phase; return (its result object, wall seconds, its combined output for messages)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(WORKER), phase, json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=PHASE_TIMEOUT,
    )
    wall = time.perf_counter() - t0
    log = (done.stdout + "\n" + done.stderr)[-6000:]
    lines = [l for l in done.stdout.splitlines() if l.startswith("E2E_RESULT ")]
    assert done.returncode == 0 and lines, f"worker {phase} failed (rc {done.returncode}):\n{log}"
    return json.loads(lines[-1][len("E2E_RESULT ") :]), wall, log


def assert_offline(attempts: list[str], what: str) -> None:
    """Only connectivity probes to DNS servers (port 53; 8.0.x's is_online) may have been tried, all refused."""
    others = [a for a in attempts if not a.endswith(", 53)")]
    assert not others, f"{what} tried to reach the network (refused): {others}"


# -- commands on a terminal -------------------------------------------------------------------------
STARTS = 20  # seconds: the install line and the progress line appear within a second or two
SMOKE = 120  # seconds: a whole smoke run takes about 10 on 2 cores


def flat(text: str) -> str:
    return " ".join(text.split())


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TERM")}
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def cursor_shown(raw: str) -> bool:
    """The cursor is visible at the end: no hide without a later show."""
    return raw.rfind(HIDE_CURSOR) < raw.rfind(SHOW_CURSOR) or HIDE_CURSOR not in raw


def apply_channel_gate(cli, target):
    """``apply --module`` of the fixture's ChannelGate on ``target``, without the smoke run: an apply after adopt."""
    module = Path(__file__).parent / "fixtures" / "modules" / "attention.py"
    return cli("apply", "--target", target, "--no-verify", "--module", f"{module}:ChannelGate")
