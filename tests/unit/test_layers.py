"""Layers point one way (docs/CONTRACTS.md): a failing check instead of "please don't import".

Reads every module's imports with `ast` (nothing is executed) and checks each package only
reaches the layers below it.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# package -> packages of ours it may import (besides itself)
ALLOWED = {
    # validation checks selectors with tinykube.labels, which reports model FieldErrors
    "tinykube.model": {"tinykube.labels"},
    "tinykube.labels": {"tinykube.model"},
    "tinykube.store": {"tinykube.model"},
    "tinykube.netns": set(),
    "tinykube.controllers": {"tinykube.model", "tinykube.labels", "tinykube.store"},
    "tinykube.runtime": {"tinykube.model", "tinykube.labels", "tinykube.store", "tinykube.netns"},
    # the service proxy (nftables) and cluster DNS: they read Services from the store
    "tinykube.services": {"tinykube.model", "tinykube.store"},
}
# folder at the repo root -> the package it installs as (pyproject's package-dir)
PACKAGE_OF_FOLDER = {"tinykube": "tinykube", "controllers": "tinykube.controllers",
                     "runtime": "tinykube.runtime", "netns": "tinykube.netns"}


def _layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _modules() -> list[tuple[str, Path]]:
    found = []
    for folder, package in PACKAGE_OF_FOLDER.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            name = ".".join([package, *(p for p in parts if p != "__init__")])
            found.append((name, path))
    return found


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                # `from tinykube import labels` imports tinykube.labels
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] == "tinykube"}


@pytest.mark.parametrize("module, path", _modules(), ids=lambda v: str(v))
def test_imports_respect_the_layers(module, path):
    layer = _layer_of(module)
    if layer is None:  # apiserver, client, cli, daemon: the wiring may import anything
        return
    allowed = ALLOWED[layer] | {layer}
    bad = sorted(i for i in _imports(path, module)
                 if not any(i == a or i.startswith(a + ".") for a in allowed))
    assert not bad, f"{module} ({layer}) imports {bad}; allowed: {sorted(allowed)}"


BARE_NAMES = ("runtime", "controllers", "netns")  # folders, never import names


@pytest.mark.parametrize("path", sorted(p for d in ("tinykube", *BARE_NAMES, "tests", "scripts")
                                        for p in (REPO / d).rglob("*.py")), ids=str)
def test_no_import_uses_a_bare_folder_name(path):
    """`runtime`, `controllers` and `netns` install as `tinykube.…`; a bare import would only
    work from the repo root and would shadow PyPI packages of those names."""
    tree = ast.parse(path.read_text())
    bare = sorted({alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for alias in node.names if alias.name.split(".")[0] in BARE_NAMES}
                  | {node.module for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and not node.level and node.module
                     and node.module.split(".")[0] in BARE_NAMES})
    assert not bare, f"{path} imports {bare}: use tinykube.{bare[0]}"
