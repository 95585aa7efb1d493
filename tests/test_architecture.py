"""The import graph of the project: one direction, no cycles, no private names across modules (AST, no imports run).

sequences, substrates -> walker, validation -> diffwalk: ``sequences`` imports
none of the others, ``substrates`` at most ``sequences``, ``walker`` the two
below it, ``validation`` the two below it but not ``walker``, and only
``diffwalk`` imports all four. Every import counts, also the ones inside
functions.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sequences", "substrates", "walker", "validation", "diffwalk")
#: package -> packages of this project it must not import
FORBIDDEN = {
    "sequences": {"substrates", "walker", "validation", "diffwalk"},
    "substrates": {"walker", "validation", "diffwalk"},
    "walker": {"validation", "diffwalk"},
    "validation": {"walker", "diffwalk"},
    "diffwalk": set(),
}


def _modules(where=PACKAGES):
    """module name -> source path, for every .py file of the given top-level folders."""
    out = {}
    for pkg in where:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path):
    """(imported module, names imported from it, line) for every import statement in one file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod, [a.name for a in node.names], node.lineno


def _project_target(mod: str, names: list[str], modules: dict) -> list[str]:
    """The project modules an import statement loads (``from pkg import submodule`` counts the submodule)."""
    if mod.split(".")[0] not in PACKAGES:
        return []
    out = [mod] if mod in modules else []
    out += [f"{mod}.{n}" for n in names if f"{mod}.{n}" in modules]
    return out


def test_no_import_points_up_or_sideways():
    modules = _modules()
    bad = []
    for name, path in modules.items():
        pkg = name.split(".")[0]
        for mod, _, line in _imports(name, path):
            top = mod.split(".")[0]
            if top in FORBIDDEN[pkg]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod} ({pkg} must not import {top})")
    assert not bad, "forbidden import direction:\n" + "\n".join(bad)


def test_no_private_name_is_imported_from_another_module():
    modules = _modules(PACKAGES + ("benchmarks",))
    bad = []
    for name, path in modules.items():
        for mod, names, line in _imports(name, path):
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{path.relative_to(ROOT)}:{line}: from {mod} import {n}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_the_module_graph_has_no_cycle():
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for mod, names, _ in _imports(name, path):
            for target in _project_target(mod, names, modules):
                # a package's __init__ importing its own submodules is how packages are built, not a cycle
                if target != name and not (path.name == "__init__.py" and target.startswith(name + ".")):
                    graph[name].add(target)
    # a submodule importing its package's __init__ would close a loop through it; so would any back edge
    state: dict = {}
    stack: list = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_checker_sees_a_forbidden_edge(tmp_path):
    # the AST walk resolves relative and in-function imports (a checker that sees nothing passes everything)
    pkg = tmp_path / "walker"
    pkg.mkdir()
    f = pkg / "x.py"
    f.write_text("def g():\n    from validation.fit import fit\n    from ..diffwalk import cli\n    from . import _y\n")
    found = list(_imports("walker.x", f))
    assert ("validation.fit", ["fit"], 2) in found
    assert ("diffwalk", ["cli"], 3) in found
    assert ("walker", ["_y"], 4) in found


# ------------------------------------------------------------------ substrate families (issue 27)
#: kind codes as stored in substrate files: defined once, in substrates/base.py, and never renumbered
KIND_CODES = {"FREE": 0, "PLANES": 1, "CYLINDERS": 2, "SPHERES": 3, "MESH": 4, "UNION": 5}


def _module_assignments(path: Path):
    """(name, value node, line) of every module-level assignment (plain, tuple-unpacking or annotated)."""
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield target.id, node.value, node.lineno
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for t, v in zip(target.elts, node.value.elts):
                        if isinstance(t, ast.Name):
                            yield t.id, v, node.lineno
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            yield node.target.id, node.value, node.lineno


def test_kind_codes_are_defined_once_in_substrates_base_with_their_stored_values():
    found = {}
    bad = []
    for path in sorted((ROOT / "substrates").rglob("*.py")):
        for name, value, line in _module_assignments(path):
            if name in KIND_CODES:
                if path.name != "base.py":
                    bad.append(f"{path.relative_to(ROOT)}:{line} defines kind code {name} (only substrates/base.py may)")
                else:
                    found[name] = ast.literal_eval(value)
    assert not bad, "\n".join(bad)
    assert found == KIND_CODES, f"kind codes in substrates/base.py changed (they are stored in files): {found}"


def test_every_substrate_class_names_its_family_and_its_module_registers_it():
    # a class deriving from Substrate (directly or through a family class) sets family: ClassVar[str] = "...",
    # and the module defining a family's base class registers that family
    bad = []
    for path in sorted((ROOT / "substrates").rglob("*.py")):
        if path.name == "base.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef)
                   and any(isinstance(b, ast.Name) and b.id == "Substrate" for b in n.bases)]
        for cls in classes:
            family = [s for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                      and s.target.id == "family" and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)]
            if not family:
                bad.append(f"{path.relative_to(ROOT)}:{cls.lineno} class {cls.name} sets no family name")
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id == "register_family"]
        if classes and not calls:
            bad.append(f"{path.relative_to(ROOT)} defines a substrate family but does not register it")
    assert not bad, "\n".join(bad)
