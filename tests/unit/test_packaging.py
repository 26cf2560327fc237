"""The wheel installs one import namespace, `tinykube`, and every package of the tree in it.

`runtime`, `controllers` and `netns` are folders at the repo root; pyproject maps them to
`tinykube.runtime`, `tinykube.controllers` and `tinykube.netns`. Their bare names are taken on
PyPI, so a wheel that shipped them top-level would overwrite another project's files.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDER_PACKAGE = {"tinykube": "tinykube", "runtime": "tinykube.runtime",
                  "controllers": "tinykube.controllers", "netns": "tinykube.netns"}


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy, so the repo gets no build/ or egg-info; --no-build-isolation uses the
    # venv's setuptools (a test extra) instead of downloading one.
    source = tmp_path_factory.mktemp("source") / "tinykube"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "tests", "__pycache__", "*.egg-info", "build"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "--disable-pip-version-check", "-q",
                             "-w", str(out), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("tinykube-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_wheel_has_no_top_level_package_but_tinykube(wheel_names):
    tops = {name.split("/")[0] for name in wheel_names}
    code = {t for t in tops if not t.endswith((".dist-info", ".data"))}
    assert code == {"tinykube"}, f"top-level entries besides tinykube: {sorted(code)}"


def test_wheel_contains_every_package_of_the_tree(wheel_names):
    missing = []
    for folder, package in FOLDER_PACKAGE.items():
        for init in (REPO / folder).rglob("__init__.py"):
            sub = init.parent.relative_to(REPO / folder).parts
            path = "/".join([*package.split("."), *sub, "__init__.py"])
            if path not in wheel_names:
                missing.append(path)
    assert not missing, f"pyproject's package list misses {missing}"


def test_wheel_ships_the_shim_source(wheel_names):
    assert "tinykube/runtime/shim/tk-shim.c" in wheel_names
