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
import shutil
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


@pytest.fixture(scope="module")
def outputs(release_trees, tmp_path_factory) -> dict[str, tuple[int, str]]:
    """What each command prints (exit code, stdout and stderr together, wide: no wrapping), by the situation the
    documents quote it for. The smoke run is replaced by the figures above."""
    base = tmp_path_factory.mktemp("quoted")
    runner = CliRunner()

    def tree(name: str) -> Path:
        root = base / name
        shutil.copytree(release_trees(LATEST), root)
        return root

    def run(*args, env=None):
        killpoints._reached = 0
        result = runner.invoke(cli_main, [str(a) for a in args], env=env)
        return result.exit_code, result.output

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    pristine, root = tree("pristine"), tree("patched")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RTDETR_PATCH_HOME", str(base / "state"))
        mp.setenv("COLUMNS", "400")
        mp.setattr(verify_module, "verify", lambda install, yaml, on_stage, train=False, stock=True: dict(FIGURES))
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
            "Ctrl-C in apply's writes": run("apply", "--target", tree("a"), env={killpoints.INTERRUPT_ENV: "2"}),
            "Ctrl-C in revert's writes": run("revert", "--target", root, env={killpoints.INTERRUPT_ENV: "2"}),
        }
        mp.setattr(verify_module, "verify", ctrl_c)
        seen["Ctrl-C in apply's smoke run"] = run("apply", "--target", tree("b"))
        mp.setattr(api, "locate", ctrl_c)
        seen["Ctrl-C in check"] = run("check", "--target", root)
    return seen


# (document, the quote as a regex with one group, how many times it is quoted there, the situation that prints it)
QUOTES = [
    (README, r'ends with "([^"]+)"', 1, "apply"),
    (README_ZH, r'最后一行是 "([^"]+)"', 1, "apply"),
    (README, r'"(Already patched)"', 1, "apply (again)"),
    (README_ZH, r'"(Already patched)"', 1, "apply (again)"),
    (README, r'"(Nothing to revert)"', 1, "revert (pristine)"),
    (README_ZH, r'"(Nothing to revert)"', 1, "revert (pristine)"),
    (OPTIONS, r'"(Nothing to revert)"', 1, "revert (pristine)"),
    # a transform not needed on the pinned release: a note of check's
    (README, r'"(get-flops is not needed on\s+[^"]+)"', 1, "check --static"),
    (README_ZH, r'"(get-flops is not needed on [^"]+)"', 1, "check --static"),
    (OPTIONS, r'`"(get-flops is not needed on [^"]+)"`', 1, "check --static"),
    # check on an unpatched install, and a failure under --quiet ("N" stands for the code)
    (OPTIONS, r'says "(this install is not patched)"', 1, "check (unpatched)"),
    (OPTIONS, r'"(FAILED \(exit 8\)|FAILED \(exit N\))"', 1, "check --quiet (unpatched)"),
    # the Ctrl-C table, row by row
    (OPTIONS, r'(?m)^\| before anything is written[^|]*\| "([^"]*)" \|', 1, "Ctrl-C in check"),
    (OPTIONS, r'(?m)^\| while `apply` writes \| "([^"]*)" \|', 1, "Ctrl-C in apply's writes"),
    (OPTIONS, r'(?m)^\| during `apply`\'s smoke run \| "([^"]*)" \|', 1, "Ctrl-C in apply's smoke run"),
    (OPTIONS, r'(?m)^\| while `revert` writes \| "([^"]*)" \|', 1, "Ctrl-C in revert's writes"),
]


@pytest.mark.parametrize(
    ("path", "pattern", "times", "situation"), QUOTES, ids=[f"{q[0].name}: {q[3]}" for q in QUOTES]
)
def test_each_quoted_line_is_printed(outputs, path, pattern, times, situation):
    found = quoted(path, pattern)
    assert len(found) == times, f"{path.name} quotes {pattern} {len(found)} times"
    printed = flat(outputs[situation][1])
    for quote in found:
        assert flat(quote.replace("(exit N)", "(exit 8)")) in printed, (
            f"{path.name} quotes {quote!r}; printed: {printed}"
        )


def test_every_quote_of_the_tools_output_is_checked():
    """A new quote of a message in the READMEs or docs/options.md needs its row in QUOTES."""
    checked = {(path, q) for path, pattern, _, _ in QUOTES for q in quoted(path, pattern)}
    for path in (README, README_ZH, OPTIONS):
        for quote in quoted(path, r'"((?:[A-Z][a-z]+|get-flops|run) [^"]{6,})"'):
            if quote.startswith(("RT-DETR", "Inference")) or "," in quote[:2]:
                continue
            assert any(q == quote for p, q in checked if p == path), f"{path.name}: {quote!r} is not in QUOTES"


def test_the_cached_line_is_printed(outputs):
    """verification.md quotes the cached run's line with "(time)" and "..." for what varies."""
    line = quoted(VERIFICATION, r'with the line "([^"]+)"')
    assert len(line) == 1
    head, _, tail = flat(line[0]).partition(" (time)")
    tail = tail.replace("...", "").strip()
    cached, fresh = flat(outputs["check (nothing changed)"][1]), flat(outputs["check"][1])
    assert head in cached and tail in cached and head not in fresh


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
