"""What the command line prints for each result: tables and lines for people, one JSON object for scripts.

Every function here writes to the console it is given and decides nothing: the results say what happened,
the command's options say what was asked. Each message is written in one place (``recovered``, ``wrote``,
``warnings``, ``dry_run``...), whichever commands print it.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .patcher.errors import PatchError
from .patcher.install.locate import Install
from .patcher.results import (
    NOT_PATCHED_PROBLEM,
    AdoptResult,
    AdoptYamlRow,
    ApplyResult,
    CheckModuleRow,
    CheckResult,
    Result,
    RevertResult,
)
from .patcher.states import AddedState, AdoptStatus, FileState, Outcome, TransformState
from .patcher.version import __version__

APPLY_COLOURS = {Outcome.PATCHED: "green", Outcome.APPLIED: "green", Outcome.NOT_NEEDED: "dim"}
CHECK_COLOURS = {
    TransformState.APPLIED: "green",
    TransformState.NOT_NEEDED: "dim",
    TransformState.MISSING: "red",
    TransformState.UNRECOGNISED: "red",
}
MODULE_COLOURS = {"ok": "green", "ok, unusual strides": "yellow", "needs arguments": "yellow", "refused": "red"}
NAME_COLOURS = {
    AdoptStatus.CARRIED: "green",
    AdoptStatus.OURS: "green",
    AdoptStatus.NATIVE: "yellow",
    AdoptStatus.NOT_CARRIED: "red",
}


# -- for scripts -----------------------------------------------------------------------------------
def json_text(result: Result) -> str:
    """The one JSON object ``--json`` prints (the schema is in ``rtdetr_patch.api``)."""
    return json.dumps(result.to_dict(), indent=2)


# -- lines every command shares ---------------------------------------------------------------------
def install_line(out: Console, install: Install) -> None:
    """Which Ultralytics the command works on, and how it was found."""
    tested = "" if install.tested else "  [yellow](outside the tested range)[/]"
    out.print(
        f"Ultralytics [bold]{escape(install.release)}[/]{tested} at {escape(str(install.package))}  "
        f"[dim]({escape(install.how)})[/]",
        soft_wrap=True,
    )


def error(err: Console, exc: PatchError) -> None:
    err.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    if exc.hint:
        err.print(f"[yellow]what to do:[/] {escape(exc.hint)}", soft_wrap=True)


def interrupted(err: Console, state: str) -> None:
    err.print(f"[bold yellow]{escape(state)}[/]", soft_wrap=True)


def recovered(out: Console, text: str | None) -> None:
    """What a killed run left and this one finished (printed first, once)."""
    if text:
        out.print(f"[yellow]{escape(text)}[/]", soft_wrap=True)


def count(n: int, word: str, plural: str | None = None) -> str:
    """``1 file``, ``2 files``: every count the output prints."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def wrote(out: Console, written: list[str], added: list[str], store: str | None) -> None:
    out.print(
        f"Wrote {count(len(written), 'file')}, added {count(len(added), 'file')}; originals recorded in "
        f"{escape(str(store))}",
        soft_wrap=True,
    )


def warnings(out: Console, items: list[str]) -> None:
    """``result.warnings``: the stored facts (a recovered run, files left untouched) are printed on their own."""
    for warning in items:
        out.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


def notes(out: Console, result: Result) -> None:
    for note in result.notes:
        out.print(f"[dim]note: {escape(note)}[/]", soft_wrap=True)
    warnings(out, result.warnings)


def problems(console: Console, items: list[str]) -> None:
    for problem in items:
        console.print(f"[red]problem:[/] {escape(problem)}", soft_wrap=True)


def dry_run(out: Console) -> None:
    out.print("[yellow]Dry run[/]: nothing was written.")


def diff(out: Console, text: str) -> None:
    """A unified diff, coloured like git's, never cropped to the terminal width."""
    for line in text.splitlines():
        style = (
            "bold"
            if line.startswith(("+++", "---"))
            else "green"
            if line.startswith("+")
            else "red"
            if line.startswith("-")
            else "cyan"
            if line.startswith("@@")
            else ""
        )
        out.print(Text(line, style=style), soft_wrap=True)


def table(*columns: str) -> Table:
    """A table whose cells a narrow terminal folds (long paths are never cut)."""
    made = Table(title_justify="left")
    for column in columns:
        made.add_column(column, overflow="fold")
    return made


