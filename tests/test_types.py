"""Every public signature of the core library is annotated (mypy checks them in ``make test``)."""

from __future__ import annotations

import ast
from pathlib import Path

import diffexplain

CORE = Path(diffexplain.__file__).resolve().parent


def _unannotated(source: str) -> list[str]:
    """``name(argument)`` / ``name -> ?`` for each public function or method missing an annotation
    (click command callbacks excepted: their parameters are the command line's options)."""
    missing: list[str] = []

    def walk(node: ast.AST, public: bool) -> None:
        nonlocal missing
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                dunder = child.name.startswith("__") and child.name.endswith("__")
                if not public or (child.name.startswith("_") and not dunder):
                    continue
                if any(isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "command"
                       for d in child.decorator_list):
                    continue
                arguments = child.args.posonlyargs + child.args.args + child.args.kwonlyargs
                missing += [f"{child.name}({a.arg})" for a in arguments
                            if a.arg not in ("self", "cls") and a.annotation is None]
                if child.returns is None and child.name != "__init__":
                    missing.append(f"{child.name} -> ?")
            elif isinstance(child, ast.ClassDef):
                walk(child, public and not child.name.startswith("_"))

    walk(ast.parse(source), True)
    return missing


def test_every_public_signature_is_annotated():
    missing = [f"{path.relative_to(CORE)}: {item}" for path in sorted(CORE.rglob("*.py"))
               for item in _unannotated(path.read_text())]
    assert not missing, "\n".join(missing)


def test_the_check_sees_a_missing_annotation():
    assert _unannotated("def f(a, b: int) -> None: ...\nclass C:\n    def g(self): ...\n"
                        "def _private(x): ...") == ["f(a)", "g -> ?"]
