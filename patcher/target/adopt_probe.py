"""``adopt``'s probe: import module files one by one and build yamls, in the interpreter that trains.

Started by ``runner.py`` as ``python adopt_probe.py ROOT SPEC``: ``ROOT`` is the folder holding the tree (put
first on ``sys.path``), ``SPEC`` a JSON file ``{"package": the ultralytics/ folder to import, "imports": [dotted
module names], "yamls": [paths], "seconds": per yaml, "memory": bytes per yaml (or "memory_share": that part of
the machine's memory), "jobs": children at a time}``.

The package is imported from ``package`` itself, whatever its folder's name, before anything else the interpreter
could find under that name; then every ``ultralytics`` module loaded is checked to come from that folder. Each
module is imported on its own, so one that fails (a missing package, a name its release does not have) costs
only itself. Each yaml is built as its head says (RT-DETR, detect, segment, pose, classify, OBB) in a child
process of its own, with a time limit and (on Linux) a memory limit, and its parameters counted; a child that
runs past its time, runs out of memory or crashes costs only its yaml. On Linux the children are forked from this
process (no second import); elsewhere (Windows, macOS: no safe fork) one worker imports Ultralytics and builds
the yamls one after another, and is replaced when one of them fails it; there the memory is not bounded.

Each yaml built prints an event ``{"built": path, "result": ..., "done": n, "of": total}``; the answer is one
line, ``PREFIX`` then JSON: ``{"fatal": ...}`` when ``ultralytics`` itself does not import, ``{"elsewhere":
{"module", "file"}, ...}`` when a module of it was imported from outside ``package``, else ``{"release",
"package", "imports": {name: null | {"error", "missing"}}, "builds": {path: {"params"} | {"error"[, "limit"]}}}``.
No yaml is built when the package does not import or comes from elsewhere.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import multiprocessing
import os
import sys
import threading
import time
from multiprocessing.connection import wait

import target_common as common  # beside this file: the script's folder is first on sys.path

HEADS = (
    ("RTDETRDecoder", "RTDETRDetectionModel"),
    ("Segment", "SegmentationModel"),
    ("Pose", "PoseModel"),
    ("OBB", "OBBModel"),
    ("Classify", "ClassificationModel"),
)
STARTUP = 600  # seconds a spawned child may take to import Ultralytics and torch before its first yaml
OUT_OF_MEMORY = ("can't allocate memory", "DefaultCPUAllocator", "std::bad_alloc", "Cannot allocate memory")


def failure(exc: BaseException) -> dict:
    """Why: the error, the module missing (if one is), ``where``: the file and line it was raised in, and ``trace``:
    the files and lines of its traceback, innermost last (an import chain: which file imported the one that failed)."""
    text = f"{type(exc).__name__}: {exc}".strip()
    found: dict = {"error": text[:600]}
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        found["missing"] = exc.name
    if isinstance(exc, SyntaxError) and exc.filename:
        found["where"] = [exc.filename, exc.lineno]
    elif exc.__traceback__ is not None:
        last = exc.__traceback__
        frames: list[tuple[str, int]] = [(last.tb_frame.f_code.co_filename, last.tb_lineno)]
        while last.tb_next is not None:
            last = last.tb_next
            frames.append((last.tb_frame.f_code.co_filename, last.tb_lineno))
        found["where"] = list(frames[-1])
        found["trace"] = [list(f) for f in frames if not f[0].startswith("<")][-60:]
    return found


def load(root: str, package: str):
    """``ultralytics`` imported from the folder ``package`` (named as it may be), and its ``nn.tasks``."""
    sys.path.insert(0, root)
    for name in [n for n in sys.modules if n == "ultralytics" or n.startswith("ultralytics.")]:
        del sys.modules[name]  # one imported before this script ran (a site hook) must not answer
    init = os.path.join(package, "__init__.py")
    spec = importlib.util.spec_from_file_location("ultralytics", init, submodule_search_locations=[package])
    if spec is None or spec.loader is None:
        raise ImportError(f"{init} cannot be imported as ultralytics", name="ultralytics")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ultralytics"] = module
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
        from ultralytics.nn import tasks
    return module, tasks


def elsewhere(package: str) -> dict | None:
    """The first ``ultralytics`` module loaded from outside ``package`` (an editable install's finder filling in a
    file the tree lacks, a path hook), or None."""
    inside = os.path.normcase(os.path.realpath(package)) + os.sep
    for name, module in sorted(sys.modules.items()):
        if name != "ultralytics" and not name.startswith("ultralytics."):
            continue
        where = getattr(module, "__file__", None)
        if where and not os.path.normcase(os.path.realpath(where)).startswith(inside):
            return {"module": name, "file": where}
    return None


def model_class(tasks, rows: list) -> type:
    names = {str(r[2]) for r in rows if isinstance(r, (list, tuple)) and len(r) > 2}
    for head, cls in HEADS:
        if any(n == head or n.endswith("." + head) for n in names) and hasattr(tasks, cls):
            return getattr(tasks, cls)
    return tasks.DetectionModel


def build(tasks, path: str) -> dict:
    torch = sys.modules.get("torch")  # as Ultralytics imported it
    started = time.perf_counter()
    try:
        cfg = tasks.yaml_model_load(path)
        cls = model_class(tasks, list(cfg.get("backbone") or []) + list(cfg.get("head") or []))
        # the input channels the yaml names (an RGB+IR fork's ``ch: 6``): up to 8.2 a model reads them from its yaml,
        # from 8.4 from its caller (the trainer passes the dataset's): given as a training run would
        channels = next((cfg[k] for k in ("channels", "ch") if type(cfg.get(k)) is int), None)
        quiet = torch.no_grad() if torch is not None else contextlib.nullcontext()
        with contextlib.redirect_stdout(io.StringIO()), quiet:
            model = cls(path, verbose=False) if channels is None else cls(path, ch=channels, verbose=False)
        return {
            "params": sum(p.numel() for p in model.parameters()),
            "seconds": round(time.perf_counter() - started, 2),
            "model": cls.__name__,
        }
    except BaseException as exc:  # every failure is an answer, the next yaml still builds
        if isinstance(exc, KeyboardInterrupt):
            raise
        found = failure(exc)
        if isinstance(exc, MemoryError) or any(s in found["error"] for s in OUT_OF_MEMORY):
            found["limit"] = "memory"
        return found


def answer(found: dict) -> None:
    """Print the answer line (one write: nothing else printed can split it)."""
    sys.stdout.write(common.PREFIX + json.dumps(found) + "\n")
    sys.stdout.flush()


def imported(names: list) -> dict:
    """Each module imported on its own: None, or why it fails."""
    imports: dict = {}
    for name in names:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                importlib.import_module(name)
            imports[name] = None
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            imports[name] = failure(exc)
    return imports


# -- each yaml in a bounded child ----------------------------------------------------------------------------------
def forking() -> bool:
    """Children forked from this process (Linux); elsewhere a spawned worker that imports Ultralytics itself
    (``SPAWN_ENV`` set: spawned on Linux too, as the tests run Windows' way)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and not os.environ.get(common.SPAWN_ENV)


def memory_share(spec: dict) -> int:
    """The bytes a child may map beyond the probe: ``memory_share``'s part of the machine's memory (8 GiB where
    that cannot be read; it is only enforced on Linux, where it can)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        total = 24 << 30
    return total // max(1, int(spec.get("memory_share") or 3))


def limit_memory(budget: int) -> None:
    """This process may map ``budget`` bytes more than it has now (Linux: its address space, RLIMIT_AS)."""
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = mapped + budget if hard == resource.RLIM_INFINITY else min(mapped + budget, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ImportError, OSError, ValueError):  # not Linux: no memory limit (the time limit still holds)
        pass


def orphaned(parent: int) -> None:
    """A child ends when the probe does (killed past its own time limit: its children must not keep its output
    stream open, nor build on)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def serve(conn, root: str | None, package: str | None, budget: int, parent: int) -> None:
    """A child: (spawned: import Ultralytics first,) then build each yaml path it is sent until it is sent None."""
    sys.stdout = io.StringIO()  # nothing of a child may reach the answer stream
    threading.Thread(target=orphaned, args=(parent,), daemon=True).start()
    if package is not None:
        _module, tasks = load(root or "", package)
    else:
        from ultralytics.nn import tasks
    torch = sys.modules.get("torch")  # imported by Ultralytics (here or, forked, in the probe)
    if torch is not None:
        torch.set_num_threads(1)  # two children share the machine's cores
    limit_memory(budget)
    conn.send("ready")  # a yaml's clock starts once its child is ready
    while True:
        path = conn.recv()
        if path is None:
            return
        conn.send(build(tasks, path))


class Worker:
    """A child building yamls, and the yaml it builds now."""

    def __init__(self, context, root: str, package: str, budget: int) -> None:
        self.conn, there = context.Pipe()
        spawned = context.get_start_method() != "fork"
        args = (there, root if spawned else None, package if spawned else None, budget, os.getpid())
        self.proc = context.Process(target=serve, args=args, daemon=True)
        self.proc.start()
        there.close()
        self.path: str | None = None
        self.since = 0.0

    def ready(self, seconds: float) -> bool:
        """Whether the child got ready (imported what it builds with) within ``seconds``."""
        try:
            return self.conn.poll(seconds) and self.conn.recv() == "ready"
        except (EOFError, OSError):
            return False

    def give(self, path: str) -> None:
        self.path, self.since = path, time.monotonic()
        self.conn.send(path)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(5)
        self.kill()

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def crashed(worker: Worker) -> dict:
    worker.proc.join(5)  # its end is seen before its exit code
    code = worker.proc.exitcode
    how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return {"error": f"the build crashed ({how}), or was killed (out of memory?)", "limit": "crash"}


def bounded(root: str, package: str, paths: list, spec: dict, tell) -> dict:
    """Every yaml built in a child with ``spec``'s time and memory limits, ``jobs`` at a time; ``tell(path, result)``
    as each ends. A child that fails its yaml is not used again."""
    seconds, budget = float(spec.get("seconds") or 300), int(spec.get("memory") or memory_share(spec))
    jobs = max(1, min(int(spec.get("jobs") or 1), len(paths)))
    context = multiprocessing.get_context("fork" if forking() else "spawn")
    fresh = context.get_start_method() == "fork"  # a forked child per yaml; a spawned one is kept while it lasts
    pending, results = list(paths), {}
    busy: list[Worker] = []
    idle: list[Worker] = []
    try:
        while pending or busy:
            while pending and len(busy) < jobs:
                path = pending.pop(0)
                worker = idle.pop() if idle else Worker(context, root, package, budget)
                if worker.path is None and not worker.ready(STARTUP):  # a new child that never got ready
                    worker.kill()
                    results[path] = {"error": f"its child did not get ready to build: {crashed(worker)['error']}"}
                    tell(path, results[path])
                    continue
                worker.give(path)
                busy.append(worker)
            if not busy:
                continue
            due = min(w.since for w in busy) + seconds
            wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], max(0.0, due - time.monotonic()))
            for worker in list(busy):
                result = outcome(worker, seconds)
                if result is None:
                    continue
                busy.remove(worker)
                if result.get("limit") == "memory":
                    result["error"] = f"past its memory limit ({budget / (1 << 30):.1f} GiB): {result['error']}"
                if "limit" in result:  # stuck, crashed or short of memory: not asked again
                    worker.kill()
                elif fresh:
                    worker.stop()
                else:
                    idle.append(worker)
                results[worker.path] = result
                tell(worker.path, result)
    finally:
        for worker in busy:
            worker.kill()
        for worker in idle:
            worker.stop()
    return results


