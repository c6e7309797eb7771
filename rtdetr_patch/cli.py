"""``rtdetr-patch apply | adopt | revert | check``: options in, one API call, its result printed out.

The work is in ``rtdetr_patch.api``; the consoles, the progress line, Ctrl-C and the exit codes in
``rtdetr_patch.console``; what each result prints (tables, lines, JSON) in ``rtdetr_patch.render``.

Output: tables for people; ``--json`` prints one JSON object (the schema is in ``rtdetr_patch.api``)
and nothing else on stdout; ``--quiet`` prints only failures (on stderr). Colour follows the
terminal: none when piped or when ``NO_COLOR`` is set; piped output is never folded to 80 columns.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, TypeVar

import click

from . import __version__, api, console, render
from .api import DEFAULT_YAML, AdoptResult, ApplyResult, CheckResult, RevertResult
from .console import Progress, call, emit, setup
from .render import figures_table

# ``cli.setup``, ``cli.Progress`` and ``cli.figures_table`` are read by scripts and tests, as before the split
__all__ = ["main", "setup", "Progress", "figures_table"]

F = TypeVar("F", bound=Callable[..., Any])

TRAIN_OPTION = click.option(
    "--train",
    is_flag=True,
    help="Also train one short epoch of the yaml through Ultralytics' own trainer (generated "
    "data, your Ultralytics settings and callbacks as they are): what would break "
    "model.train() breaks here first.",
)
YAML_OPTION = click.option(
    "--yaml",
    "yaml",
    default=DEFAULT_YAML,
    show_default=True,
    metavar="NAME|PATH",
    help="The model yaml the verification builds: a shipped name "
    "(rtdetr-MobileNetV3-large.yaml, rtdetr-resnet18.yaml) or the path of your own.",
)
JSON_OPTION = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print one JSON object instead of tables (docs/options.md: "Output for scripts: --json").',
)
QUIET_OPTION = click.option("--quiet", "-q", is_flag=True, help="Print nothing but failures (on stderr).")


TARGET_OPTION = click.option(
    "--target",
    "target",
    metavar="DIR",
    help="Use the ultralytics package in DIR: the package folder, site-packages, or a checkout.",
)


def again(python: str | None, target: str | None) -> str:
    """The options a suggested command line must repeat to act on the same install, a value with a space in double
    quotes (as both a POSIX shell and Windows' read it; ``repr`` would double a Windows path's backslashes)."""
    given = [("--python", python), ("--target", target)]
    return "".join(f" {flag} {_word(value)}" for flag, value in given if value)


def _word(value: str) -> str:
    return f'"{value}"' if " " in value else value


def where_options(func: F) -> F:
    """``--python`` and ``--target`` for a command that verifies (apply, adopt, check)."""
    func = TARGET_OPTION(func)
    return click.option(
        "--python",
        "python",
        metavar="PATH",
        help="Use the ultralytics of another interpreter (a venv, a conda env); it also runs the verification.",
    )(func)


def revert_where_options(func: F) -> F:
    """``--python`` and ``--target`` for revert, which runs nothing in the target interpreter."""
    func = TARGET_OPTION(func)
    return click.option(
        "--python", "python", metavar="PATH", help="Use the ultralytics of another interpreter (a venv, a conda env)."
    )(func)


def __getattr__(name: str) -> Any:
    """``cli.out`` and ``cli.err``: the consoles of the command running now (``setup`` makes them per command)."""
    if name in ("out", "err"):
        return getattr(console, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="rtdetr-patch")
def main() -> None:
    """Patch an installed Ultralytics so RT-DETR (and YOLO) train with a MobileNetV3 or your own
    list-returning backbone, as the blog post "RT-DETR有效改进: 利用MobileNetV3替换Backbone" does by hand."""


@main.command(short_help="Patch Ultralytics, record the originals, verify.")
@where_options
@click.option("--dry-run", is_flag=True, help="Show the changes as a coloured diff and write nothing.")
@click.option("--no-verify", is_flag=True, help="Skip the smoke verification after writing.")
@click.option("--val-rect-fix", is_flag=True, help="Also apply blog step 4.10: rect=False for validation batches.")
@click.option("--force", is_flag=True, help="In a git checkout: patch files that have uncommitted changes too.")
@click.option(
    "--module",
    "modules",
    multiple=True,
    metavar="FILE.py[:NAME[=RULE]]",
    help="Add a module of your own (repeatable): NAME is the class or factory function a yaml row "
    "uses, RULE how parse_model passes it channels (conv, conv-n, same, plain, concat, first, last, "
    "inputs, inputs-out, count, head, block, backbone; default: from its signature). FILE.py alone: "
    "every list-returning backbone in the file.",
)
@YAML_OPTION
@TRAIN_OPTION
@JSON_OPTION
@QUIET_OPTION
def apply(python, target, dry_run, no_verify, val_rect_fix, force, modules, yaml, train, as_json, quiet) -> None:
    """Patch Ultralytics, record the originals, then verify with a smoke run."""
    setup(quiet, as_json)
    result = call(
        ApplyResult,
        as_json,
        api.apply,
        python=python,
        target=target,
        dry_run=dry_run,
        no_verify=no_verify,
        val_rect_fix=val_rect_fix,
        force=force,
        modules=modules,
        yaml=yaml,
        train=train,
    )
    if as_json:
        emit(render.json_text(result))
        return
    render.apply_text(console.out, result, no_verify=no_verify, yaml=yaml)


@main.command(short_help="Carry a hand-edited install or a fork into the patch.")
@where_options
@click.option(
    "--from",
    "source",
    metavar="DIR",
    help="A fork's ultralytics/ folder (or the checkout holding one) to carry onto the install; "
    "without it the install itself is adopted in place.",
)
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
    result = call(
        AdoptResult,
        as_json,
        api.adopt,
        python=python,
        target=target,
        source=source,
        wheel=wheel,
        dry_run=dry_run,
        no_verify=no_verify,
        force=force,
        yaml=yaml,
    )
    if as_json:
        emit(render.json_text(result))
        return
    render.adopt_text(console.out, result, no_verify=no_verify)


@main.command(short_help="Restore every changed file, remove every added one.")
@revert_where_options
@click.option("--force", is_flag=True, help="Revert files edited since apply too (the edited copies are kept).")
@JSON_OPTION
@QUIET_OPTION
def revert(python, target, force, as_json, quiet) -> None:
    """Restore every changed file byte for byte and remove every added file."""
    setup(quiet, as_json)
    result = call(RevertResult, as_json, api.revert, python=python, target=target, force=force)
    if as_json:
        emit(render.json_text(result))
        return
    render.revert_text(console.out, result)


@main.command(short_help="Is the patch whole and unchanged, and does it run?")
@where_options
@click.option("--static", is_flag=True, help="Check the files only; skip the smoke verification.")
@click.option(
    "--error-on-warn",
    is_flag=True,
    help="Fail (exit 8) on warnings too, e.g. an untested release "
    "(notes such as 'not needed on this release' never fail).",
)
@YAML_OPTION
@TRAIN_OPTION
@click.option(
    "--fresh",
    is_flag=True,
    help="Run the smoke verification even if one passed with nothing it depends on changed since (the patch's "
    "files, the yaml, the interpreter and its packages); --train always runs.",
)
@JSON_OPTION
@QUIET_OPTION
def check(python, target, static, error_on_warn, yaml, train, fresh, as_json, quiet) -> None:
    """Is the patch whole, unchanged, and does it run? Exit 0 only if all holds."""
    setup(quiet, as_json)
    report = call(
        CheckResult,
        as_json,
        api.check,
        python=python,
        target=target,
        static=static,
        error_on_warn=error_on_warn,
        yaml=yaml,
        train=train,
        fresh=fresh,
    )
    if as_json:
        emit(render.json_text(report))
    else:
        render.check_text(console.out, report, err=console.err if quiet else None, again=again(python, target))
    sys.exit(report.exit_code)