# -- the verification --------------------------------------------------------------------------------
def figures_table(fig: dict) -> Table:
    """The smoke verification's figures (``result.verification``), one row per check."""
    table = Table(
        title=f"Smoke verification of {fig['yaml']} ({fig['seconds']} s, torch {fig['torch']})", title_justify="left"
    )
    table.add_column("check")
    table.add_column("result", justify="right")
    _build_rows(table, fig)
    table.add_row(
        "one optimizer step",
        f"moved {fig.get('stepped_tensors', '?')} weight tensors, all finite",
    )
    table.add_row("parameters", f"{fig['params'] / 1e6:.2f} M ({fig['params']:,})")
    table.add_row(f"GFLOPs at {fig['imgsz']}", _gflops(fig))
    if fig.get("fuse"):
        table.add_row(
            "model.fuse() for deploy",
            f"outputs agree (max |diff| {fig['fuse']['max_abs_diff']:.1g}); "
            f"{count(fig['fuse']['deploy_modules'], 'module')} switched to deploy",
        )
    stock = f"{fig['rtdetr_l_params'] / 1e6:.2f} M parameters, as shipped"
    if fig.get("stock_checked"):  # not built again: no byte of the package changed since a run built it
        stock += f" (built {escape(str(fig['stock_checked'].get('at')))}; package unchanged since)"
    table.add_row("stock rtdetr-l.yaml", stock)
    for name, state in (fig.get("users_backbones") or {}).items():
        table.add_row(f"your {escape(name)}", escape(state))
    _trainer_rows(table, fig.get("trainer"))
    return table


def _build_rows(table: Table, fig: dict) -> None:
    """The model built: its backbone's maps, the user's layers, the forward pass, the loss and gradients."""
    if fig["backbone_shapes"]:
        table.add_row("build", f"{fig['backbone']} outputs {fig['backbone_widths']}")
        table.add_row("backbone maps at 640", ", ".join("x".join(map(str, s[1:])) for s in fig["backbone_shapes"]))
    layers = fig.get("registered_layers") or []
    if layers:
        shown = ", ".join(sorted(set(layers)))
        table.add_row("added modules in the model", f"{count(len(layers), 'layer')}: {escape(shown)}")
    table.add_row("eval forward output", "x".join(map(str, fig["output_shape"])))
    table.add_row(
        "train-mode loss, backward",
        f"{fig['loss']}, finite gradients in "
        f"{fig['backbone_grad_tensors']} {'backbone' if fig['backbone_shapes'] else 'model'} tensors",
    )
    iou = fig.get("iou_loss")
    if iou:
        table.add_row("box IoU loss", iou_loss_text(iou))


def _gflops(fig: dict) -> str:
    gflops = fig.get("gflops")
    if gflops is None:
        return "not reported for this model (its get_flops gives 0)"
    return f"{gflops:.1f}" + (" (thop; the release's get_flops gives 0)" if fig.get("gflops_source") == "thop" else "")


def _trainer_rows(table: Table, trained: dict | None) -> None:
    """``--train``: one short epoch through Ultralytics' own trainer."""
    if not trained:
        return
    on = ", ".join(trained["integrations"]) or "none"
    table.add_row(
        "Ultralytics' trainer (--train)",
        f"{trained['iterations']} iterations at {trained['imgsz']}, nc={trained['nc']}, losses "
        f"{escape(str(trained['losses']))}; integrations on: {escape(on)} ({trained['seconds']} s)",
    )
    if trained.get("iou_loss"):
        table.add_row("box IoU loss in the trainer", iou_loss_text(trained["iou_loss"]))
    if trained.get("best_iou_loss"):
        table.add_row("box IoU loss reloaded from best.pt", iou_loss_text(trained["best_iou_loss"]))


def iou_loss_text(iou: dict) -> str:
    """``siou {theta: 4} (model yaml, 13 calls)`` / ``giou (Ultralytics)``."""
    args = " " + escape(str(iou["args"])) if iou.get("args") else ""
    calls = f", {iou['calls']} calls" if iou.get("calls") else ""
    mean = f", running mean {iou['running_mean']}" if iou.get("running_mean") else ""
    return f"{escape(iou['name'])}{args} ({escape(iou['source'])}{calls}{mean})"


