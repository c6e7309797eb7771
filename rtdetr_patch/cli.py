"""``rtdetr-patch apply | revert | check``: options in, a result printed out; the work is in ``rtdetr_patch.api``.

Output: tables for people; ``--json`` prints one JSON object (the schema is in ``rtdetr_patch.api``)
and nothing else on stdout; ``--quiet`` prints only failures (on stderr). Colour follows the
terminal: none when piped or when ``NO_COLOR`` is set; piped output is never folded to 80 columns.
"""

from __future__ import annotations

import json
import os
import sys
import time

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from . import __version__, api
from .api import DEFAULT_YAML, AdoptResult, ApplyResult, CheckResult, Result, RevertResult
from .patcher.errors import Exit, PatchError
from .patcher.install.locate import Install

TRAIN_OPTION = click.option("--train", is_flag=True,
                            help="Also train one short epoch of the yaml through Ultralytics' own trainer (generated "
                                 "data, your Ultralytics settings and callbacks as they are): what would break "
                                 "model.train() breaks here first.")
YAML_OPTION = click.option("--yaml", "yaml", default=DEFAULT_YAML, show_default=True,
                           help="The model yaml the verification builds: a shipped name "
                                "(rtdetr-MobileNetV3-large.yaml, rtdetr-resnet18.yaml) or the path of your own.")
JSON_OPTION = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object instead of tables (docs/options.md: \"Output for scripts: --json\").")
QUIET_OPTION = click.option("--quiet", "-q", is_flag=True, help="Print nothing but failures (on stderr).")


class _Stream:
    """The real stream the command started with, held (never ``sys.stdout`` looked up at each write).

    While the verification's progress line runs, rich points ``sys.stdout``/``sys.stderr`` at proxies
    that print through the console: a console that looked ``sys.stdout`` up would write into its own
    proxy, which writes back into the console, without end. It also survives a reader going away
    (`rtdetr-patch apply --dry-run | head`): the rest of the output is dropped and the command still
    ends with its own exit code.
    """

    def __init__(self, stream) -> None:
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


def _console(stream) -> Console:
    """A console on one held stream; when piped, wide enough that no path or row is folded."""
    held = _Stream(stream)
    wide = None if os.environ.get("COLUMNS") or held.isatty() else 400
    return Console(file=held, highlight=False, width=wide)


out = _console(sys.stdout)
err = _console(sys.stderr)


def emit(text: str) -> None:
    """One line on stdout (the JSON), through the same held, pipe-safe stream."""
    out.file.write(text + "\n")
    out.file.flush()

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


def fail(exc: PatchError, kind: type[Result] = Result, as_json: bool = False, install: Install | None = None):
    if as_json:
        emit(json.dumps(kind.failed(exc, install).to_dict(), indent=2))
    else:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
        if exc.hint:
            err.print(f"[yellow]what to do:[/] {escape(exc.hint)}", soft_wrap=True)
    sys.exit(int(exc.code))


def interrupted(exc: KeyboardInterrupt, kind: type[Result], as_json: bool, install: Install | None):
    """Ctrl-C: one line with the install's state and what to run next, exit 130."""
    state = getattr(exc, "state", None) or "Interrupted."
    if as_json:
        emit(json.dumps(kind.failed(PatchError(Exit.INTERRUPTED, state), install).to_dict(), indent=2))
    else:
        err.file.write("\n")  # the terminal echoed ^C on the current line
        err.print(f"[bold yellow]{escape(state)}[/]", soft_wrap=True)
    sys.exit(int(Exit.INTERRUPTED))


def call(kind: type[Result], as_json: bool, func, **options):
    """Run one API call with the install line and the progress line wired in; a failure or Ctrl-C ends the
    process here with its exit code, after the progress line is gone and the cursor is back."""
    found: dict = {}
    progress = Progress()
    try:
        return func(on_install=lambda i: (found.update(install=i), chosen(i)), **options,
                    **({"on_stage": progress} if kind is not RevertResult else {}))
    except PatchError as exc:
        progress.stop()
        fail(exc, kind, as_json, found.get("install"))
    except KeyboardInterrupt as exc:
        progress.stop()
        interrupted(exc, kind, as_json, found.get("install"))
    finally:
        progress.stop()


def setup(quiet: bool, as_json: bool) -> None:
    """Per command: the consoles on the streams it was started with, and whether people's output is printed."""
    global out, err
    out, err = _console(sys.stdout), _console(sys.stderr)
    out.quiet = quiet or as_json


