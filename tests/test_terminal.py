"""Every command on a real pseudo-terminal, as a person types it, and Ctrl-C wherever it can land.

Piped output (``CliRunner``, ``| cat``, CI logs) never starts the live progress line, so these run the
installed entry point on a pty (``terminal.Terminal``) with a deadline on every read: a command that
hangs fails the test within seconds, not minutes. Ctrl-C is the terminal's own ``^C`` (SIGINT to the
foreground process group, the smoke run included), a SIGINT to a piped run, and a ``KeyboardInterrupt``
raised at each write checkpoint (``RTDETR_PATCH_INTERRUPT_AT``); each must end the command with exit
130 and one line that tells the truth about the install.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import terminal
from conftest import LATEST, snapshot
from helpers import SMOKE, STARTS, cursor_shown, environment, flat
from rtdetr_patch.patcher.disk.killpoints import INTERRUPT_ENV
from rtdetr_patch.patcher.errors import Exit
from terminal import COLOUR, Terminal

pytestmark = pytest.mark.skipif(not terminal.available(), reason="pseudo-terminals are POSIX (Windows has none)")

PROGRESS = "verifying in a fresh process"
STATIC = 30  # seconds: a command without the smoke run takes under 1


def tool(*args) -> list[str]:
    return [sys.executable, "-m", "rtdetr_patch", *map(str, args)]


def smoke_processes(root: Path) -> list[int]:
    """Smoke runs of this install still alive (Linux /proc)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"smoke.py") for part in cmd) and str(root).encode() in cmd:
            found.append(int(entry.name))
    return found


# -- every command ends by itself, with what a person sees ------------------------------------
def test_apply_then_check_on_a_terminal(tree, tmp_path):
    root = tree(LATEST)
    term = Terminal(tool("apply", "--target", root), environment(), str(tmp_path))
    term.expect(f"Ultralytics {LATEST} at", STARTS)
    term.expect(PROGRESS, STARTS)  # the live progress line while the smoke run works
    code = term.wait(SMOKE)
    text = flat(term.text)
    assert code == 0, term.text
    assert "Smoke verification of rtdetr-MobileNetV3.yaml" in text and "Patched and verified." in text
    assert "parse-model" in text and "one optimizer step" in text and "weight tensors, all finite" in text
    assert cursor_shown(term.raw) and COLOUR.search(term.raw)  # a terminal gets colour and its cursor back

    # nothing changed since apply's smoke run: check gives its figures and says so, without running it again
    code, text, raw = terminal.run(tool("check", "--target", root), environment(), str(tmp_path), STATIC)
    assert code == 0, text
    assert "These figures are from the smoke run of" in flat(text) and "OK: the patch is whole and runs." in flat(text)
    assert "weight tensors, all finite" in flat(text) and cursor_shown(raw)

    term = Terminal(tool("check", "--fresh", "--target", root), environment(), str(tmp_path))
    term.expect(PROGRESS, STARTS)  # --fresh: the smoke run itself, with its progress line
    code = term.wait(SMOKE)
    assert code == 0, term.text
    assert "OK: the patch is whole and runs." in flat(term.text) and cursor_shown(term.raw)
    assert "These figures are from" not in flat(term.text)


def test_static_commands_on_a_terminal(tree, tmp_path):
    """On one install, in order: dry run, apply, check, apply again, revert, check, revert again."""
    root = tree(LATEST)
    steps = [
        (("apply", "--dry-run"), 0, "Dry run: nothing was written."),
        (("apply", "--no-verify"), 0, "Verification skipped (--no-verify)"),
        (("check", "--static"), 0, "OK: the patch is whole (static check only)."),
        (("apply",), 0, "Already patched"),
        (("revert",), 0, "Reverted."),
        (("check", "--static"), Exit.NOT_PATCHED, "FAILED (exit 8)"),
        (("revert",), 0, "Nothing to revert"),
    ]
    for args, code, says in steps:
        got, text, raw = terminal.run(tool(*args, "--target", root), environment(), str(tmp_path), STATIC)
        assert got == code, (args, text)
        assert says in flat(text) and cursor_shown(raw), (args, text)


