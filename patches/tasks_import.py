"""Blog step 4.3: ``tasks.py`` imports the added module package."""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from .base import MARK, Outcome, Transform, simple_statement

PACKAGE = "ultralytics.nn.Addmodules"
IMPORT_LINE = f"from {PACKAGE} import *  # noqa: F403  {MARK}: added backbones (blog step 4.3)\n"

_IMPORT = m.SimpleStatementLine(body=[m.OneOf(m.Import(), m.ImportFrom())])
_OURS = m.SimpleStatementLine(
    body=[
        m.ImportFrom(
            module=m.Attribute(
                value=m.Attribute(value=m.Name("ultralytics"), attr=m.Name("nn")), attr=m.Name("Addmodules")
            )
        )
    ]
)


class TasksImport(Transform):
    """Import every name the added package exports into ``tasks.py`` (blog step 4.3).

    ``parse_model`` resolves a yaml module name with ``globals()[name]``, so the backbone classes
    and the registry must be module globals of ``tasks.py``. The import goes right after the
    file's leading import statements, where the blog puts it ("at the top").
    """

    NAME = "tasks-import"
    FILE = "nn/tasks.py"
    BLOG_STEP = "4.3"
    LOOKED_FOR = "the module-level import statements before the first class or function"
    SCOPE = ()
    STATEMENTS = False

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        body = list(updated.body)
        if any(m.matches(s, _OURS) for s in body):
            self.settle(Outcome.APPLIED)
            return updated
        last = None
        for index, stmt in enumerate(body):
            if isinstance(stmt, (cst.ClassDef, cst.FunctionDef)):
                break
            if m.matches(stmt, _IMPORT):
                last = index
        if last is None:
            return updated
        self.settle(Outcome.PATCHED)
        body.insert(last + 1, simple_statement(IMPORT_LINE))
        return updated.with_changes(body=body)
