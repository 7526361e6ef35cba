"""No test gives a machine-wide object a fixed name: two helpers (or two runs) testing
on one machine would share it. Checked twice: at run time, ``Sw.vsctl`` refuses a
netdev/ebpf bridge or an internal port on one whose name is not private to the test
(``tests.switch.shared_devices``, tested here); statically, no test, impact-harness or
bench module creates a namespace or a root-namespace link (or a veth's peer left in the
root namespace) under a literal name, or under an f-string with no unique part (the
same name in every run: ``f"hlqk-{qdisc}"``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.netns import is_private, unique_name
from tests.switch import shared_devices

ROOT = Path(__file__).resolve().parent.parent


def dp(types: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda br: types.get(br, "")


def test_a_fixed_name_on_a_device_datapath_is_refused() -> None:
    assert shared_devices(("add-br", "br0"), dp({})) == ["bridge br0"]
    assert shared_devices(
        ("add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=netdev"), dp({})
    ) == ["bridge br0"]
    assert shared_devices(
        ("--may-exist", "add-br", "x", "--", "set", "bridge", "x", "datapath_type=ebpf"), dp({})
    ) == ["bridge x"]
    # A fake bridge is an internal port of its parent's datapath.
    assert shared_devices(("add-br", "vl", "p", "10"), dp({"p": "netdev"})) == ["bridge vl"]
    # An internal port on an existing netdev bridge is a TAP device too.
    internal = ("add-port", "b", "p0", "--", "set", "Interface", "p0", "type=internal")
    assert shared_devices(internal, dp({"b": "netdev"})) == ["internal port p0"]


def test_private_names_and_the_dummy_datapath_pass() -> None:
    br = unique_name("br")
    assert is_private(br) and not is_private("br0")
    assert shared_devices(("add-br", br), dp({})) == []
    assert (
        shared_devices(
            ("add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=dummy"), dp({})
        )
        == []
    )
    assert shared_devices(("add-br", "vl", "p", "10"), dp({"p": "dummy"})) == []
    internal = ("add-port", "b", "p0", "--", "set", "Interface", "p0", "type=internal")
    assert shared_devices(internal, dp({"b": "dummy"})) == []
    # An unknown datapath type creates nothing (the bridge is reported broken).
    assert (
        shared_devices(
            ("add-br", "bad", "--", "set", "Bridge", "bad", "datapath_type=warp"), dp({})
        )
        == []
    )


# Functions that run a command in the root namespace (``ip -n NS``, ``ip netns exec NS``
# and a host's ``run`` are inside a namespace of the test's own).
ROOT_RUNNERS = {"sh", "_sh", "run", "check_call", "check_output", "Popen", "call"}


# What makes a formatted name private: a call or attribute that hands out a fresh suffix
# (``unique_suffix``, ``unique_name``, ``Topology.name``/``.suffix``, ``secrets``,
# ``uuid``). An f-string made of nothing else but fixed words and other values (a
# parameter such as the qdisc's kind) is the same name in every run.
UNIQUE = ("unique_suffix", "unique_name", "suffix", "token_hex", "uuid", "name(")


def _fixed(expr: ast.expr, bound: dict[str, ast.expr]) -> str | None:
    """The name ``expr`` gives when it is the same in every run (a literal, or an
    f-string, directly or through a variable the function binds once, with no unique
    part), else None."""
    if isinstance(expr, ast.Name) and expr.id in bound:
        expr = bound[expr.id]
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.JoinedStr):
        parts = [ast.unparse(v.value) for v in expr.values if isinstance(v, ast.FormattedValue)]
        if not any(u in p for p in parts for u in UNIQUE):
            return ast.unparse(expr)
    return None


def _bindings(scope: ast.AST) -> dict[str, ast.expr]:
    """Names bound exactly once in ``scope`` (a function), to what."""
    seen: dict[str, list[ast.expr]] = {}
    for n in ast.walk(scope):
        if isinstance(n, ast.Assign):
            for t in n.targets:
                if isinstance(t, ast.Name):
                    seen.setdefault(t.id, []).append(n.value)
        elif isinstance(n, (ast.For, ast.comprehension)) and isinstance(n.target, ast.Name):
            seen.setdefault(n.target.id, []).append(ast.Name("?"))  # a loop variable
    return {k: v[0] for k, v in seen.items() if len(v) == 1}


def _words(node: ast.Call) -> list[ast.expr] | None:
    """A command's words: its first argument as a list or tuple, or its arguments when
    they start with a literal (``sh("ip", "netns", "add", ns)``)."""
    arg = node.args[0]
    if isinstance(arg, (ast.List, ast.Tuple)):
        return list(arg.elts)
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return list(node.args)
    return None


def _literal_creations(path: Path) -> list[str]:
    out = []
    tree = ast.parse(path.read_text(), str(path))
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    bound_in = {}
    for scope in scopes:  # innermost last: a nested function's own bindings win
        b = _bindings(scope)
        for n in ast.walk(scope):
            bound_in[id(n)] = b
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if name not in ROOT_RUNNERS or (
            isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
            and f.value.id not in ("subprocess", "self", "netns")
        ):  # fmt: skip
            continue
        elts = _words(node)
        if elts is None:
            continue
        bound = bound_in.get(id(node), {})
        words = [e.value if isinstance(e, ast.Constant) else None for e in elts]
        for i in range(len(words) - 3):
            if words[i : i + 3] in (["ip", "netns", "add"], ["ip", "link", "add"]):
                fixed = _fixed(elts[i + 3], bound)
                if fixed is not None:
                    out.append(f"{path}:{node.lineno}: {fixed!r}")
            if words[i : i + 3] == ["ip", "link", "add"]:
                # a veth's peer is made in the root namespace too, unless "netns NS"
                # follows its name
                for j in range(i + 4, len(words) - 2):
                    peer = _fixed(elts[j + 2], bound)
                    if (
                        words[j : j + 2] == ["peer", "name"]
                        and peer is not None
                        and "netns" not in words[j + 3 :]
                    ):
                        out.append(f"{path}:{node.lineno}: peer {peer!r}")
    return out


def test_no_namespace_or_root_link_is_created_under_a_literal_name() -> None:
    files = [
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "hitless" / "impact").glob("*.py"),
        *(ROOT / "bench").glob("*.py"),
    ]
    found = [hit for p in files for hit in _literal_creations(p)]
    assert not found, "fixed names (use tests.netns.unique_name):\n" + "\n".join(found)


def test_the_scan_sees_a_literal_name(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"
    bad.write_text(
        'sh(["ip", "netns", "add", "hl-fixed"])\n'
        'subprocess.run(["ip", "link", "add", "v0", "type", "veth"])\n'
        'sh(["ip", "link", "add", name, "type", "veth", "peer", "name", "v1"])\n'
        'sh("ip", "netns", "add", "hl-fixed2")\n'
        'def probe(kind):\n'
        '    ns = f"hlqk-{kind}"\n'
        '    sh(["ip", "netns", "add", ns])\n'
        '    sh(["ip", "netns", "add", f"hl-{kind}-x"])\n'
    )
    assert len(_literal_creations(bad)) == 6, _literal_creations(bad)


@pytest.mark.parametrize("ok", ['h.run(["ip", "link", "add", "hbr", "type", "bridge"])',
                                'sh(["ip", "-n", ns, "link", "add", "q0", "type", "veth"])',
                                'sh(["ip", "link", "add", name, "type", "veth"])',
                                'sh(["ip", "link", "add", n, "type", "veth", "peer", "name",'
                                ' "eth0", "netns", ns])',
                                'sh("ip", "-n", ns, "link", "add", "q0", "type", "veth")',
                                'def f(t):\n    ns = f"hl-{t.suffix}"\n'
                                '    sh(["ip", "netns", "add", ns])',
                                'sh(["ip", "netns", "add", f"hl{unique_suffix()}"])'])  # fmt: skip
def test_the_scan_leaves_names_inside_namespaces_alone(ok: str, tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(ok + "\n")
    assert _literal_creations(probe) == []