def chosen(install: Install) -> None:
    tested = "" if install.tested else "  [yellow](outside the tested range)[/]"
    out.print(f"Ultralytics [bold]{escape(install.release)}[/]{tested} at {escape(str(install.package))}  "
                  f"[dim]({escape(install.how)})[/]",
                  soft_wrap=True)


class Progress:
    """The verification's stages on a status line (terminal only; nothing in --json / --quiet)."""

    def __init__(self) -> None:
        self.status = None
        self.started = time.perf_counter()

    def __call__(self, stage: str) -> None:
        if out.quiet or not out.is_terminal:
            return
        said = stage[len("adopt: "):] if stage.startswith("adopt: ") else f"verifying in a fresh process: {stage}"
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


def print_diff(diff: str) -> None:
    """A unified diff, coloured like git's, never cropped to the terminal width."""
    for line in diff.splitlines():
        style = ("bold" if line.startswith(("+++", "---")) else "green" if line.startswith("+") else
                 "red" if line.startswith("-") else "cyan" if line.startswith("@@") else "")
        out.print(Text(line, style=style), soft_wrap=True)


def print_modules(rows: list[dict]) -> None:
    """The --module preflight, one line per candidate (built and run at 640x640 on the CPU), never cut."""
    out.print("Your modules, built and run on the CPU (backbones at 640x640, other modules at probe widths):")
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
        if r.get("rule"):
            facts.insert(0, f"rule {r['rule']}" + (" (from its signature)" if r.get("inferred") else ""))
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
    if fig["backbone_shapes"]:
        table.add_row("build", f"{fig['backbone']} outputs {fig['backbone_widths']}")
        table.add_row("backbone maps at 640", ", ".join("x".join(map(str, s[1:])) for s in fig["backbone_shapes"]))
    layers = fig.get("registered_layers") or []
    if layers:
        shown = ", ".join(sorted(set(layers)))
        table.add_row("your modules in the model", f"{len(layers)} layers: {escape(shown)}")
    table.add_row("eval forward output", "x".join(map(str, fig["output_shape"])))
    table.add_row("train-mode loss, backward", f"{fig['loss']}, finite gradients in "
                  f"{fig['backbone_grad_tensors']} {'backbone' if fig['backbone_shapes'] else 'model'} tensors")
    iou = fig.get("iou_loss")
    if iou:
        table.add_row("box IoU loss", iou_loss_text(iou))
    table.add_row("one optimizer step", f"moved {fig.get('stepped_tensors', '?')} weight tensors; loss still "
                  f"finite ({fig['loss_after_step']})")
    table.add_row("parameters", f"{fig['params'] / 1e6:.2f} M ({fig['params']:,})")
    gflops = fig.get("gflops")
    table.add_row(f"GFLOPs at {fig['imgsz']}", "not reported for this model (its get_flops gives 0)" if gflops is None
                  else f"{gflops:.1f}" + (" (thop; the release's get_flops gives 0)"
                                           if fig.get("gflops_source") == "thop" else ""))
    if fig.get("fuse"):
        table.add_row("model.fuse() for deploy", f"outputs agree (max |diff| {fig['fuse']['max_abs_diff']:.1g}); "
                      f"{fig['fuse']['deploy_modules']} modules switched to deploy")
    table.add_row("stock rtdetr-l.yaml", f"{fig['rtdetr_l_params'] / 1e6:.2f} M parameters, as shipped")
    for name, state in (fig.get("users_backbones") or {}).items():
        table.add_row(f"your {escape(name)}", escape(state))
    trained = fig.get("trainer")
    if trained:
        on = ", ".join(trained["integrations"]) or "none"
        table.add_row("Ultralytics' trainer (--train)",
                      f"{trained['iterations']} iterations at {trained['imgsz']}, nc={trained['nc']}, losses "
                      f"{escape(str(trained['losses']))}; integrations on: {escape(on)} ({trained['seconds']} s)")
        if trained.get("iou_loss"):
            table.add_row("box IoU loss in the trainer", iou_loss_text(trained["iou_loss"]))
    return table


def iou_loss_text(iou: dict) -> str:
    """``siou {theta: 4} (model yaml, 13 calls)`` / ``giou (Ultralytics)``."""
    args = " " + escape(str(iou["args"])) if iou.get("args") else ""
    calls = f", {iou['calls']} calls" if iou.get("calls") else ""
    return f"{escape(iou['name'])}{args} ({escape(iou['source'])}{calls})"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="rtdetr-patch")
