"""Which ``ultralytics`` an interpreter would import, found without importing it (``--python PATH``).

Started by ``runner.py`` as ``python locate_probe.py`` in the folder rtdetr-patch runs in. It looks the package
up as ``python -c`` would (the current folder first on the search path, not this script's folder), and prints
one line, ``PREFIX`` then JSON: ``{"package": folder | null, "executable": sys.executable}``.
"""

import importlib.util
import json
import sys

from target_common import PREFIX  # beside this file: the script's folder is first on sys.path


def main() -> None:
    sys.path[0] = ""  # as `python -c`: the current folder, where a checkout's ultralytics/ may be
    spec = importlib.util.find_spec("ultralytics")
    found = list(spec.submodule_search_locations or []) if spec else []
    print(PREFIX + json.dumps({"package": found[0] if found else None, "executable": sys.executable}), flush=True)


if __name__ == "__main__":
    main()
