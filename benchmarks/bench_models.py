"""Parameters, GFLOPs and CPU latency of RT-DETR backbones, and the runtime cost of the patch itself.

One command, one run, side by side, on a release extracted from the cached wheel (never the
interpreter's own install, never the user's backup store):

1. two temporary copies of the release's ``ultralytics/``: ``pristine/`` and ``patched/``; the second
   is patched with ``rtdetr-patch apply --target <patched> --no-verify`` (``RTDETR_PATCH_HOME`` is a
   temporary folder) and checked with ``check --static``;
2. each model in its own fresh subprocess of this interpreter, the chosen tree first on
   ``sys.path``, ``torch.set_num_threads(--threads)``, eval mode, ``no_grad``: parameters, GFLOPs at
   640 from the release's ``get_flops``, build time, and the median latency of ``--repeats`` batch-1
   forwards at 640x640 after 2 warm-ups. Models (nc=80, built from yaml, no weights): stock
   ``rtdetr-l`` and ``rtdetr-resnet50``, our ``rtdetr-MobileNetV3-small``/``-large``, the native
   ``rtdetr-MobileNetV3-tv`` (Ultralytics' TorchVision/Index rows, where the release has them) and,
   with ``--blog-text``, the blog's own module (section 三), extracted from the text at run time
   into a third temporary copy (``seeded/``, the patched tree plus ``Addmodules/SeedMobileNetV3.py``);
3. the cost of the patch: stock ``rtdetr-l`` and ``yolov8n`` built on ``pristine/`` and ``patched/``
   in two live worker processes with the same seed (the pristine state_dict is then loaded into the
   patched model, so the weights are identical), the same random input: max |difference| of the
   outputs (expected 0.0), and the latency ratio patched/pristine from interleaved forwards (ABBA
   order); for ``yolov8n`` also the build-time ratio (the patched stride probe runs at 640, not 256).

    .venv/bin/python benchmarks/bench_models.py [--blog-text PATH] [--release 8.4.190] [--threads 2]
                                                [--repeats 10] [--out benchmarks/results]

Prints a table and writes the same as JSON to ``<out>/bench_models.json``. A model that fails to
build or run is a row with its error, not a crash. None of the blog's code is stored in this
repository: it exists only in the temporary tree, for the length of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from importlib.metadata import version
from pathlib import Path

from release_wheels import wheel  # beside this script

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
IMGSZ = 640
WARMUPS = 2
BUILD_REPEATS = 5  # build-time ratio: median of this many interleaved builds per tree (after one warm-up each)
OP_TIMEOUT = 600  # seconds for one worker operation before the worker is killed

SEED_START = '"""A from-scratch implementation of MobileNetV3'
SEED_END = 'if __name__ == "__main__":'
SEED_CLASS = "SeedMobileNetV3"
SEED_YAML = "rtdetr-SeedMobileNetV3.yaml"


# ----------------------------------------------------------------------------------------------
# Worker: a fresh process that imports torch and the ultralytics of one tree, then answers
# JSON commands on stdin over a private pipe (Ultralytics logs to stdout, which goes to stderr).
# It imports nothing from rtdetr-patch.
# ----------------------------------------------------------------------------------------------


def _flatten(obj) -> list:
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _flatten(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _flatten(o)]
    return []


