"""Backbones (the blog's MobileNetV3 contract): judged from what the preflight measured.

A backbone's ``forward`` returns a list of feature maps and the instance lists their channels in
``width_list`` (or, in a large sibling series, ``channel``). The preflight builds each one with default
arguments, runs one forward at 640x640 and reports its maps; here each is kept or refused, with the row
the output shows.
"""

from __future__ import annotations

from typing import Any

from .user_module import UserModule

CONTRACT = ("width_list", "channel")  # the attribute that lists a backbone's output channels
PROBE = 640
PADDED = 5  # the blog's layout: a backbone's outputs end at index 4, left-padded with placeholders
STRIDES = {3: (8, 16, 32), 4: (4, 8, 16, 32), 5: (2, 4, 8, 16, 32)}  # what the blog's heads expect, per count


def judge_backbones(module: UserModule, entries: dict) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """(names to register, errors, report rows) from the preflight's answer."""
    keep, errors, rows = [], [], []
    for name in module.classes:
        entry = entries.get(name, {"error": "was not checked"})
        row = {
            "name": name,
            "kind": entry.get("kind", "?"),
            **{k: entry.get(k) for k in ("channels", "strides", "params", "build_s", "attr")},
            "status": "ok",
            "note": "",
        }
        rows.append(row)
        where = f"--module {module.label}:{name}"
        if "needs_args" in entry:
            row["status"] = "needs arguments"
            row["note"] = "give them in the yaml row"
            if module.explicit:
                keep.append(name)  # the user named it: its yaml row carries the arguments
            continue
        error = refusal(entry)
        if error is None and entry["widths"] != entry["channels"]:
            row["note"] = f"{entry['attr']} is already padded to five entries: {entry['widths']}"
        if error is not None:
            row["status"], row["note"] = "refused", error
            if module.explicit or not any("needs_args" not in e and refusal(e) is None for e in entries.values()):
                # (a file given without NAME: a failing class is only reported when another candidate passes)
                errors.append(f"{where}: {error}")
            continue
        _note_strides(row, entry["strides"])
        keep.append(name)
    return keep, errors, rows


def _note_strides(row: dict[str, Any], measured: list) -> None:
    """Strides other than the blog's heads expect: kept, with a note in the report row."""
    strides = tuple(int(s) if float(s).is_integer() else s for s in measured)
    if strides != STRIDES[len(strides)]:
        first = PADDED - len(strides)
        expected = STRIDES[len(strides)]
        odd = [
            f"index {first + i} has stride {s} (expected {e})"
            for i, (s, e) in enumerate(zip(strides, expected))
            if s != e
        ]
        row["status"] = "ok, unusual strides"
        row["note"] = (
            f"{'; '.join(odd)}: check which indices your yaml's head takes "
            f"(the blog's head takes P3/P4/P5 from indices 2, 3, 4)"
        )


def refusal(entry: dict) -> str | None:
    """Why a built candidate (a preflight entry, not one that needs arguments) is refused, or None."""
    if entry.get("error") is not None:
        return str(entry["error"])
    if entry.get("attr") is None:
        return "has neither `width_list` nor `channel` (the list of its output channels)"
    if len(entry["channels"]) not in STRIDES:
        return (
            f"returns {len(entry['channels'])} feature maps; three to five are needed (they take indices "
            "2-4, 1-4 or 0-4 in the blog's yaml layout)"
        )
    if not widths_match(entry["widths"], entry["channels"]):
        return (
            f"{entry['attr']} says {entry['widths']}, but forward at {PROBE}x{PROBE} returned maps "
            f"with {entry['channels']} channels"
        )
    return None


def widths_match(widths: list, channels: list) -> bool:
    """The declared widths fit the maps, both left-padded to five as parse_model and the layer loops do."""
    if not widths or len(widths) > PADDED or len(channels) > len(widths):
        return False
    return widths == channels or (len(widths) == PADDED and widths[PADDED - len(channels) :] == channels)
