"""Kill apply and revert at every checkpoint (SIGKILL-like ``os._exit``); the next command must
leave the install byte-identical to either the pristine or the fully patched set."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import LATEST, OLD, snapshot
from rtdetr_patch.patcher.disk.killpoints import KILL_ENV
from rtdetr_patch.patcher.errors import Exit

pytestmark = pytest.mark.slow  # real torch builds or killed runs: minutes (`make test-fast` leaves them out)

MAX_POINTS = 60


class Done:
    def __init__(self, returncode, output=""):
        self.returncode, self.stdout, self.stderr = returncode, output, ""


def run(args, env):
    """The CLI in a forked child (no interpreter start-up: many kill points stay fast), else a subprocess."""
    if not hasattr(os, "fork"):
        return subprocess.run(
            [sys.executable, "-m", "rtdetr_patch", *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    import rtdetr_patch.patcher.disk.killpoints

    from rtdetr_patch.cli import main

    pid = os.fork()
    if pid == 0:  # the child: its own environment, a fresh checkpoint counter, output discarded
        try:
            os.environ.clear()
            os.environ.update(env)
            rtdetr_patch.patcher.disk.killpoints._reached = 0
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            main.main([str(a) for a in args], standalone_mode=False)
            os._exit(0)
        except SystemExit as exc:
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        except BaseException:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    return Done(os.waitstatus_to_exitcode(status))


def kill_points(command, root, env, follow_ups, pristine, patched):
    """Kill `command` at checkpoint 0, 1, 2, ... until it completes; after each kill the next command
    (check, apply and revert in turn) must recover to the pristine or the patched set."""
    tried = 0
    for point in range(MAX_POINTS):
        follow_up = follow_ups[point % len(follow_ups)]
        killed = run(command, {**env, KILL_ENV: str(point)})
        if killed.returncode == 0:
            return tried
        assert killed.returncode == 137, killed.stdout + killed.stderr
        tried += 1  # noqa: SIM113 - the kill points reached so far, returned once the command completes
        after = run(follow_up, env)
        assert after.returncode in (0, Exit.NOT_PATCHED), after.stdout + after.stderr
        state = snapshot(root)
        assert state in (pristine, patched), f"kill point {point}: neither pristine nor patched"
        leftovers = [p for p in root.rglob("*.rtdetr-patch")]
        assert not leftovers, leftovers
        yield_state = "pristine" if state == pristine else "patched"
        # bring the install back to the state the command starts from
        if command[0] == "apply" and yield_state == "patched":
            assert run(["revert", "--target", root], env).returncode == 0
        if command[0] == "revert" and yield_state == "pristine":
            assert run(["apply", "--target", root, "--no-verify"], env).returncode == 0
    raise AssertionError(f"{command[0]} did not complete within {MAX_POINTS} kill points")


@pytest.mark.parametrize("release", [LATEST, OLD])
def test_killed_apply_and_revert_recover(release, tree, tmp_path, capsys):
    root = tree(release)
    env = {**os.environ, "RTDETR_PATCH_HOME": str(tmp_path / "state")}
    pristine = snapshot(root)
    assert run(["apply", "--target", root, "--no-verify"], env).returncode == 0
    patched = snapshot(root)
    assert run(["revert", "--target", root], env).returncode == 0
    assert snapshot(root) == pristine

    follow = [
        ["check", "--static", "--target", root],
        ["apply", "--no-verify", "--target", root],
        ["revert", "--target", root],
    ]
    apply_points = kill_points(["apply", "--target", root, "--no-verify"], root, env, follow, pristine, patched)
    # the install is pristine or patched here; make it patched for the revert round
    if snapshot(root) == pristine:
        assert run(["apply", "--target", root, "--no-verify"], env).returncode == 0
    revert_points = kill_points(["revert", "--target", root], root, env, follow, pristine, patched)
    assert apply_points >= 8 and revert_points >= 4
    with capsys.disabled():
        print(
            f"\n[crash-safety] {release}: {apply_points} apply and {revert_points} revert kill points, "
            "each followed by check, apply or revert in turn"
        )


def test_concurrent_runs_never_interleave(tree, tmp_path):
    """Two applies and a revert racing on one install: one waits for the other; the end state is whole."""
    root = tree(LATEST)
    env = {**os.environ, "RTDETR_PATCH_HOME": str(tmp_path / "state")}
    pristine = snapshot(root)
    assert run(["apply", "--target", root, "--no-verify"], env).returncode == 0
    patched = snapshot(root)
    assert run(["revert", "--target", root], env).returncode == 0
    results = []

    def go(args):
        results.append(run(args, env))

    threads = [threading.Thread(target=go, args=(["apply", "--target", root, "--no-verify"],)) for _ in range(2)]
    threads.append(threading.Thread(target=go, args=(["revert", "--target", root],)))
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stdout + r.stderr for r in results]
    assert snapshot(root) in (pristine, patched)


def test_lock_held_gives_a_clear_message(tree, tmp_path, monkeypatch):
    from rtdetr_patch.patcher.disk.lock import InstallLock
    from rtdetr_patch.patcher.install.locate import locate
    from rtdetr_patch.patcher.record.store import Store

    root = tree(LATEST)
    monkeypatch.setenv("RTDETR_PATCH_HOME", str(tmp_path / "state"))
    install = locate(target=str(root))
    with InstallLock(Store(install).dir, "test"):
        from rtdetr_patch.patcher.errors import PatchError

        with pytest.raises(PatchError) as info, InstallLock(Store(install).dir, "the same install", wait=0.5):
            pass
    assert info.value.code == Exit.LOCKED and "Another rtdetr-patch" in info.value.message