class Worker:
    def __init__(self, root: str, threads: int):
        import torch

        self.torch = torch
        torch.set_num_threads(threads)
        sys.path.insert(0, os.path.abspath(root))
        import ultralytics

        where = Path(ultralytics.__file__).resolve().parent
        expected = (Path(root) / "ultralytics").resolve()
        if where != expected:
            raise RuntimeError(f"imported ultralytics from {where}, expected {expected}")
        self.ultralytics = ultralytics
        self.model = None
        self.input = None

    def op_hello(self) -> dict:
        return {
            "release": self.ultralytics.__version__,
            "torch": self.torch.__version__,
            "threads": self.torch.get_num_threads(),
            "package": str(Path(self.ultralytics.__file__).parent),
        }

    def op_build(self, yaml: str, kind: str = "rtdetr", seed: int = 0) -> dict:
        from ultralytics import RTDETR, YOLO

        self.model = None
        self.torch.manual_seed(seed)
        start = time.perf_counter()
        model = (RTDETR if kind == "rtdetr" else YOLO)(yaml).model
        build_s = time.perf_counter() - start
        model.eval()
        self.model = model
        backbones = [
            f"{type(m).__module__.rsplit('.', 1)[-1]}.{type(m).__name__}"
            for m in model.model
            if getattr(m, "backbone", False)
        ]
        return {
            "build_s": build_s,
            "params": sum(p.numel() for p in model.parameters()),
            "first_layer": type(model.model[0]).__name__,
            "list_backbone": backbones[0] if backbones else None,
            "stride": [float(s) for s in model.stride],
        }

    def op_flops(self, imgsz: int = IMGSZ) -> dict:
        from ultralytics.utils.torch_utils import get_flops

        return {"gflops": float(get_flops(self.model, imgsz))}

    def op_make_input(self, imgsz: int = IMGSZ, seed: int = 1, save: str | None = None) -> dict:
        gen = self.torch.Generator().manual_seed(seed)
        self.input = self.torch.rand(1, 3, imgsz, imgsz, generator=gen)
        if save:
            self.torch.save(self.input, save)
        return {"shape": list(self.input.shape)}

    def op_load_input(self, path: str) -> dict:
        self.input = self.torch.load(path)
        return {"shape": list(self.input.shape)}

    def op_time(self, n: int) -> dict:
        times = []
        with self.torch.no_grad():
            for _ in range(n):
                start = time.perf_counter()
                out = self.model(self.input)
                times.append(time.perf_counter() - start)
        shapes = [list(t.shape) for t in _flatten(out)]
        return {"times": times, "output_shapes": shapes[:2]}

    def op_save_state(self, path: str) -> dict:
        self.torch.save(self.model.state_dict(), path)
        return {}

    def op_load_state(self, path: str) -> dict:
        theirs = self.torch.load(path)
        ours = self.model.state_dict()
        same_keys = set(theirs) == set(ours)
        identical = same_keys and all(
            ours[k].shape == theirs[k].shape and self.torch.equal(ours[k], theirs[k]) for k in ours
        )
        self.model.load_state_dict(theirs, strict=True)
        return {"same_keys": same_keys, "identical_before_load": identical}

    def op_output(self, save: str, compare_to: str | None = None) -> dict:
        with self.torch.no_grad():
            out = _flatten(self.model(self.input))
        self.torch.save(out, save)
        result = {"shapes": [list(t.shape) for t in out]}
        if compare_to:
            other = self.torch.load(compare_to)
            if len(other) != len(out) or any(a.shape != b.shape for a, b in zip(out, other)):
                result["max_abs_diff"] = None
                result["mismatch"] = "different output structure or shapes"
            else:
                result["max_abs_diff"] = max(float((a.float() - b.float()).abs().max()) for a, b in zip(out, other))
        return result


