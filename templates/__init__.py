"""The files rtdetr-patch copies into Ultralytics, installed as ``rtdetr_patch.templates`` (data, read with
``importlib.resources``).

The Python files under ``Addmodules/`` run inside Ultralytics, as ``ultralytics.nn.Addmodules``: they
import torch and Ultralytics only, nothing of rtdetr-patch, so a patched install works without the tool.
"""
