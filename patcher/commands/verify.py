"""Run the smoke verification (``smoke.py``) in a fresh process of the target interpreter (``runner.py``), and
word what it answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import Exit, PatchError
from ..install.locate import Install
from ..install.pristine import pristine_package
from ..target import runner

TRAINER_STAGE = "one epoch through Ultralytics' trainer"  # smoke.py's stage name for --train
STOCK_YAML = "cfg/models/rt-detr/rtdetr-l.yaml"  # built by the smoke run: the patch leaves stock models as they were
# What a failure inside Ultralytics' trainer means, by the words of its message, and what to do.
TRAINER_HINTS = (
    (
        "Inference tensors cannot be saved for backward",
        "A module cached a tensor made under torch.inference_mode() (the TensorBoard callback traces the model so "
        "when training starts) and trained on it. RT-DETR's decoder is mended by `rtdetr-patch apply` "
        "(decoder-anchors); for a module of your own, rebuild such caches when `tensor.is_inference()` and "
        "`torch.is_inference_mode_enabled()` is false, or turn TensorBoard off: `yolo settings tensorboard=False`.",
    ),
    (
        "Weights only load failed",
        "This Ultralytics release loads its own checkpoints with a torch.load that torch 2.6 and later refuse; "
        "training it would stop at the same place. Set TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 in the environment "
        "that trains (and for this check), or use a newer Ultralytics release.",
    ),
)


def verify(
    install: Install,
    on_stage: Callable[[str], object] = lambda name: None,
    yaml: str = "rtdetr-MobileNetV3.yaml",
    train: bool = False,
    stock: bool = True,
) -> dict[str, Any]:
    """The smoke figures, or a VERIFY error naming the stage that failed and what to do. ``train`` adds one
    short epoch through Ultralytics' own trainer (``target/train_check.py``); ``stock`` false skips building
    stock rtdetr-l (the caller knows a passing run built it on the same package bytes)."""
    args = ["--root", str(install.root), "--yaml", yaml]
    if not stock:
        args.append("--no-stock")
    elif not (install.package / STOCK_YAML).is_file():  # a fork adopted in place without Ultralytics' RT-DETR yamls
        args += ["--stock-yaml", str(pristine_package(install.release) / STOCK_YAML)]
    if yaml.endswith("-tv.yaml"):
        args.append("--native")
    if train:
        args.append("--train")

    def seen(event: dict[str, Any]) -> None:
        if "stage" in event:
            on_stage(event["stage"])

    try:
        done = runner.run("smoke", install.python, args, cwd=install.root, on_event=seen)
    except runner.NoAnswer as exc:
        done = _silent(install, exc)
    result, error = done.answer.get("result"), done.answer.get("error")
    if result is not None and done.returncode == 0:
        return dict(result)
    where = f"Ultralytics {install.release} at {install.package}"
    if error is None:
        tail = "\n".join(list(done.tail)[-15:])
        raise PatchError(
            Exit.VERIFY,
            f"The verification of {where} crashed (exit {done.returncode}):\n{tail}",
            "Check that this interpreter has torch installed; run `rtdetr-patch check` for details.",
        )
    raise _failure(install, where, yaml, error)


def _silent(install: Install, exc: runner.NoAnswer) -> runner.Finished:
    """A smoke run that could not start or ran too long: its error. One that ended without a word: read as a run
    that answered nothing (a crash)."""
    if exc.kind == "start":
        raise PatchError(
            Exit.NOT_FOUND,
            f"Cannot start {install.python} for the verification: {exc.cause}",
            "Pass --python the interpreter that has torch and this Ultralytics, or use --no-verify.",
        )
    if exc.kind == "timeout":
        raise PatchError(
            Exit.VERIFY,
            f"The verification of Ultralytics {install.release} did not finish in {runner.TIMEOUTS['smoke']} s.",
            "Run `rtdetr-patch check` again; use --static to skip the smoke run.",
        )
    return runner.Finished({}, exc.returncode if exc.returncode is not None else -1, exc.tail)


def _failure(install: Install, where: str, yaml: str, error: dict[str, Any]) -> PatchError:
    """The error for a smoke run that failed at a stage (``error``: its stage, type, message and traceback)."""
    if error["type"] in ("ModuleNotFoundError", "ImportError") and error["stage"].startswith("import"):
        return PatchError(
            Exit.VERIFY,
            f"The verification of {where} could not {error['stage']}: {error['message']}",
            f"Install what is missing into {install.python} (torch comes with `pip install "
            "ultralytics`), or pass --no-verify / --static to skip the smoke run.",
        )
    if error["type"] == "RtdetrPatchRowError":  # a yaml row that does not fit its module's rule: the message says it
        return PatchError(
            Exit.VERIFY,
            f"The verification of {where} failed at '{error['stage']}': {error['message']}",
            "Fix that row of the yaml, or the rule (--module FILE.py:NAME=RULE), then run "
            "`rtdetr-patch check --yaml ...` again. The patch is in place; `rtdetr-patch revert` undoes it.",
        )
    if error["stage"] == TRAINER_STAGE:
        hint = next((h for words, h in TRAINER_HINTS if words in error["message"]), None)
        return PatchError(
            Exit.VERIFY,
            f"The verification of {where} failed in Ultralytics' own trainer (one epoch "
            f"of {yaml} on a generated dataset, with your Ultralytics settings): {error['type']}: "
            f"{error['message']}\n{error['traceback'].rstrip()}",
            (
                hint
                or "`model.train()` would fail the same way. If the traceback ends in a module file "
                "of yours or your yaml, fix that; if it ends in a logging integration your Ultralytics "
                "settings turn on, `yolo settings` shows them."
            )
            + " The patch is in place; `rtdetr-patch revert` undoes it.",
        )
    return PatchError(
        Exit.VERIFY,
        f"The verification of {where} failed at '{error['stage']}': "
        f"{error['type']}: {error['message']}\n{error['traceback'].rstrip()}",
        "The patch is in place; `rtdetr-patch revert` undoes it. If the traceback ends in a module file "
        "of yours or your yaml, fix that file, the yaml row or the module's rule (--module "
        "FILE.py:NAME=RULE); otherwise please report this with the release and the traceback.",
    )