def worker_main(root: str, threads: int, fd: int) -> int:
    channel = os.fdopen(fd, "w", buffering=1)
    sys.stdout = sys.stderr  # everything Ultralytics prints goes to the worker's log
    os.environ.setdefault("YOLO_OFFLINE", "1")

    def reply(payload: dict) -> None:
        channel.write(json.dumps(payload) + "\n")
        channel.flush()

    try:
        worker = Worker(root, threads)
    except BaseException as exc:  # reported to the parent
        reply({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]})
        return 1
    reply({"ok": True, "ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        op = cmd.pop("op")
        if op == "quit":
            break
        try:
            reply({"ok": True, **getattr(worker, f"op_{op}")(**cmd)})
        except BaseException as exc:  # reported to the parent, the worker keeps serving
            reply(
                {
                    "ok": False,
                    "error": f"{type(exc).__name__}: {str(exc)[:1500]}",
                    "traceback": traceback.format_exc()[-3000:],
                }
            )
    return 0


# ----------------------------------------------------------------------------------------------
# Parent side
# ----------------------------------------------------------------------------------------------


class WorkerError(RuntimeError):
    pass


class Proc:
    """A live worker process on one tree; ``call(op, **kw)`` returns its reply or raises WorkerError."""

    def __init__(self, root: Path, threads: int, env: dict, log: Path):
        read_fd, write_fd = os.pipe()
        self.log_path = log
        self.log = open(log, "w")  # noqa: SIM115 - the worker's log, open for its life, closed when it stops
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--_worker",
                str(root),
                "--threads",
                str(threads),
                "--_fd",
                str(write_fd),
            ],
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            pass_fds=(write_fd,),
            cwd=str(root),
        )
        os.close(write_fd)
        self.replies: queue.Queue = queue.Queue()
        channel = os.fdopen(read_fd, "r")

        def pump():
            for line in channel:
                self.replies.put(line)
            self.replies.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self._reply("start")

    def _reply(self, what: str) -> dict:
        try:
            line = self.replies.get(timeout=OP_TIMEOUT)
        except queue.Empty:
            self.kill()
            raise WorkerError(f"{what}: no answer within {OP_TIMEOUT} s (worker killed)") from None
        if line is None:
            self.proc.wait()
            raise WorkerError(f"{what}: the worker died (exit {self.proc.returncode}); log tail:\n{self.tail()}")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise WorkerError(f"{what}: {reply['error']}")
        return reply

    def call(self, op: str, **kw) -> dict:
        if self.proc.poll() is not None:
            raise WorkerError(f"{op}: the worker is not running (exit {self.proc.returncode})")
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._reply(op)

    def tail(self, n: int = 2000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self.log.close()


def cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rtdetr_patch", *args], env=env, capture_output=True, text=True, cwd=str(PROJECT)
    )


def load() -> float | None:
    """The 1-minute load average: other processes on the machine inflate latencies (ratios less so)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def machine(threads: int, release: str) -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": threads,
        "release": release,
    }


def seed_module(text_path: Path) -> str:
    """Section 三 of the blog text: its MobileNetV3 module, without torchsummary, default config 'small'."""
    lines = text_path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(SEED_START)), None)
    if start is None:
        raise ValueError(f"no line starting with {SEED_START!r} in {text_path}")
    end = next((i for i in range(start, len(lines)) if lines[i].strip() == SEED_END), None)
    if end is None:
        raise ValueError(f"no {SEED_END!r} after the module in {text_path}")
    code = [line for line in lines[start:end] if line.strip() != "from torchsummary import summary"]
    source = "\n".join(code).rstrip() + "\n"
    # the blog's default config 'large' cannot build (its outputs are picked by channel count
    # [16, 24, 48, 576] and large ends at 960), so the yaml's `MobileNetV3, []` gets 'small'.
    source, count = re.subn(r'(config:\s*str\s*=\s*)"large"', r'\1"small"', source)
    if count != 1:
        raise ValueError(f'expected one `config: str = "large"` default in the blog\'s module, found {count}')
    compile(source, "SeedMobileNetV3.py", "exec")
    return source


def add_seed(tree: Path, text_path: Path) -> str:
    """Write the blog's module and yaml into ``tree`` (a patched copy) and register the class."""
    addmodules = tree / "ultralytics" / "nn" / "Addmodules"
    (addmodules / f"{SEED_CLASS}.py").write_text(
        "# The blog's MobileNetV3 (section 三), extracted at run time by benchmarks/bench_models.py;\n"
        "# `from torchsummary import summary` dropped, default config switched to 'small'.\n" + seed_module(text_path),
        encoding="utf-8",
    )
    init = addmodules / "__init__.py"
    init.write_text(
        init.read_text(encoding="utf-8")
        + (
            "\n\n# Added by benchmarks/bench_models.py (temporary tree only): the blog's own module.\n"
            f"from .{SEED_CLASS} import MobileNetV3 as {SEED_CLASS}  # noqa: E402\n\n"
            f"RTDETR_PATCH_BACKBONES = frozenset(RTDETR_PATCH_BACKBONES | {{{SEED_CLASS}}})\n"
            f'__all__ = [*__all__, "{SEED_CLASS}"]\n'
        ),
        encoding="utf-8",
    )
    rt = tree / "ultralytics" / "cfg" / "models" / "rt-detr"
    ours = (rt / "rtdetr-MobileNetV3.yaml").read_text(encoding="utf-8")
    seeded, count = re.subn(r"(-\s*\[-1,\s*1,\s*)MobileNetV3(,\s*\[\s*\]\s*\])", rf"\g<1>{SEED_CLASS}\g<2>", ours)
    if count != 1:
        raise ValueError(f"expected one `[-1, 1, MobileNetV3, []]` row in rtdetr-MobileNetV3.yaml, found {count}")
    (rt / SEED_YAML).write_text(
        f"# rtdetr-MobileNetV3.yaml with the blog's module ({SEED_CLASS}); temporary.\n" + seeded, encoding="utf-8"
    )
    return SEED_YAML