# -- apply -------------------------------------------------------------------------------------------
def modules(out: Console, rows: list[dict]) -> None:
    """The --module preflight, one line per candidate (built and run at 640x640 on the CPU), never cut."""
    out.print("Your modules, built and run on the CPU (backbones at 640x640, other modules at probe widths):")
    for r in rows:
        facts = _module_facts(r)
        line = f"  {escape(r['name'])} ({r['kind']}): " + (", ".join(facts) + ": " if facts else "")
        line += f"[{MODULE_COLOURS.get(r['status'], 'red')}]{escape(r['status'])}[/]"
        if r.get("note"):
            line += f": {escape(r['note'])}"
        out.print(line, soft_wrap=True)


def _module_facts(r: dict) -> list[str]:
    facts = []
    if r.get("channels"):
        facts.append(f"{len(r['channels'])} maps, channels {', '.join(map(str, r['channels']))}")
        facts.append("strides " + "/".join(f"{s:g}" for s in r["strides"]))
    if r.get("params"):
        facts.append(f"{r['params']:,} parameters")
    if r.get("build_s") is not None:
        facts.append(f"built in {r['build_s']:.2f} s")
    if r.get("rule"):
        facts.insert(0, f"rule {r['rule']}" + (" (from its signature)" if r.get("inferred") else ""))
    return facts


def apply_text(out: Console, result: ApplyResult, *, no_verify: bool, yaml: str) -> None:
    """``apply``: what it found and would do (``--dry-run``), or what it wrote, then the verification."""
    recovered(out, result.recovered)
    if result.upgraded_from:
        verb = "would be replaced" if result.dry_run else "was reverted and is replaced"
        out.print(
            f"[yellow]The patch written by rtdetr-patch {escape(str(result.upgraded_from))} {verb} by this "
            f"release's ({__version__}).[/]",
            soft_wrap=True,
        )
    if result.modules:
        modules(out, result.modules)
    if result.already:
        out.print("[green]Already patched[/]: every transform is applied and every file is in place; nothing changed.")
        return
    transforms = apply_table(result)
    if result.dry_run:
        diff(out, result.diff)
        for add in result.additions:
            out.print(
                f"[green]+ add[/] ultralytics/{add.path} ({add.bytes:,} bytes)"
                + (" [dim](already there)[/]" if add.present else "")
            )
        out.print(transforms)
        dry_run(out)
        return
    out.print(transforms)
    wrote(out, result.written, result.added, result.store)
    warnings(out, result.warnings)
    if no_verify:
        out.print("[dim]Verification skipped (--no-verify); run `rtdetr-patch check` before training.[/]")
        return
    verification = result.verification or {}
    out.print(figures_table(verification))
    wrapper = "RTDETR" if verification.get("family") == "rtdetr" else "YOLO"
    out.print(
        f"[green]Patched and verified.[/] Train with {wrapper}({verification.get('yaml', yaml)!r}).", soft_wrap=True
    )


def apply_table(result: ApplyResult) -> Table:
    """A row per transform: ``would patch`` in a dry run, else what it found."""
    made = table("transform", "blog step", "file", "result")
    for t in result.transforms:
        word = "would patch" if result.dry_run and t.state is Outcome.PATCHED else str(t.state)
        made.add_row(t.name, t.blog_step, t.file, f"[{APPLY_COLOURS[t.state]}]{word}[/]")
    return made


# -- adopt -------------------------------------------------------------------------------------------
def adopt_text(out: Console, result: AdoptResult, *, no_verify: bool) -> None:
    """``adopt``: the plan, then what was written and the verification."""
    recovered(out, result.recovered)
    where = "in place" if result.in_place else f"from {result.source}"
    out.print(f"Adopting Ultralytics [bold]{escape(str(result.source_release))}[/] {escape(where)}", soft_wrap=True)
    adoption(out, result)
    if result.already:
        out.print("[green]Already adopted[/]: nothing new to carry; nothing changed.")
        return
    if result.dry_run:
        dry_run(out)
        return
    wrote(out, result.written, result.added, result.store)
    if result.kept:
        out.print(f"Every hand-edited or added file of the tree is kept in {escape(result.kept)}", soft_wrap=True)
    warnings(out, result.warnings)
    if no_verify or not result.verification:
        out.print("[dim]Verification skipped; run `rtdetr-patch check` before training.[/]")
        return
    out.print(figures_table(result.verification))
    out.print("[green]Adopted and verified.[/]")


