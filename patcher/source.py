"""Bytes in, bytes out: a source file round-trips byte for byte (BOM and CRLF included)."""

from __future__ import annotations

import libcst as cst

from .errors import Exit, PatchError

BOM = b"\xef\xbb\xbf"


def parse(data: bytes, where: str) -> tuple[cst.Module, bool]:
    """The module and whether the file starts with a UTF-8 BOM; libcst keeps the file's own newlines."""
    bom = data.startswith(BOM)
    try:
        text = data[len(BOM):].decode("utf-8") if bom else data.decode("utf-8")
        return cst.parse_module(text), bom
    except UnicodeDecodeError as exc:
        raise PatchError(Exit.TRANSFORM, f"{where} is not UTF-8 ({exc}).",
                         "Reinstall Ultralytics (pip install --force-reinstall ultralytics) and try again.")
    except cst.ParserSyntaxError as exc:
        raise PatchError(Exit.TRANSFORM, f"{where} does not parse: line {exc.raw_line}, column {exc.raw_column}: "
                         f"{exc.message}",
                         "Fix or reinstall the file (pip install --force-reinstall ultralytics); nothing was written.")


def render(module: cst.Module, bom: bool) -> bytes:
    data = module.code.encode("utf-8")
    return BOM + data if bom else data
