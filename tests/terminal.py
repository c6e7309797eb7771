"""A command on a real pseudo-terminal, as a person at a keyboard runs it (POSIX ``pty``).

``Terminal(argv)`` forks the command with the pty's slave as its controlling terminal, stdin, stdout
and stderr, at a given size; ``expect`` reads until a text appears, ``send`` types (``"\\x03"`` is
Ctrl-C: the terminal sends SIGINT to the foreground process group, the command and its children),
``wait`` returns the exit code. Every read and wait has a deadline: a command that hangs fails the
test in seconds, and is killed with its whole process group.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import select
import signal
import struct
import sys
import time

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7](;[0-9]+)*m")
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


class Hang(AssertionError):
    pass


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, cols: int = 100, rows: int = 40):
        import fcntl
        import pty
        import termios

        self.argv = argv
        self.raw = ""
        # a character of several bytes (the tables' borders) can end one read and start the next
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.status: int | None = None
        pid, fd = pty.fork()
        if pid == 0:  # the child: size its terminal, then become the command
            try:
                ctrl_c_default()
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.chdir(cwd)
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd

    def _read(self, timeout: float) -> bool | None:
        """True: read something; None: nothing within ``timeout``; False: the terminal closed."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the command closed the terminal (it ended)
            return False
        if not data:
            return False
        self.raw += self.decoder.decode(data)
        return True

    @property
    def text(self) -> str:
        """What the screen showed, control sequences removed."""
        return ANSI.sub("", self.raw)

    def expect(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise Hang(
                    f"{' '.join(self.argv[-4:])}: {needle!r} did not appear in {timeout} s; screen:\n"
                    f"{self.text[-3000:]}"
                )
            if self._read(min(left, 0.2)) is False and needle not in self.text:
                raise AssertionError(f"the command ended before {needle!r}; screen:\n{self.text[-3000:]}")

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait(self, timeout: float) -> int:
        """The exit code (a signal N gives -N), reading the output to the end."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            while self._read(0.05) and time.monotonic() < deadline:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
                break
            if time.monotonic() > deadline:
                self.kill()
                raise Hang(f"{' '.join(self.argv[-4:])} did not end in {timeout} s; screen:\n{self.text[-3000:]}")
        while self._read(0.05):
            pass
        os.close(self.fd)
        return self.status

    def kill(self) -> None:
        with contextlib.suppress(OSError):  # gone already
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):  # reaped already
            os.waitpid(self.pid, 0)


def run(argv: list[str], env: dict[str, str], cwd: str, timeout: float, cols: int = 100) -> tuple[int, str, str]:
    """Run to the end on a terminal: (exit code, screen text, raw output with control sequences)."""
    term = Terminal(argv, env, cwd, cols=cols)
    code = term.wait(timeout)
    return code, term.text, term.raw


def ctrl_c_default() -> None:
    """SIGINT back to its default in a child: a job started in the background of a script (as a CI step may
    be) inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored, as a person's shell never has it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def available() -> bool:
    return sys.platform != "win32"