def measure(label: str, yaml: str, root: Path, args, env: dict, logs: Path, kind: str = "rtdetr") -> dict:
    """One model in a fresh worker: build, parameters, GFLOPs, latency."""
    row = {"model": label, "yaml": yaml, "tree": root.name, "load_before": load()}
    print(f"  {label:<34}", end="", flush=True)
    started = time.perf_counter()
    proc = None
    try:
        proc = Proc(root, args.threads, env, logs / f"{label.replace(' ', '_').replace('/', '_')}.log")
        built = proc.call("build", yaml=yaml, kind=kind, seed=0)
        row.update(
            params=built["params"],
            build_s=round(built["build_s"], 3),
            backbone=built["list_backbone"] or built["first_layer"],
        )
        row["gflops"] = round(proc.call("flops", imgsz=IMGSZ)["gflops"], 2)
        proc.call("make_input", imgsz=IMGSZ, seed=1)
        proc.call("time", n=WARMUPS)
        timed = proc.call("time", n=args.repeats)
        ms = [t * 1000 for t in timed["times"]]
        row.update(
            latency_ms=round(statistics.median(ms), 1),
            latency_min_ms=round(min(ms), 1),
            latency_max_ms=round(max(ms), 1),
            times_ms=[round(t, 2) for t in ms],
            output_shape=timed["output_shapes"][0] if timed["output_shapes"] else None,
        )
        print(
            f"{row['params']:>12,} params {row['gflops']:>7.1f} GFLOPs {row['latency_ms']:>9.1f} ms "
            f"({time.perf_counter() - started:.0f} s)"
        )
    except WorkerError as exc:
        row["error"] = str(exc)
        print(f"FAILED: {str(exc).splitlines()[0][:160]}")
    finally:
        if proc:
            proc.close()
    row["load_after"] = load()
    return row


