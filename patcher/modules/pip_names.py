"""What to ``pip install`` for a module a file imports and the target interpreter lacks."""

from __future__ import annotations

from ..install.locate import Install

# import name -> what to pip install, where they differ or are common in backbone files
PIP_NAMES = {
    "yaml": "PyYAML",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "mmcv": "mmcv",
    "timm": "timm",
    "einops": "einops",
    "torchsummary": "torchsummary",
    "thop": "thop",
    "pywt": "PyWavelets",
    "mmengine": "mmengine",
}


def pip_package(missing: str) -> str:
    """What to ``pip install`` for a module that failed to import (``cv2`` is opencv-python)."""
    top = missing.split(".")[0]
    return PIP_NAMES.get(top, top)


def install_hint(missing: str, install: Install) -> str:
    package = pip_package(missing)
    return (
        f"The file needs the package '{package}'. Install it into the interpreter that trains: "
        f"{install.python} -m pip install {package} ; then run apply again. Nothing was written."
    )
