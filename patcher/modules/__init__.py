"""Users' own modules: ``apply --module FILE.py[:NAME[=RULE]]`` (and the modules ``adopt`` carries).

``spec.py`` reads the option and the file (``torch_layers.py`` for ``torch.nn:NAME=RULE``, ``siblings.py`` for
the files beside it that it imports), ``names.py`` says which names are taken, ``preflight.py`` checks every
file in the target interpreter and judges the answer (``backbones.py`` for backbones, ``rules.py`` for modules
registered by a channel rule), and ``registry.py`` writes the lines that register them in the added package.
A module is a ``user_module.UserModule``: the record's ``ModuleEntry`` with this run's facts added.
"""
