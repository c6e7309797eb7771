"""Modules registered by a channel rule (``--module FILE.py:NAME=RULE``): judged from the preflight's probe builds.

A rule (``target_common.RULES``) says how ``parse_model`` passes a module its channels; without one it comes from
the constructor's parameter names where they decide (``target_common.rule_from_params``). The preflight builds
the module under that rule at probe widths; here it is kept when the output width is the one the rule records,
and refused otherwise, with the rule that would fit or the rules its constructor could take.
"""

from __future__ import annotations

import re
from typing import Any

from ..target.target_common import IN_NAMES, LEAD_NAMES, MULTI, OUT_NAMES, RULES, SINGLE
from .user_module import UserModule


def judge_modules(module: UserModule, entries: dict) -> tuple[list[tuple[str, str]], list[str], list[dict[str, Any]]]:
    """((name, rule) to register, errors, report rows) for the names that are not backbones."""
    rules, errors, rows = [], [], []
    for name, given in module.rules:
        entry = entries.get(name, {"error": "was not checked"})
        rule = entry.get("rule") or given or None
        row = {
            "name": name,
            "kind": entry.get("kind", "?"),
            "rule": rule,
            "status": "ok",
            "note": "",
            "inferred": bool(entry.get("inferred")),
        }
        rows.append(row)
        error = _judge_rule(name, rule, entry, row)
        if error is not None:
            row["status"] = "refused"
            errors.append(f"--module {module.label}:{name}: {error}")
        elif rule is not None:
            rules.append((name, rule))
    return rules, errors, rows


def _judge_rule(name: str, rule: str | None, entry: dict, row: dict[str, Any]) -> str | None:
    """The error that refuses one name (its report row's note set), or None when it is registered."""
    if entry.get("error"):
        row["note"] = entry["error"]
        return str(entry["error"])
    if rule is None:
        row["note"] = (
            f"the rule cannot be told from its signature ({', '.join(entry.get('params_names', []))}): "
            f"{entry.get('why', '')}"
        )
        return f"{row['note']}; give one: {name}=conv, =same, =plain, or for several inputs ={', ='.join(MULTI)}"
    return _judge_probe(name, rule, entry, row)


def _judge_probe(name: str, rule: str, entry: dict, row: dict[str, Any]) -> str | None:
    """The verdict on a name's probe builds under ``rule``: an error, or None (registered; the note says how)."""
    why = f" ({entry['why']})" if entry.get("inferred") and entry.get("why") else ""
    said = f"{entry['why']}; " if why else ""
    tried = _tried(entry)
    source = entry.get("probe_source")
    at_row = f" (at {source})" if source and source not in ("the default probe", "equal widths") else ""
    if "build_error" in entry and rule in SINGLE:
        row["note"] = f"under the rule '{rule}'{why}, {entry['build_error']}{at_row}{tried}"
        return f"{row['note']}. {_other_rules(rule, entry)}"
    if "forward_error" in entry and "returned NoneType" in entry["forward_error"]:
        row["note"] = f"{entry['forward_error']} (does its forward lack a `return`?)"
        return str(row["note"])
    # (a build error here is a several-input module: the probe's two inputs may not be what it takes)
    unprobed = entry.get("probe") or (
        "it needs the arguments of its yaml row"
        if "needs_args" in entry
        else entry.get("forward_error") or entry.get("build_error")
    )
    if unprobed:
        row["note"] = f"{said}not probed here ({unprobed}{tried}): the smoke run of your yaml builds it"
        return None
    if entry["measured"] != entry["expected"]:
        fits = _fitting(entry)
        row["note"] = (
            f"under the rule '{rule}'{why}, {entry['probe_call']}{at_row} on inputs of "
            f"{entry['probe_inputs']} channels returns {entry['measured']} channels, but the rule records "
            f"{entry['expected']} for the next row{tried}"
            + (f"; the rule that fits is '{fits}': {name}={fits}" if fits else "")
        )
        return str(row["note"])
    first = (entry.get("tries") or [{}])[0]
    at = "" if entry.get("probe_source") in (None, "the default probe") else f" (built at {entry['probe_source']}"
    if at and first.get("probe_call") != entry["probe_call"]:
        at += f"; {_outcome(first)}"
    row["note"] = (
        f"{said}{entry['probe_call']} gives {entry['measured']} channels, as the rule says{at}{')' if at else ''}"
    )
    return None


def _outcome(attempt: dict) -> str:
    """One probe build, in a few words: ``C2PSA(64, 128, 1): AssertionError``, ``X(64) gives 3 channels``."""
    for key in ("build_error", "forward_error", "needs_args"):
        if key in attempt:
            return str(attempt[key])[:160]
    return f"{attempt['probe_call']} gives {attempt['measured']} channels where the rule records {attempt['expected']}"


def _tried(entry: dict) -> str:
    """The other widths the preflight built a module at, when none fitted (empty when it was built once)."""
    others = [t for t in entry.get("tries") or [] if t.get("probe_call") != entry.get("probe_call")]
    if not others:
        return ""
    return "; also tried " + "; ".join(f"{t['source']}: {_outcome(t)}" for t in others)


def _fitting(entry: dict) -> str | None:
    """A rule whose recorded width matches what the probe measured (same inputs), if one does."""
    measured, params = entry["measured"], entry.get("params_names") or []
    widths, out = entry.get("probe_inputs") or [None], entry.get("probe_out")
    if measured == out and measured != widths[0] and len(params) > 1 and params[1] in OUT_NAMES:
        return "conv"  # it does take an output width
    if measured == widths[0]:
        return "same" if params and (params[0] in IN_NAMES or params[0] in LEAD_NAMES) else "plain"
    return None


LISTS = re.compile(r"\blist\b|tuple|subscript|index|iterable|unpack|len\(\)|zip", re.I)


def _other_rules(rule: str, entry: dict) -> str:
    """The rules that could build a module refused under ``rule``: only those whose arguments its constructor
    takes, and the several-input ones only where the failure or a parameter's name says it wanted a list."""
    fits = [r for r in entry.get("binds") or RULES if r != rule]
    errors = " ".join(t.get("build_error", "") + t.get("forward_error", "") for t in entry.get("tries") or [])
    listed = LISTS.search(errors) or any(
        "list" in p or p in ("chs", "dims", "widths") for p in entry.get("params_names") or []
    )
    several = [r for r in MULTI if r in fits and r != "head"] if listed or not entry.get("params_names") else []
    single = [r for r in ("conv", "conv-n", "same", "plain") if r in fits]
    parts = []
    if several:
        parts.append("If it takes several inputs (a list), give a several-input rule: " + ", ".join(several))
    if single:
        parts.append("the single-input rules its constructor takes: " + ", ".join(f"={r}" for r in single))
    if not parts:
        return (
            f"No other rule's arguments fit its constructor, and under '{rule}' it builds at none of the widths "
            "tried: give --yaml with your model yaml, so that it is probed at its rows' widths, or make it build "
            "at the widths its rows give it"
        )
    return "; ".join(parts)