def main() -> None:
    """Patch an installed Ultralytics so RT-DETR (and YOLO) train with a MobileNetV3 or your own
    list-returning backbone, as the blog post "RT-DETR有效改进: 利用MobileNetV3替换Backbone" does by hand."""


def print_notes(result: Result) -> None:
    for note in result.notes:
        out.print(f"[dim]note: {escape(note)}[/]", soft_wrap=True)
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


@main.command(short_help="Patch Ultralytics, record the originals, verify.")
@where_options
@click.option("--dry-run", is_flag=True, help="Show the changes as a coloured diff and write nothing.")
@click.option("--no-verify", is_flag=True, help="Skip the smoke verification after writing.")
@click.option("--val-rect-fix", is_flag=True, help="Also apply blog step 4.10: rect=False for validation batches.")
@click.option("--force", is_flag=True, help="In a git checkout: patch files that have uncommitted changes too.")
@click.option("--module", "modules", multiple=True, metavar="FILE.py[:NAME[=RULE]]",
              help="Add a module of your own (repeatable): NAME is the class or factory function a yaml row "
                   "uses, RULE how parse_model passes it channels (conv, conv-n, same, plain, concat, first, last, "
                   "inputs, inputs-out, count, head, block, backbone; default: from its signature). FILE.py alone: "
                   "every list-returning backbone in the file.")
@YAML_OPTION
@TRAIN_OPTION
@JSON_OPTION
@QUIET_OPTION
def apply(python, target, dry_run, no_verify, val_rect_fix, force, modules, yaml, train, as_json, quiet) -> None:
    """Patch Ultralytics, record the originals, then verify with a smoke run."""
    setup(quiet, as_json)
    result = call(ApplyResult, as_json, api.apply, python=python, target=target, dry_run=dry_run,
                  no_verify=no_verify, val_rect_fix=val_rect_fix, force=force, modules=modules, yaml=yaml, train=train)
    if as_json:
        emit(json.dumps(result.to_dict(), indent=2))
        return
    if result.recovered:
        out.print(f"[yellow]{escape(result.recovered)}[/]", soft_wrap=True)
    if result.upgraded_from:
        verb = "would be replaced" if dry_run else "was reverted and is replaced"
        out.print(f"[yellow]The patch written by rtdetr-patch {escape(str(result.upgraded_from))} {verb} by this "
                  f"release's ({__version__}).[/]", soft_wrap=True)
    if result.modules:
        print_modules(result.modules)
    if result.already:
        out.print("[green]Already patched[/]: every transform is applied and every file is in place; nothing "
                  "changed.")
        return
    table = Table(title_justify="left")
    for column in ("transform", "blog step", "file", "result"):
        table.add_column(column, overflow="fold")
    colours = {"patched": "green", "applied": "green", "not-needed": "dim"}
    for t in result.transforms:
        word = "would patch" if dry_run and t["state"] == "patched" else t["state"]
        table.add_row(t["name"], t["blog_step"], t["file"], f"[{colours[t['state']]}]{word}[/]")
    if dry_run:
        print_diff(result.diff)
        for add in result.additions:
            out.print(f"[green]+ add[/] ultralytics/{add['path']} ({add['bytes']:,} bytes)"
                      + (" [dim](already there)[/]" if add["present"] else ""))
        out.print(table)
        out.print("[yellow]Dry run[/]: nothing was written.")
        return
    out.print(table)
    out.print(f"Wrote {len(result.written)} file(s), added {len(result.added)} file(s); originals recorded in "
              f"{escape(str(result.store))}", soft_wrap=True)
    for warning in result.warnings:  # the recovered run is printed above, once
        out.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if no_verify:
        out.print("[dim]Verification skipped (--no-verify); run `rtdetr-patch check` before training.[/]")
        return
    out.print(figures_table(result.verification))
    wrapper = "RTDETR" if result.verification.get("family") == "rtdetr" else "YOLO"
    out.print(f"[green]Patched and verified.[/] Train with {wrapper}({result.verification.get('yaml', yaml)!r}).",
              soft_wrap=True)


@main.command(short_help="Carry a hand-edited install or a fork into the patch.")
@where_options
@click.option("--from", "source", metavar="DIR",
              help="A fork's ultralytics/ folder (or the checkout holding one) to carry onto the install; "
                   "without it the install itself is adopted in place.")
