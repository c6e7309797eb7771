"""Bytes in, bytes out: a source file round-trips byte for byte (BOM and CRLF included).

A file is parsed once per run: the module for given bytes is kept, and every transform of that file,
the hand-edit detection and the release probes share it (libcst trees are immutable).
"""

from __future__ import annotations

import libcst as cst

from ..errors import Exit, PatchError, reinstall

BOM = b"\xef\xbb\xbf"


_PARSED: dict[bytes, tuple[cst.Module, bool]] = {}


def parse(data: bytes, where: str) -> tuple[cst.Module, bool]:
    """The module and whether the file starts with a UTF-8 BOM; libcst keeps the file's own newlines."""
    if data in _PARSED:
        return _PARSED[data]
    if len(_PARSED) >= 8:  # a run touches four files; tests plan many releases in one process
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[data] = result = _parse(data, where)
    return result


def _parse(data: bytes, where: str) -> tuple[cst.Module, bool]:
    bom = data.startswith(BOM)
    try:
        text = data[len(BOM) :].decode("utf-8") if bom else data.decode("utf-8")
        return cst.parse_module(text), bom
    except UnicodeDecodeError as exc:
        raise PatchError(
            Exit.TRANSFORM, f"{where} is not UTF-8 ({exc}).", f"Reinstall Ultralytics ({reinstall()}) and try again."
        )
    except cst.ParserSyntaxError as exc:
        raise PatchError(
            Exit.TRANSFORM,
            f"{where} does not parse: line {exc.raw_line}, column {exc.raw_column}: {exc.message}",
            f"Fix or reinstall the file ({reinstall()}); nothing was written.",
        )


def render(module: cst.Module, bom: bool) -> bytes:
    data = module.code.encode("utf-8")
    return BOM + data if bom else data
