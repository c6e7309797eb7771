"""``adopt --from`` on real forks: what is carried, how many of their yamls build on the target, how long it takes.

    python benchmarks/bench_adopt.py FORK_DIR [FORK_DIR ...] [--release 8.4.190]

Each fork (a checkout holding ``ultralytics/``, e.g. ``git clone`` of johnvonueman/my_rtdetr) is
carried, as a dry run, onto a fresh pristine tree of ``--release`` (extracted from its wheel, pip
downloads it once into the tool's cache), with this Python as the interpreter that builds. The
forks' own files often need packages of their own (torchsummary, mmengine, PyWavelets): install
them first, or the yamls will not build in the fork either. Prints, per fork: names found,
carried (by rule) and not carried (why), files carried, yamls that build in the fork and on the
target, the same parameters, and seconds. The figures in docs/adopt.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, as run from the repository

from rtdetr_patch.patcher.install.pristine import cache_home, pristine_package

from rtdetr_patch import api


def target_tree(release: str, into: Path) -> Path:
    pristine_package(release)  # downloads the wheel once into the cache
    wheel = sorted((cache_home() / "wheels").glob(f"ultralytics-{release}-*.whl"))[0]
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(into, [n for n in archive.namelist() if n.startswith("ultralytics/")])
    return into


def task_of(data: bytes) -> str:
    """The task Ultralytics guesses from a model yaml's last head row (``guess_model_task``'s reading of it)."""
    import yaml

    try:
        head = (yaml.safe_load(data) or {}).get("head") or []
        module = str(head[-1][-2]).lower()
    except (yaml.YAMLError, AttributeError, IndexError, KeyError, TypeError):
        return "detect"
    if module in {"classify", "classifier", "cls", "fc"}:
        return "classify"
    for task in ("detect", "segment", "pose", "obb"):
        if task in module:
            return task
    return "detect"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("forks", nargs="+")
    parser.add_argument("--release", default="8.4.190")
    args = parser.parse_args()
    for fork in args.forks:
        with tempfile.TemporaryDirectory() as scratch:
            os.environ["RTDETR_PATCH_HOME"] = str(Path(scratch) / "state")  # a record of its own, thrown away
            target = target_tree(args.release, Path(scratch) / "target")
            started = time.perf_counter()
            result = api.adopt(target=str(target), source=fork, dry_run=True, python=sys.executable)
            seconds = time.perf_counter() - started
        s = result.summary
        rules = Counter(n.get("rule") for n in result.names if n["status"] == "carried")
        print(f"\n{fork} (Ultralytics {result.source_release}) onto {args.release}, {seconds:.0f} s")
        print(
            f"  names: {s['names']} found, {s['carried']} carried ({', '.join(f'{r} {c}' for r, c in rules.most_common())}),"
            f" {Counter(n['status'] for n in result.names)['ours']} built by rtdetr-patch's own,"
            f" {Counter(n['status'] for n in result.names)['native']} native"
        )
        for n in result.names:
            if n["status"] == "not carried":
                print(f"    not carried: {n['name']}: {n['why']}")
        print(f"  files carried: {sum(f['status'] == 'carried' for f in result.files)} of {len(result.files)}")
        share = 100 * s["build_on_target"] / s["build_in_source"] if s["build_in_source"] else 0
        print(
            f"  yamls: {s['yamls']} carried, {s['build_in_source']} build in the fork, {s['build_on_target']} of those "
            f"on the target ({share:.0f}%), {s['same_params']} with the same parameters"
        )
        package = Path(result.source) if getattr(result, "source", None) else None
        tasks = {}
        for y in result.yamls:
            path = (package / y["path"]) if package else None
            tasks[y["path"]] = task_of(path.read_bytes()) if path and path.is_file() else "detect"
        detect = [y for y in result.yamls if tasks[y["path"]] == "detect" and "params" in (y.get("source") or {})]
        on_target = sum("params" in (y.get("target") or {}) for y in detect)
        print(
            f"  detection yamls: {len(detect)} build in the fork, {on_target} of those on the target "
            f"({100 * on_target / len(detect) if detect else 0:.0f}%)"
        )
        for y in result.yamls:
            if "params" in (y.get("source") or {}) and "params" not in (y.get("target") or {}):
                print(f"    fails on the target: {y['path']}: {y['target'].get('error', '')[:160]}")


if __name__ == "__main__":
    main()
