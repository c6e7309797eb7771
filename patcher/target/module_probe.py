"""The ``--module`` preflight: import a user's file and check each name, in the target interpreter.

Started by ``runner.py`` as ``python module_probe.py ROOT FILE SPEC`` (``ROOT`` holds the ``ultralytics``
to import, ``SPEC`` is a JSON file ``{"names": [{"name", "rule", "backbone"}], "yaml": ...}``, ``yaml`` the
``--yaml`` to read rows from, or null: ``{"path", "scale", "rules", "backbones"}`` with the rules of every
``--module`` name) with the file's folder as the working directory. Its answer is one line, ``PREFIX`` then
JSON: ``{"import": ..., "missing": ...}`` when the file does not import, else ``{"candidates": {name: entry}}``.

The file is imported as the module it will be once copied, ``ultralytics.nn.Addmodules.<stem>``, so
``from ..modules import Conv`` resolves to ``ultralytics.nn.modules`` as it will there; on an install
without the added package yet, a bare package of that name stands in, whose path is the folder the
package will have (so a relative import of a file that will not be there fails here too).

A backbone (``rule`` "backbone") is built with default arguments (or its factory called), run once
at 640x640, and reported with its maps' channels and strides and the globals a checkpoint of it
holds. Any other module is built under its rule at probe widths (``target_common.probe_plan``: the
widths of the yaml's rows that name it, the default 64 -> 128, equal widths, an image's 3 channels),
as ``parse_model`` would build a row without arguments of its own, run once, and its output width
measured against the width the rule records; the first build that fits wins, and every try is
reported. A module without a rule gets the one its constructor's parameters (and the yaml's rows)
imply. ``{"ultralytics": ...}`` says that the install itself does not import.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import inspect
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence

import target_common as common  # beside this file: the script's folder is first on sys.path


def load(root: str, path: str):
    """Import the file as ``ultralytics.nn.Addmodules.<stem>``, the module it will be once copied."""
    import ultralytics.nn  # the relative imports' parent (imported by main, before the file)

    package = sys.modules.get(common.ADDED_PACKAGE)
    if package is None:  # not patched yet: a bare package where it will be, so `..` is ultralytics.nn
        where = os.path.join(os.path.dirname(ultralytics.nn.__file__), common.ADDED_PACKAGE.rsplit(".", 1)[1])
        spec = importlib.machinery.ModuleSpec(common.ADDED_PACKAGE, None, is_package=True)
        spec.submodule_search_locations = [where]
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [where]
        sys.modules[common.ADDED_PACKAGE] = package
        setattr(ultralytics.nn, common.ADDED_PACKAGE.rsplit(".", 1)[1], package)
    staged = stage(json.loads(os.environ.get(common.STAGE_ENV) or "[]"))
    if staged:  # this apply's files and rtdetr-patch's own, found first: relative imports resolve as once copied
        package.__path__ = [staged, *[p for p in package.__path__ if p != staged]]
    stem = os.path.splitext(os.path.basename(path))[0]
    name = f"{common.ADDED_PACKAGE}.{stem}"
    found = importlib.util.spec_from_file_location(name, path)
    if found is None or found.loader is None:
        raise ImportError(f"{path} cannot be imported as {name}", name=name)
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module  # as an imported module is: registries such as timm's look it up
    found.loader.exec_module(module)
    setattr(package, stem, module)
    return module


def stage(files: list[str]) -> str | None:
    """A temporary folder holding ``files`` under their names: what nn/Addmodules will hold after this apply."""
    if not files:
        return None
    import atexit
    import shutil

    folder = tempfile.mkdtemp(prefix="rtdetr-patch-stage-")
    atexit.register(shutil.rmtree, folder, True)
    for file in files:
        if os.path.isfile(file):
            shutil.copyfile(file, os.path.join(folder, os.path.basename(file)))
    return folder


def params_of(obj) -> tuple[list[str], tuple[str, ...]]:
    """The positional parameter names a row's arguments fill (``self`` and ``*args``/``**kwargs`` left out), and
    those of them whose default is ``None``."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return [], ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = [p for p in signature.parameters.values() if p.kind in kinds]
    return [p.name for p in params], tuple(p.name for p in params if p.default is None)


