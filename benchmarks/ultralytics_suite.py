"""Ultralytics' own test suite as referee: does a patched release behave like the pristine one?

Takes the release's source distribution (it ships ``tests/``) from pip, extracts its ``ultralytics/``
twice, patches one copy with ``python -m rtdetr_patch apply --target <copy> --no-verify --force``, runs the
release's tests against each copy in turn (offline unless --online, each with its own HOME, config and
working folder) and compares the per-test outcomes, and the messages of the tests that fail on both. The
tests that differ are run once more, alone, on both copies.
Exit 0 when no test that passes on the pristine copy fails, errors or goes missing on the patched one;
1 when one does; 2 when the set-up fails. Takes minutes, not a CI test.

    .venv/bin/python benchmarks/ultralytics_suite.py [--release 8.4.190] [--cache DIR] [-k EXPR]
                                                     [--timeout 300] [--online] [--no-rerun] [--keep]

Results: benchmarks/results/ultralytics_suite-<release>.json (-subset.json for a -k run).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SIDES = ("pristine", "patched")
RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}  # the worst wins when a test reports twice
KEPT = {"ultralytics", "tests", "pyproject.toml", "setup.cfg", "pytest.ini"}  # the code, its tests, pytest config


def die(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def fetch_sdist(release: str, cache: Path) -> Path:
    """The release's sdist from the cache; else pip downloads it (build isolation first, then without)."""

    def found() -> list[Path]:
        return sorted(cache.glob(f"ultralytics-{release}.tar.gz"))

    if not found():
        cache.mkdir(parents=True, exist_ok=True)
        pip = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary=:all:",
            "-d",
            str(cache),
            f"ultralytics=={release}",
        ]
        for extra in ([], ["--no-build-isolation"]):
            if subprocess.run(pip + extra).returncode == 0 and found():
                break
    if not found():
        die(f"no source distribution of ultralytics {release} in {cache} and pip could not get it")
    return found()[0]


def extract(archive: Path, dest: Path) -> None:
    """``ultralytics/``, ``tests/`` and the pytest settings from the sdist, without its top folder, into dest."""
    with tarfile.open(archive) as tf:
        members = []
        for member in tf.getmembers():
            parts = member.name.split("/", 1)
            if len(parts) == 2 and parts[1].split("/")[0] in KEPT:
                member.name = parts[1]
                members.append(member)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tf.extractall(dest, members, **safe)
    if not (dest / "tests").is_dir():
        die(f"{archive.name} has no tests/ folder")


def apply_patch(tree: Path, state: Path) -> str:
    env = {**os.environ, "RTDETR_PATCH_HOME": str(state), "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtdetr_patch",
            "apply",
            "--target",
            str(tree / "ultralytics"),
            "--no-verify",
            "--force",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
    )
    if done.returncode != 0:
        print(done.stdout, done.stderr, sep="\n")
        die(f"rtdetr-patch apply failed (exit {done.returncode})")
    return done.stdout


def tree_diff(a: Path, b: Path) -> dict[str, list[str]]:
    """What the patch changed: files (relative to the package) changed, added, removed."""
    files = [{p.relative_to(t).as_posix() for p in t.rglob("*") if p.is_file()} for t in (a, b)]
    return {
        "changed": sorted(r for r in files[0] & files[1] if (a / r).read_bytes() != (b / r).read_bytes()),
        "added": sorted(files[1] - files[0]),
        "removed": sorted(files[0] - files[1]),
    }