@pytest.mark.parametrize("command", [("apply", "--no-verify"), ("check", "--static"), ("revert",)])
def test_json_and_quiet_on_a_terminal(tree, tmp_path, command):
    root = tree(LATEST)
    if command[0] != "apply":
        assert (
            terminal.run(tool("apply", "--no-verify", "--target", root), environment(), str(tmp_path), STATIC)[0] == 0
        )
    code, text, raw = terminal.run(tool(*command, "--json", "--target", root), environment(), str(tmp_path), STATIC)
    assert code == 0, text
    report = json.loads(raw.replace("\r\n", "\n"))  # one JSON object and nothing else, even on a terminal
    assert report["command"] == command[0] and report["ok"] is True
    if command[0] == "revert":
        terminal.run(tool("apply", "--no-verify", "--target", root), environment(), str(tmp_path), STATIC)
    code, text, raw = terminal.run(tool(*command, "--quiet", "--target", root), environment(), str(tmp_path), STATIC)
    assert code == 0 and text.strip() == "", text


def test_no_color_on_a_terminal(tree, tmp_path):
    root = tree(LATEST)
    code, text, raw = terminal.run(
        tool("apply", "--dry-run", "--target", root), environment(NO_COLOR="1"), str(tmp_path), STATIC
    )
    assert code == 0 and "Dry run: nothing was written." in flat(text)
    assert not COLOUR.search(raw), "NO_COLOR: no colours on a terminal"
    code, _, raw = terminal.run(tool("apply", "--dry-run", "--target", root), environment(), str(tmp_path), STATIC)
    assert code == 0 and COLOUR.search(raw)  # and without it, colours: the check above can fail


def test_a_terminal_narrower_than_the_tables(tree, tmp_path):
    root = tree(LATEST)
    for args, code in ((("apply", "--dry-run"), 0), (("check", "--static"), Exit.NOT_PATCHED)):
        got, text, _ = terminal.run(tool(*args, "--target", root), environment(), str(tmp_path), STATIC, cols=40)
        assert got == code, text
        borders = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
        if code == 0:
            assert borders and all(len(line) <= 40 for line in borders), [line for line in borders if len(line) > 40]
        else:  # check on a pristine install: no table, one problem line left whole for the terminal to wrap
            assert not borders and any(
                "this install is not patched (" in line and line.endswith(f"{root}`") for line in text.splitlines()
            ), text
        assert ("Dry run: nothing was written." if code == 0 else "FAILED (exit 8)") in flat(text)


def test_writing_to_stdout_while_the_progress_line_runs(tmp_path):
    """The class of the hang: anything printed, written to stderr or warned while the live line runs."""
    script = tmp_path / "live.py"
    script.write_text(
        "import sys, warnings\n"
        "from rtdetr_patch import cli\n"
        "cli.setup(False, False)\n"
        "progress = cli.Progress()\n"
        "progress('stage one')\n"
        "print('printed while the progress line runs')\n"
        "sys.stderr.write('stderr while the progress line runs\\n')\n"
        "warnings.warn('warned while the progress line runs')\n"
        "progress('stage two')\n"
        "progress.stop()\n"
        "cli.out.print('after the progress line')\n",
        encoding="utf-8",
    )
    code, text, raw = terminal.run([sys.executable, str(script)], environment(), str(tmp_path), STATIC)
    assert code == 0, text
    for line in ("printed while", "stderr while", "warned while", "after the progress line"):
        assert line in text
    assert cursor_shown(raw)