def needs_arguments(exc: BaseException) -> bool:
    return isinstance(exc, TypeError) and "required" in str(exc) and "argument" in str(exc)


def first_tensor(out, torch):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def backbone(obj, torch) -> dict:
    entry: dict = {}
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
    external = sorted(
        f"{mod}.{qual}"
        for mod, qual in classes
        if not mod.startswith((common.ADDED_PACKAGE + ".", "torch.nn.modules")) and "<locals>" not in qual
    )
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
    except BaseException:  # anything else is not a backbone built this way
        return False
    return isinstance(net, torch.nn.Module) and any(getattr(net, a, None) is not None for a in common.CONTRACT)


def module(obj, rule: str | None, torch, rows: Sequence[dict] = ()) -> dict:
    """Build ``obj`` under its rule at each of the probe plan's widths until one fits; its output width measured."""
    params, optional = params_of(obj)
    entry: dict = {"params_names": params, "rule": rule, "inferred": rule is None}
    if rule is None:
        rule, why = common.rule_from_params(params, optional, [r["args"] for r in rows] or None)
        entry["rule"], entry["why"] = rule, why
        if rule is None:
            return entry
    if rule in ("head", "block"):
        entry["probe"] = (
            "a head is built by the yaml rows that name it"
            if rule == "head"
            else "a block is built by the Blocks rows that name it"
        )
        return entry
    entry["binds"] = binds(obj, params)
    tries = []
    for widths, out, source in common.probe_plan(rule, rows):
        result = probe(obj, rule, widths, out, torch)
        result["source"] = source
        tries.append(result)
        if "needs_args" in result or result.get("measured") == result.get("expected") is not None:
            break
    fits = next((t for t in tries if "measured" in t and t["measured"] == t["expected"]), None)
    chosen = fits or next((t for t in tries if "measured" in t), tries[0])  # a measured width says most
    for key in (
        "needs_args",
        "build_error",
        "forward_error",
        "measured",
        "expected",
        "probe_call",
        "probe_inputs",
        "probe_out",
        "params",
    ):
        if key in chosen:
            entry[key] = chosen[key]
    entry["probe_source"] = chosen["source"]
    entry["tries"] = [
        {
            k: t[k]
            for k in (
                "source",
                "probe_call",
                "probe_inputs",
                "measured",
                "expected",
                "build_error",
                "forward_error",
                "needs_args",
            )
            if k in t
        }
        for t in tries
    ]
    if fits is not None:
        entry.update(held_globals(fits.pop("net"), torch))
    return entry


