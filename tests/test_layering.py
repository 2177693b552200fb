"""The code's shape (docs/architecture.md): no import circles, services that never import each
other, and a torch-free ``shared/`` (the serving install has no torch)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shared", "services")
LAUNCHER = {"services.local", "services.preflight"}  # starts every service, imports each
SERVICES = ("api", "worker", "trainer")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
}


def _known(name: str) -> str | None:
    """The project module ``name`` refers to (``a.b.C`` -> ``a.b``), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """Every project module ``module`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found.update(t for t in map(_known, names) if t is not None and t != module)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back() -> None:
    assert _cycles(GRAPH) == []


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] == "shared" else ".".join(parts[:2])


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_itself_and_shared(service: str) -> None:
    own = f"services.{service}"
    crossing = sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if _room(m) == own
        for t in targets
        if _room(t) not in (own, "shared")
    )
    assert crossing == []


def test_shared_imports_no_service() -> None:
    crossing = sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if _room(m) == "shared"
        for t in targets
        if _room(t) != "shared"
    )
    assert crossing == []


def test_every_shared_module_imports_without_torch() -> None:
    shared = sorted(m for m in MODULES if _room(m) == "shared" and m not in LAUNCHER)
    script = (
        "import importlib, sys\n"
        "sys.modules['torch'] = None  # any `import torch` now raises ImportError\n"
        f"for name in {shared!r}:\n"
        "    importlib.import_module(name)\n"
        "print(len(sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]


def _where_things_are() -> list[str]:
    """The backticked paths of the "Where things are" table of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("## Where things are", 1)[1]
    paths: list[str] = []
    for line in table.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            paths += [p for p in first_cell.split("`")[1::2]]
    return paths


def _expand(path: str) -> list[Path]:
    """A table path to files: a folder, a file, names beside the first (`a/b.py`, `c.py`)."""
    return sorted(ROOT.glob(path)) if "*" in path else [ROOT / path]


def test_the_architecture_table_names_only_what_exists() -> None:
    paths = _where_things_are()
    assert len(paths) > 20
    folder = ""
    missing = []
    for path in paths:
        if "/" in path:
            folder = path.rsplit("/", 1)[0] if not path.endswith("/") else path.rstrip("/")
            found = _expand(path)
        else:  # a name written beside the previous path: in the same folder, or at the root
            found = _expand(f"{folder}/{path}") + _expand(path)
        if not any(p.exists() for p in found):
            missing.append(path)
    assert missing == []


def test_the_architecture_table_names_every_package() -> None:
    named = " ".join(_where_things_are())
    packages = [
        p.relative_to(ROOT).as_posix()
        for base in ("shared", "services", "services/api", "services/trainer")
        for p in sorted((ROOT / base).iterdir())
        if (p / "__init__.py").is_file()
    ]
    assert len(packages) > 10
    unnamed = [p for p in packages if f"{p}/" not in named]
    assert unnamed == []
