"""The one runner of programs in the target interpreter (``patcher/target/runner.py``), and the one module type.

Small stand-in programs take the place of the smoke run, the preflight and adopt's probe: the protocol (events,
the answer line, the spec file, the other output kept) and every way a program gives no answer.
"""

from __future__ import annotations

import json
import sys

import pytest
from rtdetr_patch.patcher.modules.user_module import UserModule
from rtdetr_patch.patcher.record.manifest import ModuleEntry, Record
from rtdetr_patch.patcher.target import runner
from rtdetr_patch.patcher.target.target_common import PREFIX


@pytest.fixture
def program(tmp_path, monkeypatch):
    """Write a stand-in program for the job "preflight" (its timeout set by the test)."""

    def write(body: str, timeout: int = 60):
        (tmp_path / "stand_in.py").write_text(
            f"import json, sys, time\nPREFIX = {PREFIX!r}\n{body}\n", encoding="utf-8"
        )
        monkeypatch.setattr(runner, "HERE", tmp_path)
        monkeypatch.setitem(runner.SCRIPTS, "preflight", "stand_in.py")
        monkeypatch.setitem(runner.TIMEOUTS, "preflight", timeout)

    return write


def test_every_job_has_its_program_and_its_time_limit():
    assert set(runner.SCRIPTS) == set(runner.TIMEOUTS) == {"locate", "smoke", "preflight", "adopt-probe"}
    assert runner.TIMEOUTS == {"locate": 120, "smoke": 1800, "preflight": 900, "adopt-probe": 3600}
    assert all(runner.script(job).is_file() for job in runner.SCRIPTS)


def test_the_answer_is_the_last_event_and_every_event_is_seen(program, tmp_path):
    program(
        "print('a log line'); sys.stderr.write('a warning\\n')\n"
        "spec = json.load(open(sys.argv[-1]))\n"
        "sys.stdout.write(PREFIX + json.dumps({'stage': 'one'}) + '\\n')\n"
        "print('noise ' + PREFIX + json.dumps({'spec': spec, 'args': sys.argv[1:-1]}))"
    )
    seen = []
    done = runner.run(
        "preflight", sys.executable, ["x", "y"], cwd=tmp_path, spec={"names": [1, 2]}, on_event=seen.append
    )
    assert done.answer == {"spec": {"names": [1, 2]}, "args": ["x", "y"]} and done.returncode == 0
    assert seen == [{"stage": "one"}, done.answer]
    assert set(done.tail) == {"a log line", "a warning"}
    assert not list(tmp_path.glob("tmp*.json"))  # (the spec file is removed)


def test_a_program_that_ends_without_an_answer(program, tmp_path):
    program("print('starting'); sys.exit(3)")
    with pytest.raises(runner.NoAnswer) as found:
        runner.run("preflight", sys.executable, [], cwd=tmp_path)
    assert found.value.kind == "silent" and found.value.returncode == 3 and found.value.tail == ("starting",)
    assert found.value.output(4) == "ting" and found.value.output(0) == ""


def test_a_program_past_its_time_limit_is_stopped(program, tmp_path):
    program("print('working', flush=True); time.sleep(60)", timeout=1)
    with pytest.raises(runner.NoAnswer) as found:
        runner.run("preflight", sys.executable, [], cwd=tmp_path)
    assert found.value.kind == "timeout" and "timed out after 1 second" in str(found.value.cause)
    assert found.value.tail == ("working",)


def test_an_interpreter_that_does_not_start(program, tmp_path):
    program("")
    with pytest.raises(runner.NoAnswer) as found:
        runner.run("preflight", str(tmp_path / "no-python"), [], cwd=tmp_path)
    assert found.value.kind == "start" and isinstance(found.value.cause, OSError)


def test_a_user_module_is_its_record_entry_with_the_run_s_facts():
    module = UserModule(
        name="convs",
        classes=("A", "B"),
        rules=(("B", "conv"),),
        safe_names=("timm.X",),
        data=b"x = 1\n",
        explicit=True,
        report=({"name": "A"},),
    )
    assert module.rel == module.entry.rel == "nn/Addmodules/convs.py"
    assert module.backbones == module.entry.backbones == ("A",)
    assert type(module.entry) is ModuleEntry and module.entry == ModuleEntry(
        "convs", ("A", "B"), ("timm.X",), (("B", "conv"),)
    )
    record = Record(tool="t", release="8.4.190", package="p", modules=(module.entry,))
    data = json.loads(json.dumps({"format": 1, **record.to_dict()}))
    assert data["options"]["modules"] == [
        {"name": "convs", "classes": ["A", "B"], "safe_names": ["timm.X"], "rules": {"B": "conv"}}
    ]
    assert Record.of(data, "manifest.json") == record
