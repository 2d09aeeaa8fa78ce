"""The house rules of docs/architecture.md, checked on the source: imports go one way through the
engine's sub-packages, the engine knows nothing of Qt or napari, and no private name crosses modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "napari_fewcell"
ENGINE = PKG / "engine"

#: what each part of the engine may import (besides itself); core imports nothing above it
ALLOWED = {
    "core": set(),
    "nets": {"core"},
    "prompt": {"core", "nets"},
    "partial": {"core", "nets", "prompt"},
    "fewshot": {"core", "nets"},
    "training": {"core", "nets"},
    "models": {"core", "partial", "fewshot"},
    "suggest": {"core", "nets", "prompt", "partial", "fewshot", "models"},
    "batch": {"core", "prompt", "partial", "fewshot", "models"},
}
GUI = ("napari", "qtpy", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt")


def part_of(path: Path) -> str:
    rel = path.relative_to(ENGINE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(path: Path, load_time: bool = False):
    """(resolved module path under napari_fewcell or a top-level name, imported names) of every import; with
    ``load_time``, only of the statements run when the module loads (not those inside functions or classes)."""
    tree = ast.parse(path.read_text())
    if load_time:
        tree = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    inside = path.is_relative_to(PKG)  # scripts and benchmarks import absolutely
    package = ".".join(path.relative_to(PKG.parent).parts[:-1]) if inside else ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module, [a.name for a in node.names]
        elif not load_time and isinstance(node, ast.Call) and getattr(node.func, "id", "") == "lazy_exports":
            yield from lazy_imports(node, package)


def lazy_imports(call: ast.Call, package: str):
    """(module, names) of a package's ``lazy_exports(__name__, {".module": (names, ...), ...})``: imports made on
    first use (engine/core/exports.py) are imports all the same for these rules."""
    public = call.args[1]
    if not isinstance(public, ast.Dict):
        return
    for key, value in zip(public.keys, public.values):
        names = [e.value for e in getattr(value, "elts", []) if isinstance(e, ast.Constant)]
        relative = key.value
        dots = len(relative) - len(relative.lstrip("."))
        base = package.split(".")
        yield ".".join(base[: len(base) - dots + 1] + [relative.lstrip(".")]), names


ENGINE_FILES = sorted(p for p in ENGINE.rglob("*.py") if p.name != "__init__.py" or p.parent != ENGINE)


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: str(p.relative_to(ENGINE)))
def test_engine_imports_go_one_way(path):
    part = part_of(path)
    for module, _ in imports(path):
        top = module.split(".")[0]
        assert top not in GUI, f"{path.relative_to(ROOT)} imports {module}: the engine knows nothing of Qt or napari"
        if module == "napari_fewcell" or (module.startswith("napari_fewcell.")
                                           and not module.startswith("napari_fewcell.engine")):
            pytest.fail(f"{path.relative_to(ROOT)} imports {module}, which sits above the engine")
        if module.startswith("napari_fewcell.engine."):
            target = module.split(".")[2]
            assert target == part or target in ALLOWED[part], (
                f"{path.relative_to(ROOT)} ({part}) imports {module}; {part} may import only "
                f"{sorted(ALLOWED[part]) or 'nothing above itself'}"
            )


SOURCES = sorted([*PKG.rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "scripts").glob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_crosses_modules(path):
    for module, names in imports(path):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{path.relative_to(ROOT)} imports {private} from {module}: make them public"


def package_modules() -> dict[str, Path]:
    """{dotted module name: its file} of every module of the package (a package is its ``__init__.py``)."""
    return {".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PKG.rglob("*.py")}


def module_edges(path: Path, mods: dict[str, Path], load_time: bool = False) -> tuple[set[str], set[str]]:
    """(the package's modules ``path`` imports — ``from . import x`` of a submodule x is an edge to x —, the
    top-level names of the other packages it imports)."""
    inside, outside = set(), set()
    for module, names in imports(path, load_time):
        subs = {f"{module}.{n}" for n in names if f"{module}.{n}" in mods}
        if subs or module in mods:
            inside |= subs or {module}
        else:
            outside.add(module.split(".")[0])
    return inside, outside


def module_graph() -> dict[str, set[str]]:
    """{module: the package's modules it imports}."""
    mods = package_modules()
    return {name: module_edges(path, mods)[0] - {name} for name, path in mods.items()}


def test_no_import_loops():
    """No two modules import each other, directly or through others (TYPE_CHECKING imports count too)."""
    graph, state, loops = module_graph(), {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                loops.append(" → ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not loops, "import loops: " + "; ".join(loops)
    assert "napari_fewcell.engine.prompt.segmenter" in graph["napari_fewcell.engine.prompt"]  # the graph is real


def test_a_run_on_this_machine_does_not_load_dask_distributed():
    """`fewcell segment` and `fewcell predict` on this machine build their model from batch/specs.py, which must not
    load dask.distributed (0.23 s of every command's start-up): neither it nor anything it loads imports it at load
    time (packages' __init__ included), and the CLI imports cluster.py only for --scheduler."""
    mods = package_modules()
    seen, todo, outside = set(), ["napari_fewcell.engine.batch.specs"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in mods]
        inside, other = module_edges(mods[name], mods, load_time=True)
        todo += sorted(inside)
        outside |= other
    assert "napari_fewcell.engine.core.progress" in seen and "torch" in outside  # the walk is real
    assert not outside & {"distributed", "dask"}, sorted(outside)
    for verb in ("segment.py", "partial.py"):
        assert not [m for m, _ in imports(PKG / "cli" / verb) if m.endswith("batch.cluster")], verb


PACKAGES = sorted(p.parent for p in PKG.rglob("__init__.py"))


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda p: str(p.relative_to(PKG.parent)))
def test_public_names_resolve_and_shadow_no_module(folder):
    """Every name of a package's ``__all__`` resolves (a lazy export names a module that gives it), and none is also
    the name of one of its sub-modules (importing that sub-module would replace the lazy name by the module)."""
    import importlib

    package = importlib.import_module(".".join(folder.relative_to(PKG.parent).parts))
    submodules = {p.stem for p in folder.glob("*.py")}
    submodules |= {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}
    for name in getattr(package, "__all__", []):
        assert name not in submodules, f"{package.__name__} exports {name!r}, also the name of its sub-module"
        assert getattr(package, name) is not None
