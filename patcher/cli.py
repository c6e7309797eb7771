"""``rtdetr-patch apply | revert | check``: options and output; the work is in ``actions``."""

from __future__ import annotations

import difflib
import json
import sys
import time

import click
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.table import Table

from . import __version__, actions
from .errors import Exit, PatchError
from .locate import Install, locate
from .verify import verify

DEFAULT_YAML = "rtdetr-MobileNetV3.yaml"
YAML_OPTION = click.option("--yaml", "yaml", default=DEFAULT_YAML, show_default=True,
                           help="The model yaml the verification builds, e.g. rtdetr-MobileNetV3-large.yaml.")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

WHERE = [
    click.option("--python", "python", metavar="PATH",
                 help="Use the ultralytics of another interpreter (a venv, a conda env); it also runs the "
                      "verification."),
    click.option("--target", "target", metavar="DIR",
                 help="Use the ultralytics package in DIR: the package folder, site-packages, or a checkout."),
]


def where_options(func):
    for option in reversed(WHERE):
        func = option(func)
    return func


def fail(exc: PatchError, console: Console = err) -> None:
    console.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    if exc.hint:
        console.print(f"[yellow]what to do:[/] {escape(exc.hint)}", soft_wrap=True)
    sys.exit(int(exc.code))


def chosen(install: Install, console: Console = out) -> None:
    tested = "" if install.tested else "  [yellow](outside the tested range)[/]"
    console.print(f"Ultralytics [bold]{escape(install.release)}[/]{tested} at {escape(str(install.package))}  "
                  f"[dim]({escape(install.how)})[/]",
                  soft_wrap=True)


def run_verify(install: Install, console: Console = out, yaml: str = DEFAULT_YAML) -> dict:
    started = time.perf_counter()
    with console.status("verifying in a fresh process: starting Python") as status:
        figures = verify(install, yaml=yaml, on_stage=lambda name: status.update(
            f"verifying in a fresh process: {name} [dim]({time.perf_counter() - started:.0f} s)[/]"))
    return figures