def patch_cost(
    label: str,
    yaml: str,
    kind: str,
    pristine: Path,
    patched: Path,
    args,
    env: dict,
    logs: Path,
    work: Path,
    build_repeats: int,
) -> dict:
    """The same model on the pristine and the patched tree, in two live workers, timed interleaved."""
    row = {"model": label, "yaml": yaml, "load_before": load()}
    print(f"  {label:<34}", end="", flush=True)
    started = time.perf_counter()
    a = b = None
    try:
        a = Proc(pristine, args.threads, env, logs / f"cost-{label}-pristine.log")
        b = Proc(patched, args.threads, env, logs / f"cost-{label}-patched.log")
        builds = {"pristine": [], "patched": []}
        for i in range(build_repeats + (1 if build_repeats > 1 else 0)):  # one warm-up build each when repeating
            pair = [("pristine", a), ("patched", b)] if i % 2 == 0 else [("patched", b), ("pristine", a)]
            for name, proc in pair:
                built = proc.call("build", yaml=yaml, kind=kind, seed=0)
                builds[name].append(built["build_s"])
                row[f"params_{name}"] = built["params"]
        if build_repeats > 1:
            builds = {k: v[1:] for k, v in builds.items()}
        row["build_s_pristine"] = round(statistics.median(builds["pristine"]), 3)
        row["build_s_patched"] = round(statistics.median(builds["patched"]), 3)
        row["build_ratio"] = round(row["build_s_patched"] / row["build_s_pristine"], 3)
        state, x = work / f"{label}-state.pt", work / f"{label}-input.pt"
        out_a, out_b = work / f"{label}-out-pristine.pt", work / f"{label}-out-patched.pt"
        a.call("save_state", path=str(state))
        loaded = b.call("load_state", path=str(state))
        row["weights_identical_from_seed"] = loaded["identical_before_load"]
        a.call("make_input", imgsz=IMGSZ, seed=1, save=str(x))
        b.call("load_input", path=str(x))
        a.call("output", save=str(out_a))
        compared = b.call("output", save=str(out_b), compare_to=str(out_a))
        row["max_abs_diff"] = compared.get("max_abs_diff")
        if "mismatch" in compared:
            row["error"] = compared["mismatch"]
        for _ in range(WARMUPS):
            a.call("time", n=1)
            b.call("time", n=1)
        times = {"pristine": [], "patched": []}
        for i in range(args.repeats):  # ABBA: alternate who goes first, so drift hits both alike
            pair = [("pristine", a), ("patched", b)] if i % 2 == 0 else [("patched", b), ("pristine", a)]
            for name, proc in pair:
                times[name].append(proc.call("time", n=1)["times"][0] * 1000)
        row["latency_ms_pristine"] = round(statistics.median(times["pristine"]), 1)
        row["latency_ms_patched"] = round(statistics.median(times["patched"]), 1)
        row["latency_ratio"] = round(statistics.median(times["patched"]) / statistics.median(times["pristine"]), 3)
        row["latency_pair_ratio_median"] = round(
            statistics.median(p / q for p, q in zip(times["patched"], times["pristine"])), 3
        )
        row["latency_min_ratio"] = round(min(times["patched"]) / min(times["pristine"]), 3)
        row["times_ms"] = {k: [round(t, 2) for t in v] for k, v in times.items()}
        row["build_times_s"] = {k: [round(t, 3) for t in v] for k, v in builds.items()}
        print(
            f"max|diff| {row['max_abs_diff']}  latency x{row['latency_ratio']:.3f}  build x{row['build_ratio']:.2f} "
            f"({time.perf_counter() - started:.0f} s)"
        )
    except WorkerError as exc:
        row["error"] = str(exc)
        print(f"FAILED: {str(exc).splitlines()[0][:160]}")
    finally:
        for proc in (a, b):
            if proc:
                proc.close()
    row["load_after"] = load()
    return row