def adoption(out: Console, result: AdoptResult) -> None:
    """The plan: per name, per file not carried, per yaml (parameters side by side), per edit not carried."""
    names = Table(title="Names parse_model gained", title_justify="left")
    for column in ("name", "status", "rule", "file", "why"):
        names.add_column(column, overflow="fold")
    for n in result.names:
        names.add_row(
            escape(n.name),
            f"[{NAME_COLOURS[n.status]}]{n.status}[/]",
            n.rule or "",
            escape(n.file or ""),
            escape(n.why),
        )
    out.print(names)
    for n in result.names:
        if n.code:
            out.print(f"[red]{escape(n.name)}[/]: the branch no rule expresses:", soft_wrap=True)
            out.print(Text(n.code, style="dim"), soft_wrap=True)
    for f in result.files:
        if f.status is not AdoptStatus.CARRIED:
            out.print(f"[red]not carried[/] {escape(f.path)}: {escape(f.why)}", soft_wrap=True)
    if result.yamls:
        out.print(yamls_table(result))
    if result.built_with:  # checked by the probe: the tree's own package, of its release
        w = result.built_with
        out.print(
            f"[dim]The tree's yamls were built with its own Ultralytics {escape(str(w['release']))}, imported from "
            f"{escape(str(w['package']))} by {escape(str(w['python']))}.[/]",
            soft_wrap=True,
        )
    for e in result.edits:
        out.print(f"[yellow]not carried[/] {escape(e.path)}: {escape(e.why)}", soft_wrap=True)
    s = result.summary
    if s:
        share = f" ({100 * s.build_on_target / s.build_in_source:.0f}%)" if s.build_in_source else ""
        out.print(
            f"{s.carried} of {s.names} names carried; of {s.yamls} yamls, {s.build_in_source} build in "
            f"the tree and {s.build_on_target} of those on the target{share}, {s.same_params} with the same "
            "parameters.",
            soft_wrap=True,
        )


def yamls_table(result: AdoptResult) -> Table:
    made = Table(title="Yamls the tree added: parameters in the tree vs on the target", title_justify="left")
    for column in ("yaml", f"tree ({result.source_release})", "target", "state"):
        made.add_column(column, overflow="fold")
    for y in result.yamls:
        made.add_row(escape(y.path), _params(y.source), _params(y.target), yaml_state(y))
    return made


def yaml_state(y: AdoptYamlRow) -> str:
    """Carried or not; built in the tree, on the target, both (same parameters or not), or neither."""
    src, tgt = y.source or {}, y.target or {}
    if not y.carried:
        return f"[red]not carried[/]: {escape(y.why)}"
    if "params" in tgt and "params" in src:
        state = (
            "[green]same parameters[/]"
            if tgt["params"] == src["params"]
            else f"[yellow]builds, {tgt['params'] - src['params']:+,} parameters[/]"
        )
    elif "params" in tgt:
        state = f"[yellow]builds here, not in the tree[/]: {escape(src.get('error', ''))}"
    elif "params" in src:
        state = f"[red]fails on the target[/]: {escape(tgt.get('error', ''))}"
    else:
        state = f"[dim]fails in the tree too[/]: {escape(src.get('error', ''))}"
    if y.why:
        state += f" [dim]({escape(y.why)})[/]"
    return state


def _params(found: dict[str, Any]) -> str:
    return f"{found['params']:,}" if "params" in found else "[red]fails[/]" if found else ""


# -- revert ------------------------------------------------------------------------------------------
def revert_text(out: Console, result: RevertResult) -> None:
    """``revert``: each file restored, removed, kept or left, then the warnings."""
    if result.recovered:
        recovered(out, result.recovered)
        return
    if result.nothing:
        out.print("Nothing to revert: this install is not patched.")
        return
    if result.stale_release:
        out.print(
            f"[yellow]The patch was recorded for Ultralytics {result.stale_release}; the install is now "
            f"{(result.ultralytics or {}).get('release')}.[/] Its files were not touched; the stale record "
            "is dropped."
        )
    for rel in result.restored:
        out.print(f"restored ultralytics/{rel}")
    for rel in result.removed:
        out.print(f"removed  ultralytics/{rel}")
    for path in result.kept:
        out.print(f"[yellow]kept your edited copy at[/] {escape(path)}", soft_wrap=True)
    for rel in result.left:
        out.print(f"[yellow]left untouched (changed by someone else):[/] ultralytics/{rel}", soft_wrap=True)
    for rel in result.left_as_edited:
        out.print(f"[dim]left as you edited it (adopt never managed it):[/] ultralytics/{rel}", soft_wrap=True)
    warnings(out, result.warnings)
    out.print("[green]Reverted.[/]")


