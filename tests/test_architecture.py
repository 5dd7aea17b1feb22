"""The import rules of docs/architecture.md, checked on the source: every module of the package is
parsed with ast; an import of a package module that the rules table does not allow fails (whether
at module level or inside a function), a part missing from the table fails, and a cycle among the
module-level imports fails. The checker itself is tested on a made-up bad edge and a made-up cycle,
so that a checker which finds nothing cannot pass."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PACKAGE = "trans3dhead"
SOURCE = REPO_ROOT / PACKAGE
DOC = REPO_ROOT / "docs" / "architecture.md"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (REPO_ROOT / rel).with_suffix(".py").is_file() or (REPO_ROOT / rel / "__init__.py").is_file()


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(module-level, all) package modules imported by one file."""
    return parse_imports(path.read_text(), module_name(path), path.name == "__init__.py")


def parse_imports(text: str, name: str, is_package: bool) -> tuple[set[str], set[str]]:
    """(module-level, all) package modules that source text of module `name` imports.
    `from a.b import c` counts a.b, and a.b.c too where c is itself a module."""
    tree = ast.parse(text)
    top_level = {id(n) for n in ast.walk(ast.Module(body=[n for n in tree.body if not isinstance(
        n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))], type_ignores=[]))}
    # class bodies run at import time too: their direct statements count as module level
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            top_level |= {id(n) for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    module_level, everything = set(), set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names if _is_module(f"{mod}.{a.name}")]
        targets = [t for t in targets if t == PACKAGE or t.startswith(PACKAGE + ".")]
        everything.update(targets)
        if id(node) in top_level:
            module_level.update(targets)
    return module_level, everything


def part_of(module: str) -> str:
    """trans3dhead.inference.detectors.base -> inference; trans3dhead.weights -> weights;
    the package's own __init__ and __main__ -> trans3dhead."""
    rest = module.split(".")[1:]
    if not rest or rest[0] == "__main__":
        return PACKAGE
    return rest[0]


def read_rules(doc: Path = DOC) -> dict[str, set[str]]:
    """The table between the import-rules markers: part -> parts it may import (besides itself)."""
    text = doc.read_text()
    block = re.search(r"<!-- import-rules.*?-->(.*?)<!-- /import-rules -->", text, re.S)
    assert block, f"{doc}: no import-rules table"
    rules = {}
    for line in block.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("part", "") or set(cells[0]) <= {"-"}:
            continue
        allowed = set() if cells[1] in ("—", "-", "") else {c.strip() for c in cells[1].split(",")}
        rules[cells[0]] = allowed
    return rules


def forbidden_edges(graph: dict[str, set[str]], rules: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            a, b = part_of(src), part_of(dst)
            if a != b and b not in rules.get(a, set()):
                bad.append(f"{src} -> {dst} ({a} may not import {b})")
    return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a list of modules, first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _graphs():
    module_level, everything = {}, {}
    for path in sorted(SOURCE.rglob("*.py")):
        name = module_name(path)
        module_level[name], everything[name] = imports_of(path)
    return module_level, everything


def test_the_rules_table_names_every_part_of_the_package():
    rules = read_rules()
    parts = {part_of(module_name(p)) for p in SOURCE.rglob("*.py")}
    assert {"errors", "config", "fileio", "face_model", "model", "data", "weights", "training", "evaluation",
            "inference", "cli"} <= parts  # the layout the doc describes is there
    assert parts <= set(rules), f"parts missing from docs/architecture.md's table: {sorted(parts - set(rules))}"
    for part, allowed in rules.items():
        assert allowed <= set(rules), f"{part}: unknown parts {sorted(allowed - set(rules))}"
    for leaf in ("errors", "config", "fileio"):
        assert rules[leaf] <= {"errors"}, f"{leaf} must stay a leaf"


def test_no_module_imports_what_the_rules_forbid():
    _, everything = _graphs()
    assert sum(len(v) for v in everything.values()) > 100  # the parser sees the package's imports
    bad = forbidden_edges(everything, read_rules())
    assert not bad, "imports that docs/architecture.md forbids:\n" + "\n".join(bad)


def test_no_import_cycle_among_module_level_imports():
    module_level, _ = _graphs()
    cycle = find_cycle(module_level)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cli_imports_the_library_lazily():
    """Only errors and the CLI's own modules at module level, so `trans3dhead --help` stays fast."""
    module_level, _ = _graphs()
    for name, targets in module_level.items():
        if part_of(name) == "cli":
            heavy = {t for t in targets if part_of(t) not in ("cli", "errors")}
            assert not heavy, f"{name} imports {sorted(heavy)} at module level"


def test_the_checker_catches_a_bad_edge_and_a_cycle():
    """The same functions on made-up input: a network importing a dataset reader, the old
    aligner <-> video cycle, and a relative import resolved to its module."""
    rules = read_rules()
    bad = forbidden_edges({"trans3dhead.model.backbone": {"trans3dhead.data.aflw_crops"},
                           "trans3dhead.config": {"trans3dhead.face_model.frames"},
                           "trans3dhead.cli.predict": {"trans3dhead.inference.aligner"}}, rules)
    assert len(bad) == 2 and "model may not import data" in bad[1] and "config may not import face_model" in bad[0]
    cycle = find_cycle({"trans3dhead.inference.aligner": {"trans3dhead.inference.video"},
                        "trans3dhead.inference.video": {"trans3dhead.inference.results", "trans3dhead.inference.aligner"},
                        "trans3dhead.inference.results": set()})
    assert cycle == ["trans3dhead.inference.aligner", "trans3dhead.inference.video", "trans3dhead.inference.aligner"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    # module-level and lazy imports on real files of the package
    top, every = imports_of(SOURCE / "inference" / "crops.py")
    assert "trans3dhead.face_model.frames" in top and top <= every
    top, every = imports_of(SOURCE / "cli" / "info.py")
    assert "trans3dhead.weights" in every and "trans3dhead.weights" not in top


@pytest.mark.parametrize("code, expected", [
    ("from . import frames\n", "trans3dhead.face_model.frames"),
    ("from .pose import split_pose\n", "trans3dhead.face_model.pose"),
    ("from ..errors import Trans3DHeadError\n", "trans3dhead.errors"),
    ("import trans3dhead.model.backbone\n", "trans3dhead.model.backbone"),
])
def test_relative_imports_resolve_to_package_modules(code, expected):
    """Imports as a module inside face_model/ would write them, resolved to the modules they name."""
    top, every = parse_imports(code, "trans3dhead.face_model.some_module", is_package=False)
    assert expected in top and top == every
    lazy_top, lazy_all = parse_imports("def f():\n    " + code, "trans3dhead.face_model.some_module", False)
    assert not lazy_top and expected in lazy_all
