"""Shared fixtures: real Ultralytics release trees from a wheel cache, and an isolated state folder.

Wheels are downloaded once (``pip download --no-deps``) into ``$RTDETR_PATCH_WHEEL_CACHE``
(default ``~/.cache/rtdetr-patch/wheels``) and their ``ultralytics/`` folder extracted once per
test session. Tests copy a tree before changing it; no test touches the interpreter's own install
or the user's real backup store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtdetr_patch.cli import main as cli_main

RELEASES = ("8.0.136", "8.0.227", "8.1.0", "8.2.0", "8.3.0", "8.3.100", "8.3.253", "8.4.0", "8.4.190")
LATEST = RELEASES[-1]
OLD = "8.0.227"


def wheel_cache() -> Path:
    cache = Path(os.environ.get("RTDETR_PATCH_WHEEL_CACHE") or Path.home() / ".cache" / "rtdetr-patch" / "wheels")
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def wheel(release: str) -> Path:
    if os.environ.get("RTDETR_PATCH_UNIT"):  # `make test-unit`: a test that needs a release's wheel is not a unit test
        raise RuntimeError(
            f"the unit tier takes no Ultralytics wheel (asked for {release}): this test needs a real "
            "release tree; give it one of conftest.WHEEL_FIXTURES"
        )
    cache = wheel_cache()
    found = sorted(cache.glob(f"ultralytics-{release}-*.whl"))
    if not found:  # into a folder of this process first, then renamed: a parallel worker never sees half a wheel
        with tempfile.TemporaryDirectory(dir=cache) as scratch:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--only-binary=:all:",
                    "-d",
                    scratch,
                    f"ultralytics=={release}",
                ],
                check=True,
            )
            for got in Path(scratch).glob("ultralytics-*.whl"):
                os.replace(got, cache / got.name)
        found = sorted(cache.glob(f"ultralytics-{release}-*.whl"))
    assert found, f"no wheel for ultralytics {release} in {cache}"
    return found[0]


# Fixtures that extract a real Ultralytics release (from its wheel): a test that uses none of them, and is not
# marked slow or wheels (a test that reads wheels itself), is a unit test (`make test-unit`: seconds, no wheel, no network).
WHEEL_FIXTURES = {
    "release_trees",
    "tree",
    "memo_plans",
    "runs",
    "trained",
    "patched_latest",
    "stock",
    "checkout",
    "own_cache",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        heavy = item.get_closest_marker("slow") or item.get_closest_marker("wheels")
        if not (set(getattr(item, "fixturenames", ())) & WHEEL_FIXTURES) and not heavy:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def release_trees(tmp_path_factory):
    """release -> a pristine extracted folder that holds ``ultralytics/`` (read-only by convention)."""
    base = tmp_path_factory.mktemp("releases")
    trees: dict[str, Path] = {}

    def get(release: str) -> Path:
        if release not in trees:
            root = base / release
            with zipfile.ZipFile(wheel(release)) as zf:
                zf.extractall(root, [n for n in zf.namelist() if n.startswith("ultralytics/")])
            trees[release] = root
        return trees[release]

    return get


@pytest.fixture
def tree(release_trees, tmp_path):
    """A fresh writable copy of a release tree: ``tree(release) -> root`` (holding ``ultralytics/``)."""

    def make(release: str) -> Path:
        root = tmp_path / f"site-{release}"
        shutil.copytree(release_trees(release), root)
        return root

    return make


@pytest.fixture(autouse=True)
def no_inherited_width(monkeypatch):
    """pytest-xdist's workers inherit COLUMNS=80 from their launcher: the output would fold as on an 80-column
    terminal, which the tests of piped output must not see (those that want a width set it themselves)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture(autouse=True)
def state_home(tmp_path, monkeypatch):
    home = tmp_path / "state"
    monkeypatch.setenv("RTDETR_PATCH_HOME", str(home))
    return home


@pytest.fixture
def cli():
    """Run the CLI in-process: ``cli("apply", "--target", dir) -> click Result`` (exit_code, output)."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli_main, [str(a) for a in args], catch_exceptions=False)

    return run


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root (Python's __pycache__ left out)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


# -- plans memoised for the whole session ----------------------------------------------------------
_PLANNED: dict[tuple, tuple[bytes, list]] = {}


@pytest.fixture
def memo_plans(monkeypatch):
    """Memoise ``rtdetr_patch.patcher.plan.planner.plan_file`` by (release, file, transforms, bytes), for the whole session.

    A file's plan is a pure function of those (the path only enters error messages, and errors are
    never memoised), so this changes no outcome; it only spares the libcst passes a command would
    repeat on bytes an earlier command already planned (check after apply again, the second revert
    after the first apply, the many tests that start from the same pristine tree). Every distinct
    input is still planned for real once by the product. ``test_releases``, ``test_cli`` and
    ``test_transforms`` use it, so the whole suite stays fast on two cores. It holds because every
    caller reaches the function through the module at call time (``plan.plan_file``, ``make_plan``'s
    own global), never through a name bound at import.
    """
    from rtdetr_patch.patcher.plan import planner as plan_module  # libcst: only the sessions that plan import it

    real = plan_module.plan_file

    def cached(install, rel, transforms, data=None, **more):
        if more:  # a signature this memo does not know: plan for real
            return real(install, rel, transforms, data, **more)
        if data is None:
            try:
                data = (install.package / rel).read_bytes()
            except OSError:
                return real(install, rel, transforms)
        key = (install.release, rel, tuple(transforms), data)
        if key not in _PLANNED:
            change = real(install, rel, transforms, data)
            _PLANNED[key] = (change.before, change.after, change.steps)
        before, after, steps = _PLANNED[key]  # before is b"" where the release gates the file out
        return plan_module.FileChange(
            rel=rel, path=install.package / rel, before=before, after=after, steps=list(steps)
        )

    monkeypatch.setattr(plan_module, "plan_file", cached)
