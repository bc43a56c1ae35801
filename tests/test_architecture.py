"""The core package's shape: what it may import, and that it stands alone."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import diffexplain

CORE = Path(diffexplain.__file__).resolve().parent
FORBIDDEN = ("diffexplain_shapes", "training", "benchmarks")


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                names.update([target] + [f"{target}.{a.name}" for a in node.names] if not node.module else [target])
            else:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in CORE.rglob("*.py"):
        parts = ("diffexplain",) + path.relative_to(CORE).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[module] = _imports(path, module)
    return graph


def _area(module: str) -> str:
    """The sub-package a module belongs to (``diffexplain.explain``), or the module itself at the top."""
    return ".".join(module.split(".")[:2])


def test_core_never_imports_the_shapes_world_training_benchmarks_or_the_cli():
    bad = []
    for module, imported in _graph().items():
        for name in imported:
            if name.split(".")[0] in FORBIDDEN:
                bad.append(f"{module} -> {name}")
            if name.startswith("diffexplain.cli") and not module.startswith("diffexplain.cli"):
                bad.append(f"{module} -> {name}")
    assert not bad, bad


def test_subpackages_import_each_other_without_cycles():
    graph = _graph()
    modules = set(graph)
    edges: dict[str, set[str]] = {}
    for module, imported in graph.items():
        for name in imported:
            while name and name not in modules:  # ``from .x import y`` may name an attribute
                name = name.rpartition(".")[0]
            if name and _area(name) != _area(module):
                edges.setdefault(_area(module), set()).add(_area(name))
    cycles = []

    def visit(node, path):
        for nxt in edges.get(node, ()):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            else:
                visit(nxt, path + [nxt])

    for start in edges:
        visit(start, [start])
    assert not cycles, cycles[0]


def test_no_two_modules_import_each_other_even_lazily_or_for_types():
    """Every import counts (top-level, inside functions, under TYPE_CHECKING): the module graph is
    acyclic, so any module can be read knowing only what it imports."""
    graph = _graph()
    modules = set(graph)
    edges: dict[str, set[str]] = {}
    for module, imported in graph.items():
        for name in imported:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):  # a package's own __init__
                edges.setdefault(module, set()).add(name)
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(modules):
        if start not in state:
            visit(start, [start])
    assert not cycles, " -> ".join(cycles[0])


# a test on a family's or a class's name: what models.families exists to hold
_NAME_BRANCH = re.compile("|".join([
    r"__name__\s*(==|!=|\bin\b)",                       # type(pipe).__name__ == "..."
    r"\bin\s+type\([^)]*\)\.__name__|\bin\s+\w+\.__name__",  # "Flux" in type(x).__name__
    r"family\.name\s*(==|!=|\bin\b|\bnot\s+in\b)",        # adapter.family.name != "flux"
    r"\bfamily\s*(==|!=|\bin\b)\s*[(\"']",                 # family in ("sdxl", "sd3")
    r"\.name\s*(==|!=)\s*[\"'](sd|sdxl|sd3|flux|pixart|sana)[\"']",
    r"[\"'](Flux|StableDiffusion|PixArt|Sana|SD3)\w*[\"']\s+in\b",
    r"[\"'][A-Z]\w*[\"']\s+in\s+\w*name\b",               # "CLIP" in name
    r"(==|!=)\s*[\"']\w+Pipeline[\"']|[\"']\w+Pipeline[\"']\s*(==|!=)",
]))


def test_no_family_or_class_name_is_tested_outside_the_families():
    families = CORE / "models" / "families"
    hits = []
    for path in CORE.rglob("*.py"):
        if families in path.parents:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _NAME_BRANCH.search(line) and "__main__" not in line:
                hits.append(f"{path.relative_to(CORE)}:{number}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_the_name_branch_pattern_catches_the_branches_it_is_meant_to():
    for line in ('flux = "Flux" in type(denoiser).__name__', 'if type(pipe).__name__ == "X":',
                 'if adapter.family.name != "flux"', 'family.name in ("sdxl", "sd3")', 'if f.name == "sana"',
                 'if "CLIP" in name:', 'if entries.get("_class_name") == "PaintByExamplePipeline":',
                 'if family in ("sdxl", "sd3"):'):
        assert _NAME_BRANCH.search(line), line
    assert not _NAME_BRANCH.search('raise ValueError(f"{type(pipe).__name__} takes no mask")')


def test_every_core_module_imports_without_the_shapes_distribution():
    """As if diffexplain-shapes were uninstalled: its modules unimportable, its entry points gone."""
    modules = sorted(m for m in _graph() if not m.endswith("__main__"))
    script = f"""
import importlib, importlib.abc, importlib.metadata as md, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {FORBIDDEN!r}:
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
_entry_points = md.entry_points
md.entry_points = lambda **kw: [e for e in _entry_points(**kw) if not e.value.startswith('diffexplain_shapes')]
for name in {modules!r}:
    importlib.import_module(name)
from diffexplain.models.loading import registered_pipelines
assert registered_pipelines() == {{}}
from diffexplain.cli.main import cli
assert 'demo' not in cli.commands and 'explain' in cli.commands
print('ok', len({modules!r}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok")


def test_core_wheel_is_small_and_holds_no_shapes_weights(tmp_path):
    """The core wheel carries code only: the shapes world and its weights are another distribution."""
    import zipfile

    root = CORE.parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(root)], check=True, capture_output=True)
    wheel, = tmp_path.glob("diffexplain-*.whl")
    assert wheel.stat().st_size < 1_000_000, wheel.stat().st_size
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith(".safetensors") or "shapes" in n or n.startswith("training")]


def test_the_public_face_resolves_to_the_names_type_checkers_see():
    import typing

    source = (CORE / "__init__.py").read_text()
    for name in diffexplain.__all__[1:]:
        assert getattr(diffexplain, name).__name__ == name
        assert f" {name}" in source.split("if TYPE_CHECKING:")[1].split("__all__")[0], name
    assert set(dir(diffexplain)) == set(diffexplain.__all__)
    assert typing.TYPE_CHECKING is False


def test_the_command_line_starts_without_loading_torch():
    """Building every command's options (their choices and defaults read from the library) must not
    import torch: it would add about a second to every command, --help and usage errors included."""
    script = "import sys, diffexplain.cli.main; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False"]