# -- check -------------------------------------------------------------------------------------------
def check_text(out: Console, result: CheckResult, *, err: Console | None = None, again: str = "") -> None:
    """``check``: the table, what was adopted, notes and problems, the verification, the verdict. ``err``
    (``--quiet``): the problems and the verdict of a failed check are written there too. ``again``: the options
    the command was given that a fix must repeat (`` --python PATH``), for the command lines it suggests.

    An install that holds nothing of the patch gets one line instead of a table of "missing" rows."""
    if NOT_PATCHED_PROBLEM in result.problems:
        said = [not_patched_line(result, again)]
    else:
        out.print(check_table(result))
        if result.adopted:
            out.print(adopted_line(result.adopted), soft_wrap=True)
        notes(out, result)
        if result.release_tested and result.tested_range and result.ultralytics:  # (outside it: a warning says so)
            low, high = result.tested_range
            out.print(f"Ultralytics {result.ultralytics['release']} lies in the tested range {low}-{high}.")
        said = grouped_problems(result, again)
    problems(out, said)
    if result.verification:
        out.print(figures_table(result.verification))
        if result.verification.get("cached"):
            out.print(cached_line(result.verification["cached"]), soft_wrap=True)
    if result.ok:
        out.print("[green]OK[/]: the patch is whole" + (" (static check only)." if result.static else " and runs."))
        return
    failed(out, result)
    if err is not None:
        problems(err, said)
        failed(err, result)


def not_patched_line(result: CheckResult, again: str) -> str:
    edits = sum(t.state is TransformState.MISSING for t in result.transforms)
    files = sum(a.state is AddedState.MISSING for a in result.added)
    return (
        f"this install is not patched ({edits} edits and {files} added files missing; `check --json` lists "
        f"them): run `rtdetr-patch apply{again}`"
    )


def grouped_problems(result: CheckResult, again: str) -> list[str]:
    """The problems to print: the command lines with the options given, and more than three missing added files
    (already rows of the table) as one line."""
    missing = [f"{a.path} is missing" for a in result.added if a.state is AddedState.MISSING]
    grouped = len(missing) > 3
    said = [
        p.replace("`rtdetr-patch apply`", f"`rtdetr-patch apply{again}`")
        for p in result.problems
        if not (grouped and p in missing)
    ]
    if grouped:
        said.append(f"{len(missing)} added files are missing (rows 'missing' above)")
    return said


def cached_line(cached: dict) -> str:
    """A verification taken from the last passing smoke run: when, why it still holds, how to run it again."""
    return (
        f"These figures are from the smoke run of {escape(str(cached.get('verified_at')))}: since then nothing it "
        "depends on changed (every file of the Ultralytics package, the yaml, Python and its packages), so it "
        "was not run again; `check --fresh` runs it."
    )


def failed(console: Console, result: CheckResult) -> None:
    console.print(f"[red]FAILED[/] (exit {result.exit_code}).")


def check_table(result: CheckResult) -> Table:
    """A row per transform, patched file, added file and ``--module`` file."""
    made = table("transform", "blog step", "file", "state")
    for t in result.transforms:
        made.add_row(t.name, t.blog_step, t.file, f"[{CHECK_COLOURS[t.state]}]{t.state}[/]")
    for f in result.files:
        made.add_row(
            "(patched file)", "", f.path, f"[{'green' if f.state is FileState.PATCHED else 'red'}]{f.state}[/]"
        )
    for a in result.added:
        made.add_row(
            "(added)", "4.1-5.1", a.path, f"[{'green' if a.state is AddedState.PRESENT else 'red'}]{a.state}[/]"
        )
    for mod in result.modules:
        made.add_row("(--module)", "", mod.file, module_names(mod))
    return made


def module_names(mod: CheckModuleRow) -> str:
    return (
        ", ".join(f"{name} ({mod.rules.get(name, 'backbone')})" for name in mod.classes)
        or "no names: a file beside yours that they import"
    )


def adopted_line(adopted: dict) -> str:
    """What adopt carried, as its record keeps it."""
    carried = [n["name"] for n in adopted.get("names", []) if n.get("status") == AdoptStatus.CARRIED]
    return (
        f"Adopted from {escape(str(adopted.get('source')))} (Ultralytics "
        f"{escape(str(adopted.get('source_release')))}): {count(len(carried), 'module')}, "
        f"{count(len(adopted.get('yamls', [])), 'yaml')}; {count(len(adopted.get('edits', [])), 'edit')} left as "
        "they were."
    )
