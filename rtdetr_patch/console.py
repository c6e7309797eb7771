"""The terminal side of the command line: the two consoles, the progress line, Ctrl-C and the exit codes.

``out`` and ``err`` are rich consoles on the streams a command started with (``setup`` makes them per
command). Colour follows the terminal: none when piped or when ``NO_COLOR`` is set (rich reads it);
piped output is never folded to 80 columns. ``call`` runs one API call with the install line and the
progress line wired in, and turns a failure or Ctrl-C into its message and exit code.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any, Callable, NoReturn

from rich.console import Console
from rich.status import Status

from . import render
from .patcher.errors import Exit, PatchError
from .patcher.install.locate import Install
from .patcher.results import Result, RevertResult, Stage


class _Stream:
    """The real stream the command started with, held (never ``sys.stdout`` looked up at each write).

    While the verification's progress line runs, rich points ``sys.stdout``/``sys.stderr`` at proxies
    that print through the console: a console that looked ``sys.stdout`` up would write into its own
    proxy, which writes back into the console, without end. It also survives a reader going away
    (`rtdetr-patch apply --dry-run | head`): the rest of the output is dropped and the command still
    ends with its own exit code.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.closed_by_reader = True
        try:  # Python's own flush at exit must not fail on the closed pipe either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass

    def isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (ValueError, AttributeError):
            return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


def make_console(stream: IO[str]) -> Console:
    """A console on one held stream; when piped, wide enough that no path or row is folded."""
    held = _Stream(stream)
    wide = None if os.environ.get("COLUMNS") or held.isatty() else 400
    return Console(file=held, highlight=False, width=wide)  # type: ignore[arg-type]  # a file-like stream


out = make_console(sys.stdout)
err = make_console(sys.stderr)


def setup(quiet: bool, as_json: bool) -> None:
    """Per command: the consoles on the streams it was started with, and whether people's output is printed."""
    global out, err
    out, err = make_console(sys.stdout), make_console(sys.stderr)
    out.quiet = quiet or as_json


def emit(text: str) -> None:
    """One line on stdout (the JSON), through the same held, pipe-safe stream."""
    out.file.write(text + "\n")
    out.file.flush()


class Progress:
    """The verification's stages on a status line on a terminal; piped, a plain line on stderr for each stage that
    asks for one (``Stage.line``: adopt's stages, every hundredth yaml it builds); nothing in --json / --quiet."""

    def __init__(self) -> None:
        self.status: Status | None = None
        self.started = time.perf_counter()

    def __call__(self, stage: str) -> None:
        if out.quiet:
            return
        said = stage[len("adopt: ") :] if stage.startswith("adopt: ") else f"verifying in a fresh process: {stage}"
        if not out.is_terminal:  # piped: a plain line on stderr for the stages that ask for one (adopt's)
            if isinstance(stage, Stage) and stage.line:
                err.print(f"{said} ({time.perf_counter() - self.started:.0f} s)", markup=False, soft_wrap=True)
            return
        text = f"{said} [dim]({time.perf_counter() - self.started:.0f} s)[/]"
        if self.status is None:
            self.status = out.status(text)
            self.status.start()
        else:
            self.status.update(text)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def fail(
    exc: PatchError, kind: type[Result] = Result, as_json: bool = False, install: Install | None = None
) -> NoReturn:
    """A failure: its message and what to do (or the failed result as JSON), then its exit code."""
    if as_json:
        emit(render.json_text(kind.failed(exc, install)))
    else:
        render.error(err, exc)
    sys.exit(int(exc.code))


def interrupted(exc: KeyboardInterrupt, kind: type[Result], as_json: bool, install: Install | None) -> NoReturn:
    """Ctrl-C: one line with the install's state and what to run next, exit 130."""
    state = getattr(exc, "state", None) or "Interrupted."
    if as_json:
        emit(render.json_text(kind.failed(PatchError(Exit.INTERRUPTED, state), install)))
    else:
        err.file.write("\n")  # the terminal echoed ^C on the current line
        render.interrupted(err, state)
    sys.exit(int(Exit.INTERRUPTED))


def call(kind: type[Result], as_json: bool, func: Callable[..., Any], **options: Any) -> Any:
    """Run one API call with the install line and the progress line wired in; a failure or Ctrl-C ends the
    process here with its exit code, after the progress line is gone and the cursor is back."""
    found: dict = {}
    progress = Progress()

    def chosen(install: Install) -> None:
        found.update(install=install)
        render.install_line(out, install)

    try:
        return func(on_install=chosen, **options, **({"on_stage": progress} if kind is not RevertResult else {}))
    except PatchError as exc:
        progress.stop()
        fail(exc, kind, as_json, found.get("install"))
    except KeyboardInterrupt as exc:
        progress.stop()
        interrupted(exc, kind, as_json, found.get("install"))
    finally:
        progress.stop()
