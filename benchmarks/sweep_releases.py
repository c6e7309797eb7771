"""The static round trip of rtdetr-patch on every Ultralytics release, and docs/compatibility.md.

For each release (every final, non-yanked one from 8.0.136 to 8.4.190 by default), in a worker
process with its own private record store (``RTDETR_PATCH_HOME`` in a temporary folder):

1. ``extract``  only ``ultralytics/`` from the release's wheel into a temporary folder; hash every file;
2. ``apply``    ``apply(target=..., no_verify=True)``: the state of each transform is recorded;
3. ``compile``  every patched and added ``.py`` file must compile;
4. ``check``    ``check(target=..., static=True)`` must pass, with the states ``apply`` reported, and its
   answer (read off the record) must equal a full check that plans every file again;
5. ``reapply``  a second ``apply`` must say ``already`` and change no byte;
6. ``revert``   must give back every file byte for byte, and leave no other file (``__pycache__`` aside).

No torch, no model build: it tests the source transforms, not the training. Wheels come from
``~/.cache/rtdetr-patch/wheels`` (``RTDETR_PATCH_WHEEL_CACHE`` moves it); a missing one is fetched
with ``pip download --no-deps``. The release list is the wheel cache plus, when it answers, PyPI.
Each result is appended to ``~/.cache/rtdetr-patch/sweep/results-<tool version>.jsonl`` as it comes,
so an interrupted sweep resumes where it stopped; ``--fresh`` runs cached releases again (do so after
changing a transform: the version does not change with every edit). The report, ``--out``, covers
every release that has a cached result.

    .venv/bin/python benchmarks/sweep_releases.py                      # all of them, os.cpu_count() workers
    .venv/bin/python benchmarks/sweep_releases.py --releases 8.1.0,8.3.0 --fresh
    .venv/bin/python benchmarks/sweep_releases.py --range 8.2.0:8.2.103 --workers 1
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
WHEELS = Path(os.environ.get("RTDETR_PATCH_WHEEL_CACHE") or Path.home() / ".cache" / "rtdetr-patch" / "wheels")
RESULTS = Path.home() / ".cache" / "rtdetr-patch" / "sweep"
PYPI = "https://pypi.org/pypi/ultralytics/json"
FIRST, LAST = "8.0.136", "8.4.190"
FINAL = re.compile(r"\d+(\.\d+)*$")  # a final release: no rc, dev or post suffix
# What was found out by hand about a release whose outcome is not a fault of the transforms.
UPSTREAM = {
    "8.0.179": "expected: this wheel was published without any model yaml (124 files in ultralytics/ "
    "against 162 in 8.0.178 and 8.0.180), and 8.0.180 replaced it 35 minutes later; "
    "its three patched files equal its neighbours', which pass"
}


def vkey(release: str) -> tuple[int, ...]:
    return tuple(int(p) for p in release.split("."))


def wheel_path(release: str) -> Path:
    return WHEELS / f"ultralytics-{release}-py3-none-any.whl"


def known_releases() -> list[str]:
    """Final releases from the wheel cache and, when reachable, PyPI (which also tells the yanked ones)."""
    cached = {p.name.split("-")[1] for p in WHEELS.glob("ultralytics-*-py3-none-any.whl")}
    try:
        with urllib.request.urlopen(PYPI, timeout=15) as answer:
            files = json.load(answer)["releases"]
    except (OSError, ValueError) as exc:
        print(f"PyPI not reachable ({exc}); using the {len(cached)} cached wheels", file=sys.stderr)
        files = {}
    yanked = {r for r, fs in files.items() if fs and all(f.get("yanked") for f in fs)}
    listed = {r for r, fs in files.items() if any(f["packagetype"] == "bdist_wheel" for f in fs)}
    return sorted({r for r in (cached | listed) - yanked if FINAL.match(r)}, key=vkey)


def download(release: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            f"ultralytics=={release}",
            "-d",
            str(WHEELS),
        ],
        check=True,
        capture_output=True,
        text=True,
    )


def tool_sources() -> str:
    """A hash of the tool's code, stored with each result: tells results of an older code apart."""
    import rtdetr_patch.patcher as patcher
    import rtdetr_patch.patches as patches
    import rtdetr_patch.templates as templates

    h = hashlib.sha256()
    for package in (patcher, patches, templates):
        root = Path(package.__file__).parent
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


