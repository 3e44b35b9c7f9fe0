"""Workspace rules: every package imports; no package imports a sibling (ARCHITECTURE.md)."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "bpe": "bpe",
    "nn-core": "nn_core",
    "optim": "optim",
    "kernels-triton": "kernels_triton",
    "trainer": "trainer",
}


@pytest.mark.parametrize("import_name", sorted(PACKAGES.values()))
def test_package_imports_and_lists_its_public_names(import_name):
    module = importlib.import_module(import_name)
    assert isinstance(module.__all__, list)
    for name in module.__all__:
        assert hasattr(module, name), f"{import_name}.__all__ names {name!r}, which is missing"


def _imported_top_level_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package_dir", sorted(PACKAGES))
def test_no_package_imports_a_sibling(package_dir):
    own = PACKAGES[package_dir]
    siblings = set(PACKAGES.values()) - {own} | {"train_app"}
    offenders = []
    for path in sorted((ROOT / "packages" / package_dir / "src").rglob("*.py")):
        bad = _imported_top_level_modules(path) & siblings
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "dependency rule broken:\n" + "\n".join(offenders)


def test_bpe_does_not_import_torch():
    for path in sorted((ROOT / "packages" / "bpe" / "src").rglob("*.py")):
        assert "torch" not in _imported_top_level_modules(path), f"{path} imports torch"
