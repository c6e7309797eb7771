"""Before/after cases of tasks-import (blog step 4.3): the transform on small sources shaped like the real code."""

from __future__ import annotations

from helpers import assert_before_after, assert_missing, src
from rtdetr_patch.patches.tasks_import import TasksImport

IMPORT_BEFORE = src("""
    # Ultralytics YOLO, AGPL-3.0 license

    import contextlib
    from copy import deepcopy

    import torch
    import torch.nn as nn

    from ultralytics.nn.modules import (C1, C2, Conv, Detect)

    try:
        import thop
    except ImportError:
        thop = None


    class BaseModel(nn.Module):
        pass


    import late
""")
IMPORT_AFTER = IMPORT_BEFORE.replace(
    "from ultralytics.nn.modules import (C1, C2, Conv, Detect)\n",
    "from ultralytics.nn.modules import (C1, C2, Conv, Detect)\n"
    "from ultralytics.nn.Addmodules import *  # noqa: F403  rtdetr-patch: added backbones (blog step 4.3)\n",
)


def test_tasks_import():
    assert IMPORT_AFTER != IMPORT_BEFORE
    assert_before_after(TasksImport, IMPORT_BEFORE, IMPORT_AFTER)


def test_tasks_import_missing():
    code = src('''
        """No imports before the first class."""


        class BaseModel:
            pass


        import torch
    ''')
    assert_missing(TasksImport, code, "import statements before the first class or function")