@click.option("--wheel", metavar="PATH", help="The wheel of the tree's own release (offline); else pip downloads it.")
@click.option("--dry-run", is_flag=True, help="Print the plan (names, rules, files, yamls, edits) and write nothing.")
@click.option("--no-verify", is_flag=True, help="Skip the smoke verification after writing.")
@click.option("--force", is_flag=True, help="In a git checkout: patch files that have uncommitted changes too.")
@YAML_OPTION
@JSON_OPTION
@QUIET_OPTION
def adopt(python, target, source, wheel, dry_run, no_verify, force, yaml, as_json, quiet) -> None:
    """Read a hand-edited tree against its own release and carry what parse_model gained (its modules, by
    rule) and its yamls into rtdetr-patch's managed patch: in place, or from a fork with --from DIR."""
    setup(quiet, as_json)
    result = call(AdoptResult, as_json, api.adopt, python=python, target=target, source=source, wheel=wheel,
                  dry_run=dry_run, no_verify=no_verify, force=force, yaml=yaml)
    if as_json:
        emit(json.dumps(result.to_dict(), indent=2))
        return
    if result.recovered:
        out.print(f"[yellow]{escape(result.recovered)}[/]", soft_wrap=True)
    where = "in place" if result.in_place else f"from {result.source}"
    out.print(f"Adopting Ultralytics [bold]{escape(str(result.source_release))}[/] {escape(where)}", soft_wrap=True)
    print_adoption(result)
    if result.already:
        out.print("[green]Already adopted[/]: nothing new to carry; nothing changed.")
        return
    if dry_run:
        out.print("[yellow]Dry run[/]: nothing was written.")
        return
    out.print(f"Wrote {len(result.written)} file(s), added {len(result.added)} file(s); originals recorded in "
              f"{escape(str(result.store))}", soft_wrap=True)
    if result.kept:
        out.print(f"Every hand-edited or added file of the tree is kept in {escape(result.kept)}", soft_wrap=True)
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if no_verify or not result.verification:
        out.print("[dim]Verification skipped; run `rtdetr-patch check` before training.[/]")
        return
    out.print(figures_table(result.verification))
    out.print("[green]Adopted and verified.[/]")


def _params(found: dict) -> str:
    return f"{found['params']:,}" if "params" in found else "[red]fails[/]" if found else ""


def print_adoption(result: AdoptResult) -> None:
    """The plan: per name, per file not carried, per yaml (parameters side by side), per edit not carried."""
    table = Table(title="Names parse_model gained", title_justify="left")
    for column in ("name", "status", "rule", "file", "why"):
        table.add_column(column, overflow="fold")
    colours = {"carried": "green", "ours": "green", "native": "yellow", "not carried": "red"}
    for n in result.names:
        table.add_row(escape(n["name"]), f"[{colours.get(n['status'], 'red')}]{n['status']}[/]", n.get("rule", ""),
                      escape(n.get("file", "")), escape(n.get("why", "")))
    out.print(table)
    for n in result.names:
        if n.get("code"):
            out.print(f"[red]{escape(n['name'])}[/]: the branch no rule expresses:", soft_wrap=True)
            out.print(Text(n["code"], style="dim"), soft_wrap=True)
    for f in result.files:
        if f["status"] != "carried":
            out.print(f"[red]not carried[/] {escape(f['path'])}: {escape(f['why'])}", soft_wrap=True)
    if result.yamls:
        table = Table(title="Yamls the tree added: parameters in the tree vs on the target", title_justify="left")
        for column in ("yaml", f"tree ({result.source_release})", "target", "state"):
            table.add_column(column, overflow="fold")
        for y in result.yamls:
            src, tgt = y.get("source") or {}, y.get("target") or {}
            if not y["carried"]:
                state = f"[red]not carried[/]: {escape(y['why'])}"
            elif "params" in tgt and "params" in src:
                state = "[green]same parameters[/]" if tgt["params"] == src["params"] else                     f"[yellow]builds, {tgt['params'] - src['params']:+,} parameters[/]"
            elif "params" in tgt:
                state = f"[yellow]builds here, not in the tree[/]: {escape(src.get('error', ''))}"
            elif "params" in src:
                state = f"[red]fails on the target[/]: {escape(tgt.get('error', ''))}"
            else:
                state = f"[dim]fails in the tree too[/]: {escape(src.get('error', ''))}"
            if y.get("why") and y["carried"]:
                state += f" [dim]({escape(y['why'])})[/]"
            table.add_row(escape(y["path"]), _params(src), _params(tgt), state)
        out.print(table)
    for e in result.edits:
        out.print(f"[yellow]not carried[/] {escape(e['path'])}: {escape(e['why'])}", soft_wrap=True)
    s = result.summary
    if s:
        share = f" ({100 * s['build_on_target'] / s['build_in_source']:.0f}%)" if s["build_in_source"] else ""
        out.print(f"{s['carried']} of {s['names']} names carried; of {s['yamls']} yamls, {s['build_in_source']} build in "
                  f"the tree and {s['build_on_target']} of those on the target{share}, {s['same_params']} with the same "
                  "parameters.", soft_wrap=True)