def project_state() -> str:
    """This project's commit, and whether the patch code differs from it (the results hold for that code)."""
    git = ["git", "-C", str(REPO)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "patcher", "patches", "templates"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + (" with uncommitted changes" if dirty else "")


def side_env(root: Path, home: Path, online: bool) -> dict[str, str]:
    """The copy first on the path, a private home and Ultralytics config, offline, no auto-install."""
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for name in ("PYTEST_ADDOPTS", "YOLO_OFFLINE"):
        env.pop(name, None)
    env.update(
        PYTHONPATH=str(root),
        HOME=str(home),
        USERPROFILE=str(home),
        APPDATA=str(home / "AppData"),
        LOCALAPPDATA=str(home / "AppData"),
        YOLO_CONFIG_DIR=str(home / "Ultralytics"),
        RTDETR_PATCH_HOME=str(home / "rtdetr-patch"),
        YOLO_AUTOINSTALL="False",
        PYTHONDONTWRITEBYTECODE="1",
        MPLBACKEND="Agg",
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )  # `yolo` of this env
    if not online:
        env["YOLO_OFFLINE"] = "1"
    return env


def check_import(root: Path, env: dict[str, str]) -> str:
    """Fail unless `import ultralytics` in a fresh process with env resolves to root's copy (run from the
    private home, so that it is PYTHONPATH, not the working folder, that finds it)."""
    done = subprocess.run(
        [sys.executable, "-c", "import ultralytics; print(ultralytics.__file__)"],
        cwd=env["HOME"],
        env=env,
        capture_output=True,
        text=True,
    )
    lines = done.stdout.strip().splitlines() if done.returncode == 0 else []
    where = Path(lines[-1]).resolve() if lines else None
    if where is None or not where.is_relative_to((root / "ultralytics").resolve()):
        die(f"`import ultralytics` in {root} gives {where}: {done.stderr[-500:]}")
    return str(where.parent)


def outcomes(report: Path) -> dict[str, dict[str, str]]:
    """nodeid -> outcome and message, from a junit report (xunit1, so test cases carry their file)."""
    results: dict[str, dict[str, str]] = {}
    for case in ET.parse(report).iter("testcase"):
        file = (case.get("file") or "").replace("\\", "/")
        module, classname = file[:-3].replace("/", "."), case.get("classname", "")
        inner = classname[len(module) + 1 :] if file and classname.startswith(module + ".") else ""
        head = file if file and (inner or classname == module) else classname
        nodeid = "::".join([head, *filter(None, inner.split(".")), case.get("name", "")])
        outcome, message, text = "passed", "", ""
        for child in case:
            kind = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(child.tag)
            if kind and RANK[kind] > RANK[outcome]:
                outcome, message, text = kind, child.get("message") or "", child.text or ""
        old = results.get(nodeid)
        if old is None or RANK[outcome] > RANK[old["outcome"]]:
            results[nodeid] = {"outcome": outcome, "message": message, "text": text[-4000:]}
    return results


def run_tests(root: Path, env: dict[str, str], name: str, args, targets: list[str]) -> dict:
    """The release's tests on one copy, working folder root, log and junit report beside it."""
    report, log = root.parent / f"{name}.xml", root.parent / f"{name}.log"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        "-p",
        "no:cacheprovider",
        "-q",
        "--color=no",
        f"--junitxml={report}",
        "-o",
        "junit_family=xunit1",
    ]
    if importlib.util.find_spec("pytest_timeout"):
        cmd += ["--timeout", str(args.timeout)]
    if args.k and targets == ["tests"]:
        cmd += ["-k", args.k]
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        rc = subprocess.run(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = round(time.perf_counter() - start, 1)
    results = outcomes(report) if report.is_file() else {}
    counts = Counter(r["outcome"] for r in results.values())
    print(f"  {name:<18} exit {rc}, {seconds:7.1f} s  " + ", ".join(f"{counts[k]} {k}" for k in RANK))
    if not results:
        print(f"  no junit report; the end of {log}:\n" + log.read_text(encoding="utf-8", errors="replace")[-3000:])
    return {
        "exit_code": rc,
        "seconds": seconds,
        "counts": {k: counts[k] for k in RANK},
        "tests": results,
        "log": log.read_text(encoding="utf-8", errors="replace")[-20000:],
    }


def short(result: dict | None) -> str:
    if result is None:
        return "missing"
    first = (result["message"].strip().splitlines() or [""])[0]
    return result["outcome"] + (f": {first[:240]}" if first and result["outcome"] != "passed" else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default=version("ultralytics"), help="default: the installed release")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "rtdetr-patch" / "sdists")
    parser.add_argument("-k", dest="k", metavar="EXPR", help="passed to pytest: run a subset")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per test (with pytest-timeout)")
    parser.add_argument("--online", action="store_true", help="let the tests download weights and data sets")
    parser.add_argument("--no-rerun", action="store_true", help="do not rerun the differing tests alone")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if not args.release:
        parser.error("no ultralytics installed here: give --release")
    if not importlib.util.find_spec("pytest_timeout"):
        print("note: pytest-timeout is not installed, so a hung test stalls the run (pip install pytest-timeout)")
    started = time.perf_counter()
    archive = fetch_sdist(args.release, args.cache.expanduser())
    work = Path(tempfile.mkdtemp(prefix="rtdetr-suite-"))
    try:
        roots = {side: work / side / "root" for side in SIDES}
        extract(archive, roots["pristine"])
        shutil.copytree(roots["pristine"], roots["patched"])
        applied = apply_patch(roots["patched"], work / "state")
        diff = tree_diff(roots["pristine"] / "ultralytics", roots["patched"] / "ultralytics")
        state = project_state()
        print(
            f"rtdetr-patch {state}; Ultralytics {args.release} from {archive.name}; Python "
            f"{platform.python_version()}, torch {version('torch')}, pytest {version('pytest')}; work folder {work}"
        )
        print(
            f"patch: {len(diff['changed'])} file(s) changed, {len(diff['added'])} added, {len(diff['removed'])} removed"
        )
        envs = {side: side_env(roots[side], work / side / "home", args.online) for side in SIDES}
        for side in SIDES:
            print(f"  {side}: imports ultralytics from {check_import(roots[side], envs[side])}")
        print("running tests/" + (f" -k {args.k!r}" if args.k else "") + " (pytest output in the work folder)")
        runs = {side: run_tests(roots[side], envs[side], side, args, ["tests"]) for side in SIDES}
        a, b = (runs[side]["tests"] for side in SIDES)
        differing = [
            n for n in sorted(a.keys() | b.keys()) if (a.get(n) or {}).get("outcome") != (b.get(n) or {}).get("outcome")
        ]
        alone = {}
        if differing and not args.no_rerun:
            print(f"rerunning the {len(differing)} differing test(s) alone on each copy")
            alone = {
                side: run_tests(roots[side], envs[side], f"{side}-alone", args, differing)["tests"] for side in SIDES
            }

        def said(side: str, n: str) -> str:  # the failure message, without the copy's own path
            return runs[side]["tests"][n]["message"].replace(str(roots[side]), "<root>")

        reworded = sorted(
            n
            for n in a.keys() & b.keys()
            if a[n]["outcome"] in ("failed", "error")
            and a[n]["outcome"] == b[n]["outcome"]
            and said("pristine", n) != said("patched", n)
        )
        regressions = [
            n
            for n in differing
            if (a.get(n) or {}).get("outcome") == "passed"
            and (b.get(n) or {}).get("outcome") in (None, "failed", "error")
        ]
        print(f"\n{'':<10}" + "".join(f"{k:>9}" for k in RANK))
        for side in SIDES:
            print(f"{side:<10}" + "".join(f"{runs[side]['counts'][k]:>9}" for k in RANK))
        print(f"\n{len(differing)} test(s) differ, {len(regressions)} pass on pristine but not on patched")
        for n in differing:
            print(
                f"{'REGRESSION ' if n in regressions else ''}{n}\n  pristine: {short(a.get(n))}\n"
                f"  patched:  {short(b.get(n))}"
            )
            if alone:
                print(
                    f"  alone:    pristine {short(alone['pristine'].get(n))} | patched {short(alone['patched'].get(n))}"
                )
        print(f"{len(reworded)} test(s) fail on both sides with different messages")
        for n in reworded:
            print(f"{n}\n  pristine: {short(a[n])}\n  patched:  {short(b[n])}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"ultralytics_suite-{args.release}{'-subset' if args.k else ''}.json"
        out.write_text(
            json.dumps(
                {
                    "release": args.release,
                    "sdist": archive.name,
                    "k": args.k,
                    "timeout": args.timeout,
                    "online": args.online,
                    "rtdetr_patch": state,
                    "apply_output": applied,
                    "python": platform.python_version(),
                    "torch": version("torch"),
                    "platform": platform.platform(),
                    "seconds": round(time.perf_counter() - started, 1),
                    "patch": diff,
                    "sides": runs,
                    "differing": [
                        {
                            "test": n,
                            **{s: (r.get(n) or {"outcome": "missing"}) for s, r in zip(SIDES, (a, b))},
                            "alone": {s: (alone[s].get(n) or {"outcome": "missing"}) for s in alone},
                        }
                        for n in differing
                    ],
                    "regressions": regressions,
                    "reworded": reworded,
                },
                indent=1,
            ),
            encoding="utf-8",
        )
        print(f"\nwall time {time.perf_counter() - started:.0f} s; results in {out}")
        return 1 if regressions else 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