# -- Ctrl-C ------------------------------------------------------------------------------------
def test_ctrl_c_during_the_verification_of_apply(tree, tmp_path):
    root = tree(LATEST)
    term = Terminal(tool("apply", "--target", root), environment(), str(tmp_path))
    term.expect(PROGRESS, STARTS)
    started = time.monotonic()
    term.send("\x03")
    code = term.wait(STATIC)
    took = time.monotonic() - started
    assert code == Exit.INTERRUPTED == 130, term.text
    assert took < 10, f"Ctrl-C took {took:.1f} s to stop the command"
    assert (
        "Interrupted after writing: the patch is in place and recorded but not yet verified. Run "
        "`rtdetr-patch check` to verify it."
    ) in flat(term.text)
    assert cursor_shown(term.raw) and "Traceback" not in term.text
    assert not smoke_processes(root), "the smoke run outlived the command"
    done = subprocess.run(tool("check", "--static", "--target", root), capture_output=True, text=True, timeout=STATIC)
    assert done.returncode == 0, done.stdout + done.stderr  # what the line said: patched, recorded


def test_ctrl_c_during_the_verification_of_check(tree, tmp_path):
    root = tree(LATEST)
    assert (
        subprocess.run(tool("apply", "--no-verify", "--target", root), capture_output=True, timeout=STATIC).returncode
        == 0
    )
    before = snapshot(root)
    term = Terminal(tool("check", "--target", root), environment(), str(tmp_path))
    term.expect(PROGRESS, STARTS)
    term.send("\x03")
    code = term.wait(STATIC)
    assert code == 130, term.text
    assert "Interrupted before anything was written: the install is as it was." in flat(term.text)  # one wording
    assert cursor_shown(term.raw) and not smoke_processes(root) and snapshot(root) == before


def test_ctrl_c_with_output_piped(tree, tmp_path):
    """A piped run (``rtdetr-patch apply | tee log``) gets SIGINT from the terminal the same way."""
    root = tree(LATEST)
    proc = subprocess.Popen(
        tool("apply", "--target", root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=str(tmp_path),
        preexec_fn=terminal.ctrl_c_default,
    )
    deadline = time.monotonic() + STARTS
    while not smoke_processes(root):
        assert time.monotonic() < deadline and proc.poll() is None, "the verification did not start"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=STATIC)
    assert proc.returncode == 130, out + err
    assert "not yet verified. Run `rtdetr-patch check` to verify it." in flat(err)
    assert "Aborted!" not in err and "Traceback" not in err
    time.sleep(0.2)
    assert not smoke_processes(root)


def fork_run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """The CLI in a forked child with its own environment and checkpoint counter: (exit code, output)."""
    import rtdetr_patch.patcher.disk.killpoints

    from rtdetr_patch.cli import main

    with tempfile.TemporaryFile() as log:
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                os.environ.clear()
                os.environ.update(env)
                rtdetr_patch.patcher.disk.killpoints._reached = 0
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                sys.stdout = sys.stderr = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - fd 1 itself, not pytest's capture
                main.main([str(a) for a in args], standalone_mode=False)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        log.seek(0)
        return os.waitstatus_to_exitcode(status), log.read().decode("utf-8", "replace")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the per-checkpoint runs fork")