@main.command(short_help="Restore every changed file, remove every added one.")
@where_options
@click.option("--force", is_flag=True, help="Revert files edited since apply too (the edited copies are kept).")
@JSON_OPTION
@QUIET_OPTION
def revert(python, target, force, as_json, quiet) -> None:
    """Restore every changed file byte for byte and remove every added file."""
    setup(quiet, as_json)
    result = call(RevertResult, as_json, api.revert, python=python, target=target, force=force)
    if as_json:
        emit(json.dumps(result.to_dict(), indent=2))
        return
    if result.recovered:
        out.print(f"[yellow]{escape(result.recovered)}[/]", soft_wrap=True)
        return
    if result.nothing:
        out.print("Nothing to revert: this install is not patched.")
        return
    if result.stale_release:
        out.print(f"[yellow]The patch was recorded for Ultralytics {result.stale_release}; the install is now "
                  f"{result.ultralytics['release']}.[/] Its files were not touched; the stale record is dropped.")
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
    for warning in result.warnings:  # the recovered run and the untouched files are printed above, once
        out.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    out.print("[green]Reverted.[/]")


@main.command(short_help="Is the patch whole and unchanged, and does it run?")
@where_options
@click.option("--static", is_flag=True, help="Check the files only; skip the smoke verification.")
@click.option("--error-on-warn", is_flag=True, help="Fail (exit 8) on warnings too, e.g. an untested release "
              "(notes such as 'not needed on this release' never fail).")
@YAML_OPTION
@TRAIN_OPTION
@JSON_OPTION
@QUIET_OPTION
def check(python, target, static, error_on_warn, yaml, train, as_json, quiet) -> None:
    """Is the patch whole, unchanged, and does it run? Exit 0 only if all holds."""
    setup(quiet, as_json)
    report = call(CheckResult, as_json, api.check, python=python, target=target, static=static,
                  error_on_warn=error_on_warn, yaml=yaml, train=train)
    if as_json:
        emit(json.dumps(report.to_dict(), indent=2))
        sys.exit(report.exit_code)
    table = Table(title_justify="left")
    for column in ("transform", "blog step", "file", "state"):
        table.add_column(column, overflow="fold")  # a narrow terminal folds long paths, never cuts them
    colours = {"applied": "green", "not-needed": "dim", "missing": "red", "unrecognised": "red"}
    for t in report.transforms:
        table.add_row(t["name"], t["blog_step"], t["file"], f"[{colours[t['state']]}]{t['state']}[/]")
    for f in report.files:
        table.add_row("(patched file)", "", f["path"], f"[{'green' if f['state'] == 'patched' else 'red'}]"
                      f"{f['state']}[/]")
    for a in report.added:
        table.add_row("(added)", "4.1-5.1", a["path"], f"[{'green' if a['state'] == 'present' else 'red'}]"
                      f"{a['state']}[/]")
    for mod in report.modules:
        table.add_row("(--module)", "", mod["file"], ", ".join(f"{name} ({mod.get('rules', {}).get(name, 'backbone')})"
                                                             for name in mod["classes"])
                      or "no names: a file beside yours that they import")
    out.print(table)
    if report.adopted:
        a = report.adopted
        carried = [n["name"] for n in a.get("names", []) if n.get("status") == "carried"]
        out.print(f"Adopted from {escape(str(a.get('source')))} (Ultralytics {escape(str(a.get('source_release')))}): "
                  f"{len(carried)} modules, {len(a.get('yamls', []))} yamls; "
                  f"{len(a.get('edits', []))} edits left as they were.", soft_wrap=True)
    print_notes(report)
    for problem in report.problems:
        out.print(f"[red]problem:[/] {escape(problem)}", soft_wrap=True)
    if report.verification:
        out.print(figures_table(report.verification))
    if report.ok:
        out.print("[green]OK[/]: the patch is whole" + (" (static check only)." if static else " and runs."))
    else:
        out.print(f"[red]FAILED[/] (exit {report.exit_code}).")
        if quiet:
            for problem in report.problems:
                err.print(f"[red]problem:[/] {escape(problem)}", soft_wrap=True)
            err.print(f"[red]FAILED[/] (exit {report.exit_code}).")
    sys.exit(report.exit_code)
