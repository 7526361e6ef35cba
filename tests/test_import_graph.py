"""No import cycle inside the ``hitless`` package: a cycle is a missing seam (cut it with
a small ``typing.Protocol`` the lower module declares). Imports inside functions count
(a cycle hidden behind a function-local import is still a cycle); imports under
``if TYPE_CHECKING:`` do not (they never run), nor does ``from package import
submodule`` count as importing the package's ``__init__`` (it runs first anyway)."""

from __future__ import annotations

import ast
from pathlib import Path

import hitless

ROOT = Path(hitless.__file__).parent

# Cycles that exist on main and are their owners' to cut; this list may only shrink.
KNOWN: set[frozenset[str]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str, modules: set[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            subs = {f"{base}.{a.name}" for a in node.names}
            found.update(subs)
            if not subs <= modules:  # a name from the package itself, not a submodule
                found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def graph() -> dict[str, set[str]]:
    mods = _modules()
    edges = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = _imports(ast.parse(path.read_text()), package, set(mods))
        edges[name] = {t for t in targets if t in mods and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.add(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking() -> None:
    edges = graph()
    # switch -> takeover is a module-level import; takeover declares the Switch it needs
    # as a Protocol and imports nothing of switch; unixctl names Switch for typing only.
    assert "hitless.daemon.takeover" in edges["hitless.daemon.switch"]
    assert "hitless.daemon.switch" not in edges["hitless.daemon.takeover"]
    assert "hitless.daemon.switch" not in edges["hitless.daemon.unixctl"]
    # A function-local import is an edge (switch imports ofmgmt inside _run_openflow).
    assert "hitless.daemon.ofmgmt" in edges["hitless.daemon.switch"]


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_hitless() -> None:
    new = [c for c in cycles(graph()) if c not in KNOWN]
    assert not new, f"import cycles: {[sorted(c) for c in new]}"


def _stdlib_imports(module: str) -> set[str]:
    path = _modules()[module]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_the_state_layer_and_the_handoff_engine_stay_pure() -> None:
    """hitless/state/ imports nothing of the project but itself (every layer imports
    it); the handoff engine imports no daemon module, and neither touches sockets,
    asyncio or the clock (time comes in as a function)."""
    edges = graph()
    for name, targets in edges.items():
        if name.startswith("hitless.state"):
            assert {t for t in targets if not t.startswith("hitless.state")} <= {"hitless"}, name
            assert not _stdlib_imports(name) & {"socket", "asyncio", "time"}, name
    engine = "hitless.handoff.engine"
    assert not {t for t in edges[engine] if t.startswith(("hitless.daemon", "hitless.config"))}
    assert not _stdlib_imports(engine) & {"socket", "asyncio", "time", "ovs"}