def print_diff(diff: str) -> None:
    """A unified diff, coloured like git's, never cropped to the terminal width."""
    for line in diff.splitlines():
        style = ("bold" if line.startswith(("+++", "---")) else "green" if line.startswith("+") else
                 "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
        out.print(Text(line, style=style), soft_wrap=True)


def print_modules(rows: list[dict]) -> None:
    """The --module preflight, one line per candidate (built and run at 640x640 on the CPU), never cut."""
    out.print("Your backbones, built and run at 640x640 on the CPU:")
    colours = {"ok": "green", "ok, unusual strides": "yellow", "needs arguments": "yellow", "refused": "red"}
    for r in rows:
        facts = []
        if r.get("channels"):
            facts.append(f"{len(r['channels'])} maps, channels {', '.join(map(str, r['channels']))}")
            facts.append("strides " + "/".join(f"{s:g}" for s in r["strides"]))
        if r.get("params"):
            facts.append(f"{r['params']:,} parameters")
        if r.get("build_s") is not None:
            facts.append(f"built in {r['build_s']:.2f} s")
        line = f"  {escape(r['name'])} ({r['kind']}): " + (", ".join(facts) + ": " if facts else "")
        line += f"[{colours.get(r['status'], 'red')}]{escape(r['status'])}[/]"
        if r.get("note"):
            line += f": {escape(r['note'])}"
        out.print(line, soft_wrap=True)


def figures_table(fig: dict) -> Table:
    table = Table(title=f"Smoke verification of {fig['yaml']} ({fig['seconds']} s, torch {fig['torch']})",
                  title_justify="left")
    table.add_column("check")
    table.add_column("result", justify="right")
    table.add_row("build", f"{fig['backbone']} outputs {fig['backbone_widths']}")
    table.add_row("backbone maps at 640", ", ".join("x".join(map(str, s[1:])) for s in fig["backbone_shapes"]))
    table.add_row("eval forward output", "x".join(map(str, fig["output_shape"])))
    table.add_row("train-mode loss, backward", f"{fig['loss']}, finite gradients in "
                  f"{fig['backbone_grad_tensors']} backbone tensors")
    table.add_row("loss after one SGD step", f"{fig['loss_after_step']}")
    table.add_row("parameters", f"{fig['params'] / 1e6:.2f} M ({fig['params']:,})")
    table.add_row(f"GFLOPs at {fig['imgsz']}", f"{fig['gflops']:.1f}")
    table.add_row("stock rtdetr-l.yaml", f"{fig['rtdetr_l_params'] / 1e6:.2f} M parameters, as shipped")
    for name, state in (fig.get("users_backbones") or {}).items():
        table.add_row(f"your {escape(name)}", escape(state))
    return table


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rtdetr-patch")
def main() -> None:
    """Patch an installed Ultralytics so RT-DETR trains with a MobileNetV3 (list-returning) backbone."""


@main.command()
@where_options
@click.option("--dry-run", is_flag=True, help="Show the changes as a coloured diff and write nothing.")
@click.option("--no-verify", is_flag=True, help="Skip the smoke verification after writing.")
@click.option("--val-rect-fix", is_flag=True, help="Also apply blog step 4.10: rect=False for validation batches.")
@click.option("--force", is_flag=True, help="In a git checkout: patch files that have uncommitted changes too.")
@click.option("--module", "modules", multiple=True, metavar="FILE.py[:NAME]",
              help="Add your own list-returning backbone (repeatable): NAME is the class or factory function "
                   "your yaml row uses; without it, every candidate in the file that builds.")
@YAML_OPTION
def apply(python, target, dry_run, no_verify, val_rect_fix, force, modules, yaml) -> None:
    """Patch Ultralytics, record the originals, then verify with a smoke run."""
    try:
        install = locate(python, target)
        chosen(install)
        result = actions.apply(install, dry_run=dry_run, val_rect_fix=val_rect_fix, force=force,
                               module_specs=tuple(modules))
    except PatchError as exc:
        fail(exc)
    plan = result.plan
    if result.recovered:
        out.print(f"[yellow]{escape(result.recovered)}[/]", soft_wrap=True)
    if result.upgraded_from:
        verb = "would be replaced" if dry_run else "was reverted and is replaced"
        out.print(f"[yellow]The patch written by rtdetr-patch {escape(str(result.upgraded_from))} {verb} by this "
                  f"release's ({__version__}).[/]", soft_wrap=True)
    if result.module_reports:
        print_modules(result.module_reports)
    if result.already:
        out.print("[green]Already patched[/]: every transform is applied and every file is in place; nothing "
                  "changed.")
        return
    table = Table(title_justify="left")
    for column in ("transform", "blog step", "file", "result"):
        table.add_column(column, overflow="fold")
    colours = {"patched": "green", "applied": "green", "not-needed": "dim"}
    for step in plan.steps:
        word = step.outcome.value if not dry_run or step.outcome.value != "patched" else "would patch"
        table.add_row(step.transform.NAME, step.transform.SEED_STEP, step.transform.FILE,
                      f"[{colours[step.outcome.value]}]{word}[/]")
    if dry_run:
        for change in plan.changes:
            diff = "".join(difflib.unified_diff(
                change.before.decode("utf-8", "replace").splitlines(keepends=True),
                change.after.decode("utf-8", "replace").splitlines(keepends=True),
                fromfile=f"a/ultralytics/{change.rel}", tofile=f"b/ultralytics/{change.rel}"))
            print_diff(diff)
        for add in plan.additions:
            out.print(f"[green]+ add[/] ultralytics/{add.rel} ({len(add.data):,} bytes)"
                      + (" [dim](already there)[/]" if add.present else ""))
        out.print(table)
        out.print("[yellow]Dry run[/]: nothing was written.")
        return
    out.print(table)
    out.print(f"Wrote {len(result.written)} file(s), added {len(result.added)} file(s); originals recorded in "
              f"{escape(str(actions.Store(install).dir))}", soft_wrap=True)
    if no_verify:
        out.print("[dim]Verification skipped (--no-verify); run `rtdetr-patch check` before training.[/]")
        return
    try:
        out.print(figures_table(run_verify(install, yaml=yaml)))
    except PatchError as exc:
        fail(exc)
    wrapper = "YOLO" if yaml.lower().startswith("yolo") else "RTDETR"
    out.print(f"[green]Patched and verified.[/] Train with {wrapper}({yaml!r}).")


@main.command()
@where_options
@click.option("--force", is_flag=True, help="Revert files edited since apply too (the edited copies are kept).")
def revert(python, target, force) -> None:
    """Restore every changed file byte for byte and remove every added file."""
    try:
        install = locate(python, target)
        chosen(install)
        result = actions.revert(install, force=force)
    except PatchError as exc:
        fail(exc)
    if result.recovered:
        out.print(f"[yellow]{escape(result.recovered)}[/]", soft_wrap=True)
        return
    if result.nothing:
        out.print("Nothing to revert: this install is not patched.")
        return
    if result.stale_release:
        out.print(f"[yellow]The patch was recorded for Ultralytics {result.stale_release}; the install is now "
                  f"{install.release}.[/] Its files were not touched; the stale record is dropped.")
    for rel in result.restored:
        out.print(f"restored ultralytics/{rel}")
    for rel in result.removed:
        out.print(f"removed  ultralytics/{rel}")
    for path in result.kept:
        out.print(f"[yellow]kept your edited copy at[/] {escape(path)}", soft_wrap=True)
    for rel in result.left:
        out.print(f"[yellow]left untouched (changed by someone else):[/] ultralytics/{rel}", soft_wrap=True)
    out.print("[green]Reverted.[/]")


@main.command()
@where_options
@click.option("--static", is_flag=True, help="Check the files only; skip the smoke verification.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for CI) instead of tables.")
@click.option("--error-on-warn", is_flag=True, help="Fail (exit 8) on warnings too, e.g. an untested release "
              "(notes such as 'not needed on this release' never fail).")
@YAML_OPTION
def check(python, target, static, as_json, error_on_warn, yaml) -> None:
    """Is the patch whole, unchanged, and does it run? Exit 0 only if all holds."""
    console = err if as_json else out
    try:
        install = locate(python, target)
    except PatchError as exc:
        if as_json:
            print(json.dumps({"ok": False, "exit_code": int(exc.code), "error": str(exc)}))
            sys.exit(int(exc.code))
        fail(exc)
    if not as_json:
        chosen(install)
    try:
        report = actions.inspect(install)
    except PatchError as exc:
        if as_json:
            print(json.dumps({"ok": False, "exit_code": int(exc.code), "error": str(exc)}))
            sys.exit(int(exc.code))
        fail(exc)
    report["verification"] = None
    if report["exit_code"] == Exit.OK and error_on_warn and report["warnings"]:
        report["exit_code"] = int(Exit.NOT_PATCHED)
        report["problems"].append("warnings are errors (--error-on-warn)")
    if report["exit_code"] == Exit.OK and not static:
        try:
            report["verification"] = run_verify(install, console, yaml=yaml)
        except PatchError as exc:
            report["exit_code"] = int(exc.code)
            report["problems"].append(str(exc))
    report["ok"] = report["exit_code"] == Exit.OK
    if as_json:
        print(json.dumps(report, indent=2))
        sys.exit(report["exit_code"])
    table = Table(title_justify="left")
    for column in ("transform", "blog step", "file", "state"):
        table.add_column(column, overflow="fold")  # a narrow terminal folds long paths, never cuts them
    colours = {"applied": "green", "not-needed": "dim", "missing": "red", "unrecognised": "red"}
    for t in report["transforms"]:
        table.add_row(t["name"], t["blog_step"], t["file"], f"[{colours[t['state']]}]{t['state']}[/]")
    for f in report["files"]:
        table.add_row("", "", f["path"], f"[{'green' if f['state'] == 'patched' else 'red'}]{f['state']}[/]")
    for a in report["added"]:
        table.add_row("(added)", "4.1-5.1", a["path"], f"[{'green' if a['state'] == 'present' else 'red'}]"
                      f"{a['state']}[/]")
    for mod in report.get("modules", []):
        table.add_row("(--module)", "", mod["file"], ", ".join(mod["classes"]))
    out.print(table)
    for note in report.get("notes", []):
        out.print(f"[dim]note: {escape(note)}[/]", soft_wrap=True)
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    for problem in report["problems"]:
        out.print(f"[red]problem:[/] {escape(problem)}", soft_wrap=True)
    if report["verification"]:
        out.print(figures_table(report["verification"]))
    if report["ok"]:
        out.print("[green]OK[/]: the patch is whole" + (" (static check only)." if static else " and runs."))
    else:
        out.print(f"[red]FAILED[/] (exit {report['exit_code']}).")
    sys.exit(report["exit_code"])
