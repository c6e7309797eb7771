"""The programs that run in the target interpreter (installed as ``rtdetr_patch.patcher.target``).

``smoke.py`` (the smoke verification), ``module_probe.py`` (the ``--module`` preflight) and ``adopt_probe.py``
(``adopt``'s imports and builds) are started by ``runner.py`` (one protocol, one timeout table) as
scripts with the Python that trains, which may not have rtdetr-patch installed: they import nothing
of ours but ``target_common.py`` beside them (the script's folder is first on ``sys.path``), which
holds what crosses the process boundary: the line prefix, the probe sizes, the backbone contract and
the channel rules. The engine imports the same module as ``rtdetr_patch.patcher.target.target_common``.
"""
