"""Every line of the tool's output that the READMEs (both languages) and docs/ quote is one the tool prints (issue
27: "one wording per situation, quoted in the README from the tool itself"): the commands are run on a real release
tree and each quoted line is looked for in what they print, so a change of wording fails here until the quote
follows it.

Cheap: in-process commands on one extracted 8.4.190 tree; the smoke run (a separate process, tens of seconds) is
replaced by a stand-in that returns its figures, since only the words around them are compared.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import rtdetr_patch.patcher.disk.killpoints as killpoints
from click.testing import CliRunner
from conftest import LATEST
from rtdetr_patch.patcher.commands import verify as verify_module
from rtdetr_patch.patcher.errors import Exit

from rtdetr_patch import api
from rtdetr_patch.cli import main as cli_main

REPO = Path(__file__).resolve().parent.parent
README, README_ZH = REPO / "README.md", REPO / "README.zh-CN.md"
OPTIONS, VERIFICATION = REPO / "docs" / "options.md", REPO / "docs" / "verification.md"

FIGURES = {
    "release": LATEST,
    "torch": "2.5.0",
    "yaml": "rtdetr-MobileNetV3.yaml",
    "imgsz": 640,
    "family": "rtdetr",
    "backbone": "MobileNetV3",
    "backbone_widths": [16, 24, 48, 576],
    "backbone_shapes": [[1, 16, 160, 160], [1, 24, 80, 80], [1, 48, 40, 40], [1, 576, 20, 20]],
    "output_shape": [1, 300, 84],
    "loss": 26.1,
    "stepped_tensors": 379,
    "backbone_grad_tensors": 138,
    "params": 9_847_760,
    "gflops": 26.3,
    "gflops_source": "eval forward",
    "rtdetr_l_params": 32_970_476,
    "seconds": 9.5,
}


def flat(text: str) -> str:
    """Whitespace collapsed: a terminal's line wrapping is not wording."""
    return " ".join(text.split())


def quoted(path: Path, pattern: str) -> list[str]:
    """The quotes in ``path`` matching ``pattern`` (a regex with one group), outside fenced code blocks."""
    prose, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            inside = not inside
        elif not inside:
            prose.append(line)
    return re.findall(pattern, "\n".join(prose))


@pytest.fixture
def run(monkeypatch):
    """``run(*args, env=None) -> (exit code, output)``: the command line in-process, stdout and stderr together,
    wide (no wrapping), the smoke run replaced by the figures above."""
    runner = CliRunner()
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setattr(verify_module, "verify", lambda install, yaml, on_stage, train=False, stock=True: dict(FIGURES))

    def invoke(*args, env=None):
        killpoints._reached = 0
        result = runner.invoke(cli_main, [str(a) for a in args], env=env)
        return result.exit_code, result.output

    return invoke


@pytest.fixture
def outputs(tree, run, monkeypatch) -> dict[str, tuple[int, str]]:
    """What each command prints, by the situation the documents quote it for."""
    pristine, root = tree(LATEST), tree(LATEST)
    seen = {
        "revert (pristine)": run("revert", "--target", pristine),
        "check (unpatched)": run("check", "--target", pristine),
        "apply": run("apply", "--target", root),
        "apply (again)": run("apply", "--target", root),
        "check --static": run("check", "--static", "--target", root),
        "check": run("check", "--target", root, "--fresh"),
        "check (nothing changed)": run("check", "--target", root),
        "check --quiet (unpatched)": run("check", "--quiet", "--target", pristine),
        "check --json (nowhere)": run("check", "--target", "/nowhere", "--json"),
        "Ctrl-C in apply's writes": run("apply", "--target", tree(LATEST), env={killpoints.INTERRUPT_ENV: "2"}),
        "Ctrl-C in revert's writes": run("revert", "--target", root, env={killpoints.INTERRUPT_ENV: "2"}),
    }

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_module, "verify", ctrl_c)
    seen["Ctrl-C in apply's smoke run"] = run("apply", "--target", tree(LATEST))
    monkeypatch.setattr(api, "locate", ctrl_c)
    seen["Ctrl-C in check"] = run("check", "--target", root)
    return seen


