"""The package's import structure: the library never imports the application, imports only point down, there is
no import cycle, and function-local imports are kept for optional dependencies.

Layers, bottom to top (docs: shared architecture, README "Layout"):
library — errors, version, utils, adapters, backbones, losses, zeroshot, data (and the package root);
application — config < evaluation, reports, training < tasks < methods < runs < cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "radapter"
LIBRARY = {
    "errors",
    "version",
    "utils",
    "adapters",
    "backbones",
    "losses",
    "zeroshot",
    "data",
    "segmentation",
    "prompting",
}
APP_RANK = {"config": 1, "evaluation": 2, "reports": 2, "training": 2, "tasks": 3, "methods": 4, "runs": 5, "cli": 6}
# function-local imports are for optional dependencies only (and the demo's heavy optional parts)
OPTIONAL = ("peft", "transformers", "tensorboard", "torch.utils.tensorboard")


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, node: ast.ImportFrom | ast.Import, is_pkg: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level == 0:
        return [node.module or ""]
    base = module.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    target = ".".join(base + ([node.module] if node.module else []))
    if node.module is None:  # from . import a, b: each name may be a submodule
        return [f"{target}.{a.name}" for a in node.names]
    return [target]


def _imports():
    """``{module: [(target, lineno, local), …]}`` for every module of the package (radapter targets only)."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        local = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
        found = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _resolve(module, node, path.name == "__init__.py"):
                    found.append((target, node.lineno, id(node) in local))
        out[module] = found
    return out


IMPORTS = _imports()
MODULES = set(IMPORTS)


def _layer(module: str) -> tuple[str, int]:
    """(top-level part, rank): library parts rank 0."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top in ("", *LIBRARY):
        return top, 0
    if top not in APP_RANK:
        pytest.fail(f"{module}: top-level part {top!r} is in no layer; add it to the layering test")
    return top, APP_RANK[top]


def _known(target: str) -> str | None:
    """The package module a radapter import resolves to (``radapter.data.base``), or None if not ours."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def test_imports_point_down_only():
    bad = []
    for module, found in IMPORTS.items():
        top, rank = _layer(module)
        for target, line, _ in found:
            target = _known(target) if target.startswith("radapter") else None
            if target is None:
                continue
            t_top, t_rank = _layer(target)
            if module == "radapter" and t_rank == 0:
                continue  # the package root re-exports the library
            if t_rank > rank or (t_rank == rank and rank > 0 and t_top != top):
                bad.append(f"{module}:{line} imports {target} (layer {t_top}, above or beside {top})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_library_never_imports_the_application():
    bad = [
        f"{module}:{line} imports {target}"
        for module, found in IMPORTS.items()
        if _layer(module)[1] == 0
        for target, line, _ in found
        if target.startswith("radapter") and _known(target) and _layer(_known(target))[1] > 0
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = {
        m: sorted({_known(t) for t, _, _ in found if t.startswith("radapter") and _known(t)} - {m})
        for m, found in IMPORTS.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            # a package's __init__ importing its own submodules is not a cycle with them unless they import it back
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_function_local_imports_only_for_optional_dependencies():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = ["." * node.level + (node.module or "")]
                else:
                    continue
                for name in names:
                    if not name.startswith(OPTIONAL):
                        bad.append(f"{path.relative_to(SRC)}:{node.lineno} imports {name} inside {fn.name}()")
    assert not bad, "function-local imports of required modules:\n" + "\n".join(bad)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The layering rules flag what they should: a library module importing the trainer."""
    node = ast.parse("from ..training import Trainer").body[0]
    (target,) = _resolve("radapter.adapters.io", node, is_pkg=False)
    assert _layer(_known(target))[1] > _layer("radapter.adapters.io")[1]