def fmt_table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def report(result: dict) -> str:
    m = result["machine"]
    out = [
        f"Ultralytics {m['release']} (from the wheel), torch {m['torch']}, {m['cpu']}, {m['cores']} cores, "
        f"{m['threads']} threads, batch 1 at {IMGSZ}x{IMGSZ}, median of {result['repeats']} forwards "
        f"after {WARMUPS} warm-ups, Python {m['python']}",
        f"1-min load average {m['load_start']} at start, {m['load_end']} at end "
        f"(anything above 0 is another process competing for the {m['cores']} cores)",
        "",
    ]
    rows = []
    for r in result["models"]:
        if "error" in r:
            rows.append([r["model"], r["tree"], "-", "-", "-", "-", "-", "error: " + r["error"].splitlines()[0][:90]])
        else:
            rows.append(
                [
                    r["model"],
                    r["tree"],
                    f"{r['params'] / 1e6:.2f}",
                    f"{r['params']:,}",
                    f"{r['gflops']:.1f}",
                    f"{r['build_s']:.2f}",
                    f"{r['latency_ms']:.1f}",
                    f"{r['latency_min_ms']:.0f}-{r['latency_max_ms']:.0f}",
                ]
            )
    out.append(
        fmt_table(
            ["model", "tree", "params (M)", "parameters", "GFLOPs@640", "build s", "median ms", "min-max ms"],
            rows,
            {2, 3, 4, 5, 6, 7},
        )
    )
    out += ["", "Cost of the patch (same weights, same input; pristine vs patched tree, interleaved ABBA):", ""]
    rows = []
    for r in result["patch_cost"]:
        if "error" in r and "latency_ratio" not in r:
            rows.append(
                [r["model"], "-", "-", "-", "-", "-", "-", "-", "-", "-", "error: " + r["error"].splitlines()[0][:90]]
            )
            continue
        diff = r.get("max_abs_diff")
        rows.append(
            [
                r["model"],
                ("n/a" if diff is None else f"{diff:g}") + (" (!)" if "error" in r else ""),
                "yes" if r.get("weights_identical_from_seed") else "no (loaded)",
                f"{r['latency_ms_pristine']:.1f}",
                f"{r['latency_ms_patched']:.1f}",
                f"{r['latency_ratio']:.3f}",
                f"{r['latency_pair_ratio_median']:.3f}",
                f"{r['latency_min_ratio']:.3f}",
                f"{r['build_s_pristine']:.3f}",
                f"{r['build_s_patched']:.3f}",
                f"{r['build_ratio']:.2f}",
            ]
        )
    out.append(
        fmt_table(
            [
                "model",
                "max |diff|",
                "same weights from seed",
                "pristine ms",
                "patched ms",
                "latency ratio",
                "pair ratio",
                "min ratio",
                "build s pristine",
                "build s patched",
                "build ratio",
            ],
            rows,
            {1, 3, 4, 5, 6, 7, 8, 9, 10},
        )
    )
    out.append(
        "latency ratio = median patched / median pristine; pair ratio = median of the per-pair ratios; "
        "min ratio = fastest patched / fastest pristine (least disturbed by other processes)"
    )
    out += ["", f"patch: {result['patch']['summary']}", f"total run time: {result['seconds']:.0f} s"]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--blog-text", type=Path, help="the blog post saved as text; adds a row for its own MobileNetV3"
    )
    parser.add_argument("--release", default="8.4.190", help="Ultralytics release (wheel from the cache)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every worker")
    parser.add_argument("--repeats", type=int, default=10, help="timed forwards per model (after 2 warm-ups)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="folder for bench_models.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary trees and worker logs")
    parser.add_argument("--_worker", help=argparse.SUPPRESS)
    parser.add_argument("--_fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        return worker_main(args._worker, args.threads, args._fd)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")

    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="rtdetr-bench-models-"))
    logs = work / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "RTDETR_PATCH_HOME": str(work / "state"),
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(work / "yolo-config"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTHONPATH", None)
    try:
        whl = wheel(args.release)
        pristine, patched = work / "pristine", work / "patched"
        with zipfile.ZipFile(whl) as zf:
            zf.extractall(pristine, [n for n in zf.namelist() if n.startswith("ultralytics/")])
        shutil.copytree(pristine, patched)
        print(f"Ultralytics {args.release} from {whl.name} into {work}")
        applied = cli(["apply", "--target", str(patched), "--no-verify"], env)
        checked = (
            cli(["check", "--static", "--json", "--target", str(patched)], env) if applied.returncode == 0 else None
        )
        check = json.loads(checked.stdout) if checked is not None and checked.stdout.strip().startswith("{") else {}
        patch = {
            "apply_exit": applied.returncode,
            "check_static_exit": checked.returncode if checked else None,
            "transforms": {t["name"]: t["state"] for t in check.get("transforms", [])},
            "warnings": check.get("warnings", []),
            "problems": check.get("problems", []),
        }
        patch["summary"] = (
            f"rtdetr-patch apply --no-verify exit {patch['apply_exit']}, check --static exit "
            f"{patch['check_static_exit']}; " + ", ".join(f"{k} {v}" for k, v in patch["transforms"].items())
        )
        print(patch["summary"])
        if applied.returncode != 0:
            patch["output"] = (applied.stdout + applied.stderr)[-3000:]
            print(patch["output"], file=sys.stderr)

        result = {
            "machine": {**machine(args.threads, args.release), "torch": version("torch"), "load_start": load()},
            "repeats": args.repeats,
            "warmups": WARMUPS,
            "imgsz": IMGSZ,
            "patch": patch,
            "models": [],
            "patch_cost": [],
        }

        rt = patched / "ultralytics" / "cfg" / "models" / "rt-detr"
        plan = [
            ("rtdetr-l (stock)", "rtdetr-l.yaml", patched),
            ("rtdetr-resnet50 (stock)", "rtdetr-resnet50.yaml", patched),
            ("MobileNetV3-small (ours)", "rtdetr-MobileNetV3-small.yaml", patched),
            ("MobileNetV3-large (ours)", "rtdetr-MobileNetV3-large.yaml", patched),
            ("MobileNetV3-small (native tv)", "rtdetr-MobileNetV3-tv.yaml", patched),
        ]
        seed_error = None
        if args.blog_text:
            seeded = work / "seeded"
            shutil.copytree(patched, seeded)
            try:
                plan.append(("MobileNetV3 (the blog's module)", add_seed(seeded, args.blog_text), seeded))
            except (OSError, ValueError, SyntaxError) as exc:
                seed_error = f"{type(exc).__name__}: {exc}"
        print(f"Models ({args.threads} threads, {WARMUPS} warm-ups + {args.repeats} forwards each, fresh process):")
        for label, yaml, root in plan:
            if not (root / "ultralytics" / "cfg" / "models" / "rt-detr" / yaml).is_file():
                why = (
                    "not added by rtdetr-patch on this release (TorchVision/Index rows need 8.3.59+)"
                    if root == patched and not (rt / yaml).is_file()
                    else f"{yaml} not found"
                )
                result["models"].append({"model": label, "yaml": yaml, "tree": root.name, "error": why})
                print(f"  {label:<34}skipped: {why}")
                continue
            result["models"].append(measure(label, yaml, root, args, env, logs))
        if seed_error:
            result["models"].append(
                {
                    "model": "MobileNetV3 (seed's module)",
                    "yaml": SEED_YAML,
                    "tree": "seeded",
                    "error": f"could not extract the blog's module: {seed_error}",
                }
            )
            print(f"  {'MobileNetV3 (the blog module)':<34}skipped: {seed_error}")

        print("Cost of the patch (pristine vs patched, interleaved):")
        result["patch_cost"].append(
            patch_cost(
                "rtdetr-l",
                "rtdetr-l.yaml",
                "rtdetr",
                pristine,
                patched,
                args,
                env,
                logs,
                work,
                build_repeats=BUILD_REPEATS,
            )
        )
        result["patch_cost"].append(
            patch_cost(
                "yolov8n", "yolov8n.yaml", "yolo", pristine, patched, args, env, logs, work, build_repeats=BUILD_REPEATS
            )
        )
        result["seconds"] = round(time.perf_counter() - t0, 1)
        result["machine"]["load_end"] = load()
        result["command"] = [Path(sys.executable).name, *sys.argv]
        result["date"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        if args.keep:
            result["work"] = str(work)
        text = report(result)
        print()
        print(text)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_models.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out / 'bench_models.json'}")
        bad_diff = [r for r in result["patch_cost"] if r.get("max_abs_diff") not in (0.0, None)]
        if bad_diff:
            print("WARNING: the patched install changes outputs: " + ", ".join(r["model"] for r in bad_diff))
        return 1 if (applied.returncode != 0 or bad_diff) else 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