def test_ctrl_c_at_every_write_of_apply_and_revert(tree, tmp_path):
    """Ctrl-C at each checkpoint: exit 130, and the install is what the line says it is."""
    root = tree(LATEST)
    env = {**os.environ, "RTDETR_PATCH_HOME": str(tmp_path / "state")}
    pristine = snapshot(root)
    assert fork_run(["apply", "--no-verify", "--target", root], env)[0] == 0
    patched = snapshot(root)
    assert fork_run(["revert", "--target", root], env)[0] == 0 and snapshot(root) == pristine

    apply_points = 0
    for point in range(60):
        code, output = fork_run(["apply", "--no-verify", "--target", root], {**env, INTERRUPT_ENV: str(point)})
        if code == 0:
            break
        apply_points += 1
        text = flat(output)
        assert code == 130 and "Traceback" not in output, (point, output)
        if "the patch is in place and recorded but not yet verified" in text:  # after the last write
            assert snapshot(root) == patched, point
            assert fork_run(["check", "--static", "--target", root], env)[0] == 0
            assert fork_run(["revert", "--target", root], env)[0] == 0
            continue
        assert (
            "every file was put back, the install is as it was" in text
            or "before any file of the install was written: it is as it was" in text
            or "before anything was written: the install is as it was" in text
        ), (point, output)
        assert snapshot(root) == pristine, f"point {point}: the line says 'as it was'"
        code, output = fork_run(["check", "--static", "--target", root], env)
        assert code == Exit.NOT_PATCHED and "interrupted apply" not in output, (point, output)
    assert snapshot(root) == patched

    revert_points = 0
    for point in range(60):
        code, output = fork_run(["revert", "--target", root], {**env, INTERRUPT_ENV: str(point)})
        if code == 0:
            break
        revert_points += 1
        text = flat(output)
        assert code == 130 and "Traceback" not in output, (point, output)
        if "before anything was written: the install is as it was" in text:
            assert snapshot(root) == patched, point
            continue
        if "Interrupted after reverting: the install is pristine again." in text:
            assert snapshot(root) == pristine, point
            assert fork_run(["apply", "--no-verify", "--target", root], env)[0] == 0
            continue
        assert "the next rtdetr-patch command finishes the revert (run `rtdetr-patch revert`)" in text, output
        code, output = fork_run(["revert", "--target", root], env)
        assert code == 0 and "An interrupted revert was found and completed" in flat(output), output
        assert snapshot(root) == pristine
        assert fork_run(["apply", "--no-verify", "--target", root], env)[0] == 0
    assert snapshot(root) == pristine
    assert apply_points >= 8 and revert_points >= 4, (apply_points, revert_points)


def test_api_interrupt_stays_a_keyboard_interrupt(tree, monkeypatch):
    """In a notebook, interrupting the kernel during apply raises KeyboardInterrupt, with the state on it."""
    import rtdetr_patch.patcher.disk.killpoints as safety

    from rtdetr_patch import apply

    root = tree(LATEST)
    before = snapshot(root)
    monkeypatch.setattr(safety, "_reached", 0)
    monkeypatch.setenv(INTERRUPT_ENV, "3")
    with pytest.raises(KeyboardInterrupt) as info:
        apply(target=str(root), no_verify=True)
    assert "the install is as it was" in info.value.state and snapshot(root) == before


@pytest.mark.slow
def test_make_demo_on_a_terminal(release_trees, tmp_path):
    """The README's main command, typed in a terminal: `make demo` applies and checks with the live progress.

    It runs on a venv of its own (``VENV=``) holding a fresh Ultralytics, so the project's ``.venv`` is not
    touched: torch and the tool come from this interpreter's site-packages through a ``.pth`` file, placed
    after the venv's own folder, and the stamp the Makefile leaves after `pip install` is set up as done.
    """
    import shutil
    import sysconfig

    repo = Path(__file__).resolve().parents[1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python*/site-packages"))
    shutil.copytree(release_trees(LATEST) / "ultralytics", site / "ultralytics")
    (site / "zz_outer.pth").write_text(f"{repo}\n{sysconfig.get_paths()['purelib']}\n", encoding="utf-8")
    script = venv / "bin" / "rtdetr-patch"
    script.write_text(f"#!{venv / 'bin' / 'python'}\nfrom rtdetr_patch._entry import run\nrun()\n", encoding="utf-8")
    script.chmod(0o755)
    stamp = venv / f".ready-{LATEST}"
    stamp.touch()
    later = max((repo / "Makefile").stat().st_mtime, (repo / "pyproject.toml").stat().st_mtime) + 10
    os.utime(stamp, (later, later))

    term = Terminal(
        ["/usr/bin/env", "make", "-C", str(repo), "demo", f"VENV={venv}", f"ULTRALYTICS={LATEST}"],
        environment(RTDETR_PATCH_HOME=str(tmp_path / "state")),
        str(tmp_path),
    )
    term.expect(f"Ultralytics {LATEST} at {site / 'ultralytics'}", STARTS)
    term.expect(PROGRESS, STARTS)
    code = term.wait(2 * SMOKE)
    text = flat(term.text)
    assert code == 0, term.text
    assert "Patched and verified." in text and "OK: the patch is whole and runs." in text
    assert cursor_shown(term.raw) and "Setting up" not in text  # the stamp said the venv is ready
