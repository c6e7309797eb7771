"""Run the smoke verification (``smoke.py``) in a fresh process of the target interpreter."""

from __future__ import annotations

import json
import os
import subprocess
from collections import deque
from pathlib import Path

from ..errors import Exit, PatchError
from ..install.locate import Install
from .target_common import PREFIX

SMOKE = Path(__file__).with_name("smoke.py")
TIMEOUT_S = 1800


TRAINER_STAGE = "one epoch through Ultralytics' trainer"  # smoke.py's stage name for --train
# What a failure inside Ultralytics' trainer means, by the words of its message, and what to do.
TRAINER_HINTS = (
    ("Inference tensors cannot be saved for backward",
     "A module cached a tensor made under torch.inference_mode() (the TensorBoard callback traces the model so "
     "when training starts) and trained on it. RT-DETR's decoder is mended by `rtdetr-patch apply` "
     "(decoder-anchors); for a module of your own, rebuild such caches when `tensor.is_inference()` and "
     "`torch.is_inference_mode_enabled()` is false, or turn TensorBoard off: `yolo settings tensorboard=False`."),
    ("Weights only load failed",
     "This Ultralytics release loads its own checkpoints with a torch.load that torch 2.6 and later refuse; "
     "training it would stop at the same place. Set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 in the environment "
     "that trains (and for this check), or use a newer Ultralytics release."),
)


def verify(install: Install, on_stage=lambda name: None, yaml: str = "rtdetr-MobileNetV3.yaml",
           train: bool = False) -> dict:
    """The smoke figures, or a VERIFY error naming the stage that failed and what to do. ``train`` adds one
    short epoch through Ultralytics' own trainer (``target/train_check.py``)."""
    cmd = [install.python, "-u", str(SMOKE), "--root", str(install.root), "--yaml", yaml]
    if yaml.endswith("-tv.yaml"):
        cmd.append("--native")
    if train:
        cmd.append("--train")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    log: deque[str] = deque(maxlen=40)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                encoding="utf-8", errors="replace", env=env, cwd=str(install.root))
    except OSError as exc:
        raise PatchError(Exit.NOT_FOUND, f"Cannot start {install.python} for the verification: {exc}",
                         "Pass --python the interpreter that has torch and this Ultralytics, or use --no-verify.")
    found: dict = {}
    try:
        _read(proc, log, on_stage, found)
        proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise PatchError(Exit.VERIFY, f"The verification of Ultralytics {install.release} did not finish in "
                         f"{TIMEOUT_S} s.", "Run `rtdetr-patch check` again; use --static to skip the smoke run.")
    finally:
        if proc.poll() is None:  # Ctrl-C (or any error) here: the smoke process must not outlive us
            proc.kill()
            proc.wait()
        proc.stdout.close()
    result, error = found.get("result"), found.get("error")
    if result is not None and proc.returncode == 0:
        return result
    where = f"Ultralytics {install.release} at {install.package}"
    if error is None:
        tail = "\n".join(list(log)[-15:])
        raise PatchError(Exit.VERIFY, f"The verification of {where} crashed (exit {proc.returncode}):\n{tail}",
                         "Check that this interpreter has torch installed; run `rtdetr-patch check` for details.")
    if error["type"] in ("ModuleNotFoundError", "ImportError") and error["stage"].startswith("import"):
        raise PatchError(Exit.VERIFY, f"The verification of {where} could not {error['stage']}: {error['message']}",
                         f"Install what is missing into {install.python} (torch comes with `pip install "
                         "ultralytics`), or pass --no-verify / --static to skip the smoke run.")
    if error["type"] == "RtdetrPatchRowError":  # a yaml row that does not fit its module's rule: the message says it
        raise PatchError(Exit.VERIFY, f"The verification of {where} failed at '{error['stage']}': {error['message']}",
                         "Fix that row of the yaml, or the rule (--module FILE.py:NAME=RULE), then run "
                         "`rtdetr-patch check --yaml ...` again. The patch is in place; `rtdetr-patch revert` undoes it.")
    if error["stage"] == TRAINER_STAGE:
        hint = next((h for words, h in TRAINER_HINTS if words in error["message"]), None)
        raise PatchError(Exit.VERIFY, f"The verification of {where} failed in Ultralytics' own trainer (one epoch "
                         f"of {yaml} on a generated dataset, with your Ultralytics settings): {error['type']}: "
                         f"{error['message']}\n{error['traceback'].rstrip()}",
                         (hint or "`model.train()` would fail the same way. If the traceback ends in a module file "
                          "of yours or your yaml, fix that; if it ends in a logging integration your Ultralytics "
                          "settings turn on, `yolo settings` shows them.") +
                         " The patch is in place; `rtdetr-patch revert` undoes it.")
    raise PatchError(Exit.VERIFY, f"The verification of {where} failed at '{error['stage']}': "
                     f"{error['type']}: {error['message']}\n{error['traceback'].rstrip()}",
                     "The patch is in place; `rtdetr-patch revert` undoes it. If the traceback ends in a module file "
                     "of yours or your yaml, fix that file, the yaml row or the module's rule (--module "
                     "FILE.py:NAME=RULE); otherwise please report this with the release and the traceback.")


def _read(proc: subprocess.Popen, log: deque, on_stage, found: dict) -> None:
    """The smoke run's own lines (stages, result, error) from its output; anything else is kept in ``log``."""
    for line in proc.stdout:
        if not line.startswith(PREFIX):
            log.append(line.rstrip())
            continue
        event = json.loads(line[len(PREFIX):])
        if "stage" in event:
            on_stage(event["stage"])
        for key in ("result", "error"):
            if key in event:
                found[key] = event[key]
