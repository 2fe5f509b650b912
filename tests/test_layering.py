"""The layering rule: neural/ and toymodels/ never import each other, compare/ or figures/; compare/
imports no model package; toymodels/ stays free of matplotlib.

Checked twice: by importing every module of a package in a fresh interpreter (what is loaded), and by
reading every import statement of its source, including imports inside functions (what could be).
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "neural": {"compare", "toymodels", "figures"},
    "toymodels": {"compare", "neural", "figures", "matplotlib"},
    "compare": {"neural", "toymodels", "figures"},
}

CHECK = """
import importlib, pkgutil, sys
import {package}
for info in pkgutil.walk_packages({package}.__path__, "{package}."):
    importlib.import_module(info.name)
print(",".join(sorted({{m.split(".")[0] for m in sys.modules}} & set({forbidden}))))
"""


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_every_module_of_a_package_loads_none_of_the_forbidden_ones(package):
    code = CHECK.format(package=package, forbidden=sorted(FORBIDDEN[package]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "", f"importing {package} loaded {done.stdout.strip()}"


def _imported(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_source_file_imports_a_forbidden_package(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    bad = {}
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        hits = _imported(path) & FORBIDDEN[package]
        if hits:
            bad[rel] = sorted(hits)
    assert not bad, bad
