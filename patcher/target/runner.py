"""The one way the engine starts a program in the target interpreter, reads its answer, and times it out.

Every program here (``smoke.py``, ``module_probe.py`` (the --module preflight), ``adopt_probe.py``) runs as a script with the Python that
trains and speaks one protocol: the lines it prints that start with ``PREFIX`` are JSON events, and the last
of them is its answer; any other line (Ultralytics' logging, warnings, a traceback: stdout and stderr as one
stream) is kept, the last ``TAIL`` of them, for the message when something goes wrong. A spec too long for a
command line goes in a JSON file whose path is the last argument. Each job has its time limit in ``TIMEOUTS``;
a program that does not start, runs past it, or ends without an answer raises :class:`NoAnswer`, which says
which, and the caller words it for its command.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .target_common import PREFIX

HERE = Path(__file__).parent
# The scripts, by job, and how long each may run (seconds). A verification with --train (``train_check.py``)
# runs in the smoke run's process, under its limit.
SCRIPTS = {
    "locate": "locate_probe.py",
    "smoke": "smoke.py",
    "preflight": "module_probe.py",
    "adopt-probe": "adopt_probe.py",
}
TIMEOUTS = {
    "locate": 120,  # --python: which ultralytics it imports (no import of it, no torch)
    "smoke": 1800,
    "preflight": 900,  # one --module file: import, then a few small builds on the CPU
    "adopt-probe": 3600,  # a fork with a hundred yamls builds each of them on the CPU
}
# adopt's probe builds each yaml in a child of its own, stopped past these: seconds, and memory beyond what the probe
# had mapped when it started the child: this share of the machine's memory (Linux only: elsewhere the time limit
# alone). A third: two children and the probe fit in memory; a fork's largest yaml (EGSMnet's yolov8-CSMHSA, an
# attention over the 256-pixel stride probe) takes 5.7 GB
BUILD_LIMITS = {"seconds": 300, "memory_share": 3}
TAIL = 40  # lines of other output kept


def script(job: str) -> Path:
    """The program a job runs (beside this file)."""
    return HERE / SCRIPTS[job]


@dataclass(frozen=True)
class Finished:
    """A program that answered: its answer (the last ``PREFIX`` line), exit code and last lines of other output."""

    answer: dict[str, Any]
    returncode: int
    tail: tuple[str, ...]


class NoAnswer(Exception):
    """A program that gave no answer. ``kind``: "start" (it could not be started), "timeout" (it ran past its
    job's limit and was stopped) or "silent" (it ended without an answer line). ``cause`` is the exception behind
    it, ``tail`` the last lines of its other output, ``returncode`` its exit code (None where it did not end)."""

    def __init__(self, kind: str, cause: BaseException, tail: Sequence[str] = (), returncode: int | None = None):
        super().__init__(str(cause))
        self.kind, self.cause, self.tail, self.returncode = kind, cause, tuple(tail), returncode

    def output(self, chars: int) -> str:
        """The last ``chars`` characters of its other output."""
        return "\n".join(self.tail)[-chars:] if chars else ""


def run(
    job: str,
    python: str,
    args: Sequence[str],
    *,
    cwd: Path | str,
    spec: Any = None,
    env: Mapping[str, str] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> Finished:
    """Run the job's script in ``python`` with ``args`` (and ``spec`` as a JSON file, given last), in ``cwd``,
    with ``env`` added to this environment; ``on_event`` sees every event as it comes. Its answer, or
    :class:`NoAnswer`."""
    spec_file = _write_spec(spec) if spec is not None else None
    cmd = [python, "-u", str(script(job)), *args, *([spec_file] if spec_file else [])]
    try:
        return _run(cmd, TIMEOUTS[job], cwd, {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}, on_event)
    finally:
        if spec_file:
            Path(spec_file).unlink(missing_ok=True)


def _write_spec(spec: Any) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        json.dump(spec, handle)
    return handle.name


def _run(
    cmd: list[str],
    timeout: int,
    cwd: Path | str,
    env: dict[str, str],
    on_event: Callable[[dict[str, Any]], None] | None,
) -> Finished:
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            cwd=str(cwd),
        )
    except OSError as exc:
        raise NoAnswer("start", exc)
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout, stop)
    timer.daemon = True
    timer.start()
    tail: deque[str] = deque(maxlen=TAIL)
    try:
        answer = _read(proc, tail, on_event)
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:  # Ctrl-C (or any error) here: the program must not outlive us
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    if expired.is_set():
        raise NoAnswer("timeout", subprocess.TimeoutExpired(cmd, timeout), tail)
    if answer is None:
        raise NoAnswer("silent", LookupError(f"no answer line ({PREFIX.strip()}) in its output"), tail, proc.returncode)
    return Finished(answer, proc.returncode, tuple(tail))


def _read(
    proc: subprocess.Popen, tail: deque[str], on_event: Callable[[dict[str, Any]], None] | None
) -> dict[str, Any] | None:
    """Every line of the program's output until it ends: events passed on, the last one returned; others kept."""
    answer = None
    assert proc.stdout is not None  # (opened with stdout=PIPE)
    for line in proc.stdout:
        at = line.find(PREFIX)
        event = _event(line[at + len(PREFIX) :]) if at >= 0 else None
        if event is None:
            tail.append(line.rstrip())
            continue
        answer = event
        if on_event is not None:
            on_event(event)
    return answer


def _event(text: str) -> dict[str, Any] | None:
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
