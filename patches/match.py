"""A small structural matcher over libcst nodes: the part of ``libcst.matchers`` the transforms use.

``libcst.matchers`` is a generated module of several hundred classes; importing it costs more than
parsing ``tasks.py``. The transforms need only this: a pattern per node type with its fields given
by keyword or in field order (``m.Name("x")``, ``m.Assign(targets=[...], value=...)``), alternatives
with ``|`` or ``OneOf``, ``ZeroOrMore()`` inside a sequence, ``matches`` and ``findall``. A field left
out matches anything; a sequence matches element by element, its length included; anything else
compares equal.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import libcst as cst


class BaseMatcherNode:
    def match(self, value: Any) -> bool:
        raise NotImplementedError

    def __or__(self, other: "BaseMatcherNode") -> "OneOf":
        return OneOf(self, other)


class _Node(BaseMatcherNode):
    def __init__(self, cls: type, args: tuple, fields: dict):
        if args:
            names = [f.name for f in dataclasses.fields(cls)]
            fields = {**dict(zip(names, args)), **fields}
        self.cls, self.fields = cls, fields

    def match(self, value: Any) -> bool:
        return isinstance(value, self.cls) and all(_match(getattr(value, k), p) for k, p in self.fields.items())

    def __repr__(self) -> str:
        return f"{self.cls.__name__}({', '.join(f'{k}={p!r}' for k, p in self.fields.items())})"


class OneOf(BaseMatcherNode):
    def __init__(self, *options: Any):
        self.options = options

    def match(self, value: Any) -> bool:
        return any(_match(value, option) for option in self.options)


class ZeroOrMore(BaseMatcherNode):
    """In a sequence: any number of elements (each matching ``pattern``, when one is given)."""

    def __init__(self, pattern: Any = None):
        self.pattern = pattern

    def match(self, value: Any) -> bool:
        return self.pattern is None or _match(value, self.pattern)


def _match(value: Any, pattern: Any) -> bool:
    if isinstance(pattern, BaseMatcherNode):
        return pattern.match(value)
    if isinstance(pattern, (list, tuple)):
        return isinstance(value, (list, tuple)) and _sequence(list(value), list(pattern))
    return value == pattern


def _sequence(values: list, patterns: list) -> bool:
    if not patterns:
        return not values
    head, rest = patterns[0], patterns[1:]
    if isinstance(head, ZeroOrMore):
        return any(all(head.match(v) for v in values[:n]) and _sequence(values[n:], rest)
                   for n in range(len(values) + 1))
    return bool(values) and _match(values[0], head) and _sequence(values[1:], rest)


def matches(node: Any, pattern: Any) -> bool:
    return _match(node, pattern)


def findall(tree: cst.CSTNode, pattern: Any) -> list[cst.CSTNode]:
    """Every node of ``tree`` (itself included) that matches, in document order."""
    found: list[cst.CSTNode] = []

    class _Find(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if _match(node, pattern):
                found.append(node)
            return True

    tree.visit(_Find())
    return found


def __getattr__(name: str):
    """``Name``, ``Assign``, ...: a pattern factory for each libcst node class."""
    cls = getattr(cst, name, None)
    if not (isinstance(cls, type) and issubclass(cls, cst.CSTNode)):
        raise AttributeError(name)

    def pattern(*args: Any, **fields: Any) -> _Node:
        return _Node(cls, args, fields)

    pattern.__name__ = name
    return pattern
