"""The house rules that a tool can check: imports sit at the top of a module, except those
kept inside a function to keep `hostctl --help` and start-up fast, each saying so."""

from __future__ import annotations

import ast
from pathlib import Path

import hostctl

PACKAGE = Path(hostctl.__file__).parent
REPO = PACKAGE.parent

def _function_imports(tree: ast.AST) -> list[tuple[ast.stmt, list[ast.stmt]]]:
    """Every import inside a function body, with the statement list it sits in."""
    found: list[tuple[ast.stmt, list[ast.stmt]]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for field in ("body", "orelse", "finalbody", "handlers"):
            stmts = getattr(node, field, None)
            if not isinstance(stmts, list):
                continue
            for stmt in stmts:
                if isinstance(stmt, ast.Import | ast.ImportFrom) and in_function:
                    found.append((stmt, stmts))
                visit(stmt, in_function or isinstance(stmt, ast.FunctionDef
                                                     | ast.AsyncFunctionDef))
        if isinstance(node, ast.Match):
            for case in node.cases:
                visit(case, in_function)

    visit(tree, False)
    return found


def unexplained_imports(source: str) -> list[int]:
    """Lines of imports inside functions with no comment saying "start-up" on the line or
    the line above; an import right under another one that is explained shares its comment
    (a command function groups its imports under one)."""
    lines = source.splitlines()

    def says_why(lineno: int) -> bool:
        return any("start-up" in lines[n - 1] and "#" in lines[n - 1]
                   for n in (lineno, lineno - 1) if n >= 1)

    explained: set[int] = set()
    bad = []
    for stmt, stmts in _function_imports(ast.parse(source)):
        i = stmts.index(stmt)
        prev = stmts[i - 1] if i else None
        grouped = (isinstance(prev, ast.Import | ast.ImportFrom) and id(prev) in explained
                   and prev.end_lineno == stmt.lineno - 1)
        if grouped or says_why(stmt.lineno):
            explained.add(id(stmt))
        else:
            bad.append(stmt.lineno)
    return bad


def test_the_checker_finds_unexplained_imports() -> None:
    source = '''
import os

def explained():
    # imported here: keeps start-up fast
    import json
    import csv

    import shlex  # start-up: only here
    return json, csv, shlex

def not_explained():
    import json
    # imported here
    import csv
    if os:
        import shlex
    return json, csv, shlex

def gap():
    # imported here: keeps start-up fast
    import json

    import csv
    return json, csv
'''
    assert unexplained_imports(source) == [13, 15, 17, 24]


def test_imports_inside_functions_say_they_keep_start_up_fast() -> None:
    problems = [f"{path.relative_to(REPO).as_posix()}:{n}: import inside a function without "
                "a comment saying it keeps start-up fast (move it to the top, or break the "
                "cycle that keeps it here)"
                for path in sorted(PACKAGE.rglob("*.py"))
                for n in unexplained_imports(path.read_text())]
    assert problems == []