# ---- the worker ---------------------------------------------------------------------------------

_WORK: Path | None = None


def _init_worker(work: str) -> None:
    """Each worker: its own record store, set before rtdetr_patch is first imported."""
    global _WORK
    _WORK = Path(work)
    os.environ["RTDETR_PATCH_HOME"] = tempfile.mkdtemp(prefix="home-", dir=work)
    import rtdetr_patch.api  # noqa: F401  (imported once here, so that the timings leave it out)


class Failed(Exception):
    pass


def snapshot(package: Path) -> dict[str, str]:
    return {
        p.relative_to(package).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def differences(before: dict[str, str], after: dict[str, str]) -> str:
    parts = [
        (what, sorted(names))
        for what, names in (
            ("changed", [k for k in before.keys() & after.keys() if before[k] != after[k]]),
            ("missing", before.keys() - after.keys()),
            ("extra", after.keys() - before.keys()),
        )
        if names
    ]
    return "; ".join(f"{what}: {', '.join(names)}" for what, names in parts)


def sweep_one(release: str, wheel: str) -> dict:
    from rtdetr_patch.patcher.commands.check import inspect
    from rtdetr_patch.patcher.install.locate import locate

    from rtdetr_patch import PatchError, apply, check, revert

    record: dict = {
        "release": release,
        "outcome": "pass",
        "message": "",
        "transforms": {},
        "warnings": [],
        "seconds": {},
    }
    root = Path(tempfile.mkdtemp(prefix=f"{release}-", dir=_WORK))
    package, target = root / "ultralytics", str(root)
    stage, clock = "extract", time.perf_counter()

    def lap(next_stage: str) -> None:
        nonlocal stage, clock
        now = time.perf_counter()
        record["seconds"][stage] = round(now - clock, 3)
        stage, clock = next_stage, now

    try:
        with zipfile.ZipFile(wheel) as whl:
            whl.extractall(root, [n for n in whl.namelist() if n.startswith("ultralytics/")])
        pristine = snapshot(package)
        lap("apply")
        done = apply(target=target, no_verify=True)
        record["transforms"] = {t["name"]: t["state"] for t in done.transforms}
        record["warnings"] = done.warnings
        if not done.ok:
            raise Failed(f"exit {done.exit_code}: {done.error}")
        lap("compile")
        for rel in done.written + done.added:
            if rel.endswith(".py"):
                path = package / rel
                compile(path.read_bytes(), str(path), "exec")
        lap("check")
        report = check(target=target, static=True)
        if not report.ok:
            raise Failed(f"exit {report.exit_code}: " + " | ".join(report.problems or report.warnings))
        expected = {n: {"patched": "applied"}.get(s, s) for n, s in record["transforms"].items()}
        seen = {t["name"]: t["state"] for t in report.transforms}
        if seen != expected:
            raise Failed(f"check reports {seen}, apply reported {record['transforms']}")
        # That answer came from the record (every file as recorded); a full check plans again: same report.
        install = locate(target=target)
        if inspect(install, trust_record=True) != inspect(install, trust_record=False):
            raise Failed("the record's answer differs from a full check")
        lap("reapply")
        patched = snapshot(package)
        again = apply(target=target, no_verify=True)
        if not again.already or again.written or again.added:
            raise Failed(f"already={again.already}, written {again.written}, added {again.added}")
        if snapshot(package) != patched:
            raise Failed("the second apply changed " + differences(patched, snapshot(package)))
        lap("revert")
        revert(target=target)
        if snapshot(package) != pristine:
            raise Failed("not the pristine release: " + differences(pristine, snapshot(package)))
        lap("done")
    except PatchError as exc:
        record["outcome"] = f"fail: {stage}: exit {int(exc.code)}"
        record["message"] = exc.message + (f"\nhint: {exc.hint}" if exc.hint else "")
    except SyntaxError as exc:
        record["outcome"] = f"fail: {stage}: SyntaxError"
        record["message"] = f"{exc.filename}:{exc.lineno}: {exc.msg}\n{(exc.text or '').rstrip()}"
    except Exception as exc:  # a failure of this release, not of the sweep
        record["outcome"] = f"fail: {stage}" + ("" if isinstance(exc, Failed) else f": {type(exc).__name__}")
        record["message"] = str(exc)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(Path(os.environ["RTDETR_PATCH_HOME"]) / "installs", ignore_errors=True)
    record["message"] = record["message"].replace(str(root.resolve()), "<release>").replace(str(root), "<release>")
    record["total_s"] = round(sum(record["seconds"].values()), 3)
    return record


# ---- results and report -------------------------------------------------------------------------


def load(cache: Path) -> dict[str, dict]:
    results = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                results[record["release"]] = record  # the latest line of a release wins
    return results


def headline(record: dict) -> str:
    """The outcome with the message's first line, as the progress lines print it."""
    first = record["message"].splitlines()[0] if record["message"] else ""
    return record["outcome"] + (f": {first}" if first else "")


def write_report(out: Path, releases: list[str], results: dict[str, dict], version: str) -> None:
    done = [r for r in releases if r in results]
    fails = [r for r in done if results[r]["outcome"] != "pass"]
    rows: list[list] = []  # [first, last, count, outcome, patched, not needed]
    for r in done:
        states = results[r]["transforms"]
        key = (
            results[r]["outcome"],
            ", ".join(n for n, s in states.items() if s == "patched") or "—",
            ", ".join(n for n, s in states.items() if s == "not-needed") or "—",
        )
        if rows and tuple(rows[-1][3:]) == key:
            rows[-1][1], rows[-1][2] = r, rows[-1][2] + 1
        else:
            rows.append([r, r, 1, *key])
    lines = [
        "# Compatibility with Ultralytics releases",
        "",
        f"{dt.date.today().isoformat()}, rtdetr-patch {version}.",
        "",
        "How: without torch, for each release, its wheel's `ultralytics/` is extracted into a temporary folder "
        "and patched (`apply --no-verify`); every patched and added Python file must compile, `check --static` "
        "must pass, a second `apply` must find the patch in place and change no byte, and `revert` must give "
        "back every file byte for byte. This covers the source transforms on every release; training is "
        "covered on a few releases by the test suite. To run it again: `benchmarks/sweep_releases.py`.",
        "",
        f"**{len(done) - len(fails)} pass, {len(fails)} fail** out of {len(done)} releases "
        f"({done[0]} to {done[-1]}, final releases not yanked on PyPI)."
        if done
        else "No results yet.",
        "",
    ]
    if len(done) < len(releases):
        lines += [f"{len(releases) - len(done)} known releases have no result yet.", ""]
    lines += ["| releases | outcome | patched | not needed |", "| --- | --- | --- | --- |"]
    for first, last, count, outcome, patched, skipped in rows:
        span = first if first == last else f"{first} – {last}"
        lines.append(f"| {span} ({count}) | {outcome} | {patched} | {skipped} |")
    if fails:
        lines += ["", "## Failures", ""]
        lines += [
            f"- {r}: {results[r]['outcome']}: "
            + results[r]["message"].replace("\n", " ")
            + (f" ({UPSTREAM[r]})" if r in UPSTREAM else "")
            for r in fails
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


# ---- main ---------------------------------------------------------------------------------------


def select(known: list[str], args: argparse.Namespace) -> list[str]:
    if args.releases:
        wanted = [r.strip() for r in args.releases.split(",") if r.strip()]
        return sorted(wanted, key=vkey)
    lo, _, hi = args.range.partition(":")
    return [r for r in known if (not lo or vkey(r) >= vkey(lo)) and (not hi or vkey(r) <= vkey(hi))]


def run(todo: list[str], workers: int, cache: Path, sources: str, results: dict[str, dict], work: str) -> list[float]:
    """Sweep ``todo`` in ``workers`` processes; append each result to ``cache`` as it comes."""
    times: list[float] = []
    cache.parent.mkdir(parents=True, exist_ok=True)
    with (
        cache.open("a") as sink,
        cf.ProcessPoolExecutor(
            max(1, workers), mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(work,)
        ) as pool,
    ):
        jobs = [pool.submit(sweep_one, r, str(wheel_path(r))) for r in todo]
        try:
            for n, job in enumerate(cf.as_completed(jobs), 1):
                record = {**job.result(), "sources": sources, "when": dt.datetime.now().isoformat(timespec="seconds")}
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                results[record["release"]] = record
                times.append(record["total_s"])
                print(
                    f"[{n:>{len(str(len(todo)))}}/{len(todo)}] {record['release']:<9} {record['total_s']:6.2f} s  "
                    f"{headline(record)}",
                    flush=True,
                )
        except KeyboardInterrupt:
            pool.shutdown(cancel_futures=True)
            raise
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", help="comma-separated releases, e.g. 8.1.0,8.3.0 (overrides --range)")
    parser.add_argument("--range", default=f"{FIRST}:{LAST}", help="LO:HI, both included; an empty end is open")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--fresh", action="store_true", help="run releases that already have a cached result")
    parser.add_argument(
        "--cache", type=Path, help="results file (default ~/.cache/rtdetr-patch/sweep/results-<version>.jsonl)"
    )
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "compatibility.md", help="the report")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="rtdetr-sweep-")  # the workers' stores and release trees
    os.environ["RTDETR_PATCH_HOME"] = os.path.join(work, "home-main")  # never the user's store, here too
    from rtdetr_patch import __version__

    cache = args.cache or RESULTS / f"results-{__version__}.jsonl"
    sources = tool_sources()
    known = known_releases()
    chosen = select(known, args)
    results = load(cache)
    stale = sum(1 for r in chosen if r in results and results[r].get("sources") != sources)
    todo = [r for r in chosen if args.fresh or r not in results]
    print(
        f"rtdetr-patch {__version__} (sources {sources}): {len(chosen)} releases, {len(todo)} to run, "
        f"{args.workers} workers; results in {cache}"
    )
    if stale and not args.fresh:
        print(f"note: {stale} cached results come from other tool sources; --fresh runs them again")
    for r in todo:
        if not wheel_path(r).exists():
            print(f"downloading ultralytics {r}")
            try:
                download(r)
            except subprocess.CalledProcessError as exc:
                print(f"  no wheel for {r}: {exc.stderr.strip()}", file=sys.stderr)
    todo = [r for r in todo if wheel_path(r).exists()]

    start = time.perf_counter()
    try:
        times = run(todo, args.workers, cache, sources, results, work)
    except KeyboardInterrupt:
        print("interrupted: the results so far are cached; run again to resume")
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - start

    ran = [results[r] for r in chosen if r in results]
    failed = [x for x in ran if x["outcome"] != "pass"]
    print(
        f"\n{len(ran) - len(failed)} pass, {len(failed)} fail out of {len(ran)} releases"
        + (
            f"; this run: {len(times)} releases in {wall:.0f} s wall, median {statistics.median(times):.2f} s "
            "per release (worker time)"
            if times
            else ""
        )
    )
    for x in failed:
        print(f"  {x['release']}: {headline(x)}")
    default = set(select(known, parser.parse_args([])))
    write_report(args.out, [r for r in known if r in default or r in results], results, __version__)
    print(f"report: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