def binds(obj, params: list[str]) -> list[str]:
    """The rules whose probe arguments the constructor accepts (a refusal suggests only these). A constructor
    without named parameters (``*args`` or none) accepts only the rules that pass it nothing."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return list(common.RULES)
    fitting = []
    for rule in common.SINGLE + common.MULTI:
        args = common.probe_args(rule, common.probe_widths(rule), common.PROBE_OUT) if rule != "head" else [1, [1]]
        if args and not params:
            continue
        try:
            signature.bind(*args)
        except TypeError:
            continue
        fitting.append(rule)
    return fitting


def probe(obj, rule: str, widths: list[int], out: int, torch) -> dict:
    """One build of ``obj`` under ``rule`` at ``widths`` (and ``out``), run once at 32x32."""
    args = common.probe_args(rule, widths, out)
    call = f"{obj.__name__}({', '.join(map(repr, args))})"
    result = {"probe_call": call, "probe_inputs": widths, "probe_out": out}
    try:
        net = obj(*args)
    except BaseException as exc:  # every failure is reported to the parent
        result["needs_args" if needs_arguments(exc) else "build_error"] = f"{call}: {type(exc).__name__}: {exc}".rstrip(
            ": "
        )[:500]
        return result
    if not isinstance(net, torch.nn.Module):
        result["build_error"] = f"{call} returns {type(net).__name__}, not a torch.nn.Module"
        return result
    result["params"] = sum(p.numel() for p in net.parameters())
    size = common.PROBE_SIZE
    inputs = [torch.rand(1, w, size, size) for w in widths]
    try:
        net.eval()
        with torch.no_grad():
            y = first_tensor(net(inputs[0] if rule in common.SINGLE else inputs), torch)
    except BaseException as exc:
        result["forward_error"] = (
            f"{call} on {'x'.join(map(str, (1, widths[0], size, size)))} inputs: {type(exc).__name__}: {exc}".rstrip(
                ": "
            )[:500]
        )
        return result
    if y is None or y.ndim != 4:
        result["forward_error"] = f"{call} returned {type(y).__name__}, not a feature map"
        return result
    result["measured"] = int(y.shape[1])
    result["expected"] = common.expected_width(rule, widths, out)
    result["net"] = net
    return result


def yaml_rows(yaml_spec: dict | None, spec: list[dict], loaded) -> dict:
    """The rows of the ``--yaml`` that name each module (``target_common.yaml_rows``); {} without one.

    Twice: the rows' arguments first, which the rule of a module without one may depend on (an optional output
    width), then the widths, which follow the rules."""
    if not yaml_spec:
        return {}
    try:
        import yaml

        with open(yaml_spec["path"], encoding="utf-8") as handle:
            model = yaml.safe_load(handle)
        rules = dict(yaml_spec.get("rules") or {})
        rules.update((item["name"], item.get("rule")) for item in spec if not item.get("backbone"))
        scale, stops = yaml_spec.get("scale"), tuple(yaml_spec.get("backbones") or ())
        rows = common.yaml_rows(model, rules, scale, stops)
        for name, rule in list(rules.items()):
            obj = getattr(loaded, name, None)
            if rule is None and obj is not None:
                args = [r["args"] for r in rows.get(name, [])] or None
                rules[name] = common.rule_from_params(*params_of(obj), args)[0]
        return common.yaml_rows(model, rules, scale, stops)
    except Exception:  # a yaml that does not read is the smoke run's to report
        return {}


def answer(found: dict) -> int:
    """Print the answer line (one write: nothing the file prints can split it)."""
    sys.stdout.write(common.PREFIX + json.dumps(found) + "\n")
    sys.stdout.flush()
    return 0


def main() -> int:
    root, path = sys.argv[1], sys.argv[2]
    with open(sys.argv[3], encoding="utf-8") as given:
        spec = json.load(given)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))  # the file's own absolute sibling imports
    sys.path.insert(0, root)
    try:
        import torch
    except BaseException as exc:
        return answer({"import": f"{type(exc).__name__}: {exc}", "missing": getattr(exc, "name", None)})
    try:
        import ultralytics.nn  # noqa: F401 - on a patched install this imports the added package and its files too
    except BaseException as exc:  # the install, not the user's file, is broken
        return answer({"ultralytics": f"{type(exc).__name__}: {exc}"[:800]})
    try:
        loaded = load(root, path)
    except ModuleNotFoundError as exc:
        return answer({"import": f"{type(exc).__name__}: {exc}", "missing": exc.name})
    except BaseException as exc:
        return answer({"import": f"{type(exc).__name__}: {exc}"})
    names = spec["names"]
    rows = yaml_rows(spec.get("yaml"), names, loaded)
    return answer({"candidates": {item["name"]: candidate(loaded, item, torch, rows) for item in names}})


def candidate(loaded, item: dict, torch, rows: dict) -> dict:
    """One name of the file, checked: as a backbone, or as a module under its rule."""
    obj = getattr(loaded, item["name"], None)
    kind = "class" if isinstance(obj, type) else "function"
    try:
        if item.get("backbone"):
            return {"kind": kind, **backbone(obj, torch)}
        if item.get("rule") is None and builds_a_backbone(obj, torch):
            return {"kind": kind, "as_backbone": True, **backbone(obj, torch)}
        return {"kind": kind, **module(obj, item.get("rule"), torch, rows.get(item["name"], []))}
    except BaseException as exc:
        return {"kind": kind, "error": f"{type(exc).__name__}: {str(exc)[:400]}"}


if __name__ == "__main__":
    sys.exit(main())
