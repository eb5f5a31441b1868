"""The package's layers (docs/architecture.md): imports run down the layers only, no module
imports itself through others, and the CLI holds no logic of its own."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(importlib.util.find_spec("hypermaml").origin).parent

#: each top-level unit of the package and its layer: a unit imports only from lower layers
LAYERS = {
    "_version": 0, "errors": 0, "extras": 1, "outputs": 1, "download": 1, "reports": 2,
    "data": 2, "engine": 2, "checkpoint": 2,
    "models": 3,
    "config": 4,
    "methods": 5,
    "evaluation": 6, "runs": 6,
    "classify": 7, "inference": 7,
    "training": 8,
    "experiments": 9, "migrate": 9, "serve": 9,
    "api": 10,
    "cli": 11,
    "__init__": 12,
    "__main__": 13,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = ["hypermaml", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, anywhere in the file (functions included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        found |= {t for t in targets if t.startswith("hypermaml")}
    return found


def unit(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def test_every_unit_has_a_layer():
    assert {unit(m) for m in modules()} == set(LAYERS)


def test_imports_only_run_down_the_layers():
    upward = []
    for source, targets in graph().items():
        for target in targets:
            a, b = unit(source), unit(target)
            if a != b and LAYERS[b] >= LAYERS[a]:
                upward.append(f"{source} -> {target}")
    assert upward == []


def test_no_module_imports_itself_through_others():
    edges = graph()
    for name in edges:  # package __init__ files re-export their modules: not a cycle
        edges[name] = {t for t in edges[name] if not name.startswith(t + ".")}
    cycles, done = [], set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycles.append(" -> ".join(stack[stack.index(node) :] + [node]))
            return
        if node in done:
            return
        for target in sorted(edges.get(node, ())):
            visit(target, [*stack, node])
        done.add(node)

    for name in sorted(edges):
        visit(name, [])
    assert cycles == []


@pytest.mark.parametrize("checked", ["a new encoder needs no change in any method"])
def test_methods_never_ask_which_encoder_they_hold(checked):
    for path in (PACKAGE / "methods").glob("*.py"):
        text = path.read_text()
        for name in ("Conv4", "GroupedEncoder", "IdentityEncoder", "thread_replica"):
            assert name not in text, f"{path.name} names {name}: {checked}"


def test_the_cli_only_parses_and_prints():
    cli = PACKAGE / "cli"
    for path in cli.glob("*.py"):
        # a module per group of commands, each small enough to read at a glance
        assert len(path.read_text().splitlines()) <= 150, f"{path.name} is long: split it"
        tree = ast.parse(path.read_text())
        loops = [n for n in ast.walk(tree) if isinstance(n, ast.For | ast.While)]
        # printing a table row by row is the only loop a command may hold
        for loop in loops:
            calls = {c.func.id for c in ast.walk(loop) if isinstance(c, ast.Call)
                     and isinstance(c.func, ast.Name)}  # fmt: skip
            assert calls <= {"print", "max", "len"}, f"{path.name}:{loop.lineno} computes"
        imported = {m for m in imports(module_name(path), path, set(modules()))}
        assert not {m for m in imported if unit(m) in ("training", "methods", "evaluation")}