def test_every_quoted_line_is_printed(outputs):
    said = {situation: flat(text) for situation, (_, text) in outputs.items()}
    everything = " | ".join(said.values())
    quotes = {
        # README.md and README.zh-CN.md: the lines of apply and revert
        **{q: "apply" for q in quoted(README, r'ends with "([^"]+)"') + quoted(README_ZH, r'最后一行是 "([^"]+)"')},
        **{q: "apply (again)" for path in (README, README_ZH) for q in quoted(path, r'"(Already patched)"')},
        **{q: "revert (pristine)" for path in (README, README_ZH, OPTIONS) for q in quoted(path, r'"(Nothing to revert)"')},
        # a transform not needed on the pinned release: a note of check's
        **{q: "check --static" for path in (README, README_ZH) for q in quoted(path, r'"(get-flops is not needed on [^"]+)"')},
        **{q: "check --static" for q in quoted(OPTIONS, r'`"(get-flops is not needed on [^"]+)"`')},
        # check on an unpatched install, and a failure under --quiet
        **{q: "check (unpatched)" for q in quoted(OPTIONS, r'says "(run `rtdetr-patch apply`)"')},
        **{q.replace("N", "8"): "check --quiet (unpatched)" for q in quoted(OPTIONS, r'"(FAILED \(exit N\))"')},
        # the Ctrl-C table
        **dict(zip(quoted(OPTIONS, r'^\|[^|]*\| "(Interrupted[^"]*)" \|'), [
            "Ctrl-C in check", "Ctrl-C in apply's writes", "Ctrl-C in apply's smoke run", "Ctrl-C in revert's writes",
        ])),
    }  # fmt: skip
    assert len(quotes) >= 11, quotes
    for quote, situation in quotes.items():
        assert flat(quote) in said[situation], f"quoted: {quote!r}; {situation} printed: {said[situation]}"
    # the cached run: verification.md quotes its line with "(time)" and "..." for what varies
    line = quoted(VERIFICATION, r'with the line "([^"]+)"')
    assert len(line) == 1
    head, _, tail = flat(line[0]).partition(" (time)")
    cached = said["check (nothing changed)"]
    assert head in cached and tail.rstrip(".").rstrip() in cached and head not in said["check"]
    assert everything  # (every situation printed something)


def test_the_exit_codes_tables_are_the_tools(outputs):
    codes = {int(c) for c in Exit}
    for path in (README, README_ZH):
        table = {int(c) for c in quoted(path, r"(?m)^\| (\d+) \|")}
        assert table == codes, f"{path.name}: the table has {sorted(table ^ codes)} where the tool differs"
    assert outputs["check (unpatched)"][0] == Exit.NOT_PATCHED
    assert outputs["Ctrl-C in check"][0] == outputs["Ctrl-C in apply's writes"][0] == 130


def test_the_json_sample_is_the_tools(outputs):
    """docs/options.md's sample of a failed run, line by line ("..." stands for the rest), as the tool prints it."""
    text = OPTIONS.read_text(encoding="utf-8")
    sample = re.search(r"`rtdetr-patch check --target /nowhere --json`, exit (\d+)\):\n\n```\n(.*?)```", text, re.S)
    assert sample, "the JSON sample of docs/options.md moved"
    code, printed = outputs["check --json (nowhere)"]
    assert code == int(sample.group(1))
    report = json.loads(printed)
    lines = [line for line in sample.group(2).splitlines() if line.strip() not in ("{", "}", "...")]
    printed_lines = json.dumps(report, indent=2, ensure_ascii=False).splitlines()
    for line in lines:
        assert line.rstrip(",") in [p.rstrip(",") for p in printed_lines], line
