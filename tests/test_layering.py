"""The layering rule and the import graph.

Layers, bottom up: ``memgen`` (the core: contract, noise, samplers, data, run files) imports none of the
other packages; ``neural`` and ``toymodels`` (the models) import only the core, not each other; ``compare``
(the measures) imports no model package; ``figures`` (drawing) imports anything but ``lab``; ``lab`` (the
application: the command, the claims, the audit) may import every package and none imports it.
``toymodels`` also stays free of matplotlib.

Checked twice: by importing every module of a package in a fresh interpreter (what is loaded), and by
reading every import of its source, including imports inside functions and ``importlib.import_module`` /
``__import__`` calls with a literal module name (what could be).

The import graph of the project's own modules (every import, at module level or inside a function) has no
cycle. The one kind of edge left out: a package ``__init__`` importing modules of its own package (its
re-exports: ``from .contract import Denoiser``). A submodule that imports its package's public names then
closes no cycle, since the package imports it only to re-export it, and Python runs the submodule first.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("memgen", "toymodels", "neural", "compare", "figures", "lab")
FORBIDDEN = {
    "memgen": {"toymodels", "neural", "compare", "figures", "lab"},
    "neural": {"compare", "toymodels", "figures", "lab"},
    "toymodels": {"compare", "neural", "figures", "lab", "matplotlib"},
    "compare": {"neural", "toymodels", "figures", "lab"},
    "figures": {"lab"},
}
ALLOWED_CYCLES: dict[tuple, str] = {}
"""Cycles kept on purpose, each as its sorted tuple of modules with a one-line reason (none today)."""

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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, tuple]]:
    """Every import of the file as ``(module, names)``, relative ones resolved: ``import a.b`` -> ``('a.b', ())``,
    ``from a import b, c`` -> ``('a', ('b', 'c'))``, ``importlib.import_module('a.b')`` or ``__import__('a.b')``
    with a literal name -> ``('a.b', ())``."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.append((module, tuple(a.name for a in node.names)))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            out.append((node.args[0].value, ()))
    return out


def _files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    return files


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_source_file_imports_a_forbidden_package(package):
    bad = {}
    for path in _files(package):
        hits = {module.split(".")[0] for module, _ in _imports(path)} & FORBIDDEN[package]
        if hits:
            bad[path.relative_to(ROOT).as_posix()] = sorted(hits)
    assert not bad, bad


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (``from a import b`` names module ``a.b`` where it exists, else
    ``a``), without a package ``__init__``'s imports of its own package (module doc)."""
    files = {_module_name(p): p for package in PACKAGES for p in _files(package)}
    graph = {}
    for name, path in files.items():
        own = name + "." if path.name == "__init__.py" else None
        targets = set()
        for module, names in _imports(path):
            found = [f"{module}.{n}" for n in names if f"{module}.{n}" in files]
            if len(found) < len(names) or not names:
                found.append(module)
            targets |= {t for t in found if t in files and t != name and not (own and t.startswith(own))}
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple]:
    """The strongly connected components of more than one module (Tarjan), each as a sorted tuple."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycles():
    found = set(cycles(import_graph()))
    assert found <= set(ALLOWED_CYCLES), sorted(found - set(ALLOWED_CYCLES))


def test_the_cycle_check_sees_function_level_imports():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [("a", "b", "c")]
    edges = import_graph()
    assert "lab.commands.demo" in edges["lab.cli"]                     # from .commands import demo
    assert "toymodels.empirical._reusing_loops" in edges["toymodels.empirical._reusing_sampler"]  # in a function
    assert "memgen.contract" not in edges["memgen"]                    # a re-export, left out


def test_neural_is_more_science_than_plumbing():
    """Every module of ``neural/`` is classified science or plumbing (benchmarks/plumbing.py, with its reason),
    and the plumbing code lines stay under MAX_RATIO per science line (issue 24; EDM's training code: 1.2-1.6)."""
    from benchmarks.plumbing import MAX_RATIO, neural_count, unclassified

    assert unclassified() == []
    assert neural_count()["ratio"]["code"] < MAX_RATIO


def test_code_lines_leave_out_docstrings_comments_and_blank_lines():
    from benchmarks.plumbing import code_lines

    source = ('"""Module\n\ndocstring."""\n\n# a comment\nx = (1 +\n     2)  # trailing\n\n\n'
              'def f():\n    """One."""\n    """Attribute-style string."""\n    return """not a\ndocstring"""\n')
    assert code_lines(source) == 2 + 1 + 2          # x's two lines, def, the return's two lines