def outcome(worker: Worker, seconds: float) -> dict | None:
    """The child's answer for its yaml, or why there is none (crashed, past its time), or None: still building."""
    try:
        if worker.conn.poll():
            return worker.conn.recv()
    except (EOFError, OSError):
        return crashed(worker)
    if not worker.proc.is_alive():
        return crashed(worker)
    if time.monotonic() - worker.since > seconds:
        return {"error": f"took longer than {seconds:.0f} s to build: stopped", "limit": "time"}
    return None


def main() -> None:
    root = sys.argv[1]
    with open(sys.argv[2], encoding="utf-8") as given:
        spec = json.load(given)
    package = spec.get("package") or os.path.join(root, "ultralytics")
    try:
        ultralytics, tasks = load(root, package)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        answer({"fatal": failure(exc), "package": package})
        return
    found = {"release": getattr(ultralytics, "__version__", None), "package": package}
    stray = elsewhere(package)
    if stray:
        answer({**found, "elsewhere": stray})
        return
    found["imports"] = imported(spec.get("imports", []))
    stray = elsewhere(package)  # a module file may reach another Ultralytics too
    if stray:
        answer({**found, "elsewhere": stray})
        return
    paths = spec.get("yamls", [])
    done = []

    def tell(path: str, result: dict) -> None:
        done.append(path)
        sys.stdout.write(
            common.PREFIX + json.dumps({"built": path, "result": result, "done": len(done), "of": len(paths)}) + "\n"
        )
        sys.stdout.flush()

    found["builds"] = bounded(root, package, paths, spec, tell) if paths else {}
    answer(found)


if __name__ == "__main__":
    main()
