"""The house rules that keep the code readable (the brief; issue 23): no file over 400 lines and no function over 60,
in the package, the tests, the benchmarks and studies, the scripts and the examples."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for folder in ("src", "tests", "benchmarks", "scripts", "examples")
               for p in (ROOT / folder).rglob("*.py"))
MAX_LINES, MAX_FUNCTION = 400, 60


def test_short_files_and_functions():
    bad = []
    for path in FILES:
        text, name = path.read_text(), path.relative_to(ROOT)
        if len(text.splitlines()) > MAX_LINES:
            bad.append(f"{name}: over {MAX_LINES} lines")
        functions = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        bad += [f"{name}: {n.name} has {n.end_lineno - n.lineno + 1} lines" for n in functions
                if n.end_lineno - n.lineno + 1 > MAX_FUNCTION]
    assert not bad, "; ".join(bad)
    assert len(FILES) > 100  # the folders were found
