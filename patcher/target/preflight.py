"""The ``--module`` preflight: import a user's file and check each name, in the target interpreter.

Started as ``python preflight.py ROOT FILE SPEC_JSON`` (``ROOT`` holds the ``ultralytics`` to
import, ``SPEC_JSON`` a list of ``{"name", "rule", "backbone"}``) with the file's folder as the
working directory. It prints one JSON line: ``{"import": ..., "missing": ...}`` when the file does
not import, else ``{"candidates": {name: entry}}``.

A backbone (``rule`` "backbone") is built with default arguments (or its factory called), run once
at 640x640, and reported with its maps' channels and strides and the globals a checkpoint of it
holds. Any other module is built under its rule at probe widths (``target_common``), as
``parse_model`` would build a row without arguments of its own, run once, and its output width
measured against the width the rule records. A module without a rule gets the one its
constructor's parameters imply.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
import tempfile
import time

import target_common as common  # beside this file: the script's folder is first on sys.path


def load(root: str, path: str):
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))  # the file's own sibling imports
    sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location(common.USER_MODULE, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[common.USER_MODULE] = module  # as an imported module is: registries such as timm's look it up
    spec.loader.exec_module(module)
    return module


def params_of(obj) -> list[str]:
    """The positional parameter names a row's arguments fill (``self`` and ``*args``/``**kwargs`` left out)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in signature.parameters.values() if p.kind in kinds]


def needs_arguments(exc: BaseException) -> bool:
    return isinstance(exc, TypeError) and "required" in str(exc) and "argument" in str(exc)


def first_tensor(out, torch):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def backbone(obj, torch) -> dict:
    entry = {}
    t0 = time.perf_counter()
    try:
        net = obj()
    except TypeError as exc:
        if needs_arguments(exc):
            return {"needs_args": str(exc)}
        raise
    entry["build_s"] = round(time.perf_counter() - t0, 2)
    if not isinstance(net, torch.nn.Module):
        return {**entry, "error": f"returns {type(net).__name__}, not a torch.nn.Module"}
    attr = next((a for a in common.CONTRACT if getattr(net, a, None) is not None), None)
    entry["attr"] = attr
    entry["widths"] = [int(w) for w in getattr(net, attr)] if attr else None
    entry["params"] = sum(p.numel() for p in net.parameters())
    net.eval()
    with torch.no_grad():
        maps = net(torch.zeros(1, 3, common.PROBE, common.PROBE))
    if not isinstance(maps, (list, tuple)) or not all(isinstance(m, torch.Tensor) and m.ndim == 4 for m in maps):
        return {**entry, "error": f"forward returns {type(maps).__name__}, not a list of feature maps"}
    entry["channels"] = [int(m.shape[1]) for m in maps]
    entry["strides"] = [round(common.PROBE / m.shape[-1], 2) for m in maps]
    entry.update(held_globals(net, torch))
    return entry


def held_globals(net, torch) -> dict:
    """Classes from other packages an instance holds, and every global its checkpoint pickles (torch 2.5+)."""
    classes = {(type(m).__module__, type(m).__qualname__) for m in net.modules()}
    external = sorted(f"{mod}.{qual}" for mod, qual in classes
                      if mod != common.USER_MODULE and not mod.startswith("torch.nn.modules") and "<locals>" not in qual)
    try:
        with tempfile.TemporaryDirectory() as folder:
            saved = os.path.join(folder, "module.pt")
            torch.save({"model": net}, saved)
            found = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(saved))
    except AttributeError:
        found = []
    return {"external": external, "globals": found}


def builds_a_backbone(obj, torch) -> bool:
    """Whether ``obj()`` (no arguments) builds a module that lists its outputs' channels."""
    try:
        net = obj()
    except BaseException:  # noqa: BLE001 - anything else is not a backbone built this way
        return False
    return isinstance(net, torch.nn.Module) and any(getattr(net, a, None) is not None for a in common.CONTRACT)


def module(obj, rule: str | None, torch) -> dict:
    """Build ``obj`` under its rule at the probe widths, run it once, and measure its output width."""
    params = params_of(obj)
    entry = {"params_names": params, "rule": rule, "inferred": rule is None}
    if rule is None:
        rule, why = common.rule_from_params(params)
        entry["rule"], entry["why"] = rule, why
        if rule is None:
            return entry
    if rule in ("head", "block"):
        entry["probe"] = ("a head is built by the yaml rows that name it" if rule == "head" else
                          "a block is built by the Blocks rows that name it")
        return entry
    widths, out = common.probe_widths(rule), common.PROBE_OUT
    args = common.probe_args(rule, widths, out)
    call = f"{obj.__name__}({', '.join(map(repr, args))})"
    try:
        net = obj(*args)
    except BaseException as exc:  # noqa: BLE001 - every failure is reported to the parent
        entry["needs_args" if needs_arguments(exc) else "build_error"] = f"{call}: {type(exc).__name__}: {exc}"[:500]
        return entry
    if not isinstance(net, torch.nn.Module):
        entry["build_error"] = f"{call} returns {type(net).__name__}, not a torch.nn.Module"
        return entry
    entry["params"] = sum(p.numel() for p in net.parameters())
    size = common.PROBE_SIZE
    inputs = [torch.rand(1, w, size, size) for w in widths]
    try:
        net.eval()
        with torch.no_grad():
            y = first_tensor(net(inputs[0] if rule in common.SINGLE else inputs), torch)
    except BaseException as exc:  # noqa: BLE001
        entry["forward_error"] = f"{call} on {'x'.join(map(str, (1, widths[0], size, size)))} inputs: " \
                                 f"{type(exc).__name__}: {exc}"[:500]
        return entry
    if y is None or y.ndim != 4:
        entry["forward_error"] = f"{call} returned {type(y).__name__}, not a feature map"
        return entry
    entry["measured"] = int(y.shape[1])
    entry["expected"] = common.expected_width(rule, widths, out)
    entry["probe_call"] = call
    entry["probe_inputs"] = widths
    entry.update(held_globals(net, torch))
    return entry


def main() -> int:
    root, path, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        import torch

        loaded = load(root, path)
    except ModuleNotFoundError as exc:
        print(json.dumps({"import": f"{type(exc).__name__}: {exc}", "missing": exc.name}))
        return 0
    except BaseException as exc:  # noqa: BLE001
        print(json.dumps({"import": f"{type(exc).__name__}: {exc}"}))
        return 0
    out = {}
    for item in spec:
        obj = getattr(loaded, item["name"], None)
        kind = "class" if isinstance(obj, type) else "function"
        try:
            if item.get("backbone"):
                out[item["name"]] = {"kind": kind, **backbone(obj, torch)}
            elif item.get("rule") is None and builds_a_backbone(obj, torch):
                out[item["name"]] = {"kind": kind, "as_backbone": True, **backbone(obj, torch)}
            else:
                out[item["name"]] = {"kind": kind, **module(obj, item.get("rule"), torch)}
        except BaseException as exc:  # noqa: BLE001
            out[item["name"]] = {"kind": kind, "error": f"{type(exc).__name__}: {str(exc)[:400]}"}
    print(json.dumps({"candidates": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
