"""Capture what the commands print and write on every release of the test set, to compare two versions of the tool.

For each release in ``tests/conftest.py`` ``RELEASES``, on a fresh copy of its ``ultralytics/`` (from the
cached wheel), with ``RTDETR_PATCH_HOME`` in a temporary folder, it runs in fresh processes::

    apply --dry-run; apply --no-verify; check --static; check --static --json; apply --no-verify (again);
    revert; apply --no-verify + revert --json; check --static --target /nonexistent

and keeps each one's stdout, stderr and exit code, with temporary paths, store keys and timestamps
normalised, plus the sha256 of every file the apply changed or added. A refactor that must not change
behaviour is checked by saving a capture before and comparing after::

    python benchmarks/compare_outputs.py save /tmp/before.json
    python benchmarks/compare_outputs.py compare /tmp/before.json    # exit 1 and the differences if any

The commands run with the working directory outside the repository, through this interpreter's
``python -m rtdetr_patch``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import RELEASES, wheel


def _normalise(text: str, root: Path) -> str:
    text = text.replace(str(root), "<TMP>").replace(str(root.resolve()), "<TMP>")
    text = re.sub(r"installs[/\\][0-9a-f]{16}", "installs/<KEY>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d[:-]\d\d[:-]\d\d(\+00[:-]00)?", "<TIME>", text)
    return text


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def capture_release(release: str, work: Path) -> dict:
    root = work / release
    with zipfile.ZipFile(wheel(release)) as zf:
        zf.extractall(root, [n for n in zf.namelist() if n.startswith("ultralytics/")])
    target = str(root / "ultralytics")
    env = {**os.environ, "RTDETR_PATCH_HOME": str(work / f"home-{release}"), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("RTDETR_PATCH_KILL_AT", None)
    env.pop("RTDETR_PATCH_INTERRUPT_AT", None)
    runs: dict = {}

    def run(label: str, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "rtdetr_patch", *args], capture_output=True, text=True, env=env, cwd=str(work)
        )
        runs[label] = {
            "rc": done.returncode,
            "stdout": _normalise(done.stdout, work),
            "stderr": _normalise(done.stderr, work),
        }

    pristine = _digests(root / "ultralytics")
    run("apply --dry-run", "apply", "--target", target, "--dry-run")
    run("apply --no-verify", "apply", "--target", target, "--no-verify")
    patched = _digests(root / "ultralytics")
    run("check --static", "check", "--target", target, "--static")
    run("check --static --json", "check", "--target", target, "--static", "--json")
    run("apply --no-verify (again)", "apply", "--target", target, "--no-verify")
    run("revert", "revert", "--target", target)
    reverted = _digests(root / "ultralytics")
    run("apply --no-verify (re-apply)", "apply", "--target", target, "--no-verify")
    run("revert --json", "revert", "--target", target, "--json")
    run("check --static --target /nonexistent", "check", "--static", "--target", str(work / "nonexistent"))
    return {
        "runs": runs,
        "patched_files": {k: v for k, v in patched.items() if pristine.get(k) != v},
        "revert_restores_pristine": reverted == pristine,
    }


def capture(releases) -> dict:
    with tempfile.TemporaryDirectory(prefix="rtdetr-compare-") as tmp:
        return {release: capture_release(release, Path(tmp)) for release in releases}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("save", "compare"))
    parser.add_argument("file", type=Path)
    parser.add_argument("--release", action="append", help="only these releases (default: the test set's nine)")
    args = parser.parse_args()
    got = capture(args.release or RELEASES)
    if args.mode == "save":
        args.file.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"saved {len(got)} releases to {args.file}")
        return 0
    want = json.loads(args.file.read_text(encoding="utf-8"))
    differences = 0
    for release, now in got.items():
        before = want.get(release)
        if before is None:
            print(f"{release}: not in {args.file}")
            differences += 1
            continue
        for key in sorted(set(before["runs"]) | set(now["runs"])):
            if before["runs"].get(key) != now["runs"].get(key):
                differences += 1
                print(
                    f"--- {release} {key}\nbefore: {json.dumps(before['runs'].get(key), indent=1)}\n"
                    f"now:    {json.dumps(now['runs'].get(key), indent=1)}"
                )
        for key in ("patched_files", "revert_restores_pristine"):
            if before[key] != now[key]:
                differences += 1
                print(f"--- {release} {key} differs")
    runs = sum(len(r["runs"]) for r in got.values())
    print(f"{len(got)} releases, {runs} runs: {'identical' if not differences else f'{differences} differences'}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
