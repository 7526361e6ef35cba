"""Every test that judges traffic across a handoff also runs with the faults that must
break it (issue 14: a zero-loss test must fail on a deliberate 100 ms blackout and on a
duplicated datagram): it takes a ``fault`` (or ``armed``) parameter, or is listed below
with the reason it cannot, and that reason is checked against the test's own source.

A handoff test is found by what it calls, directly or through the functions of its own
module: ``tests.traffic.handoff_under_traffic`` or ``handoff_op``, or the impact
harness's ``measure`` (or the package tests' ``measure_switch``) around an operation
named ``upgrade`` or ``downgrade`` (or ``apt-upgrade``...). Checked statically (the test functions' source),
so a new zero-loss test without its fault cases fails here before anyone trusts it."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from tests.traffic import BREAKS

ROOT = Path(__file__).resolve().parent

HANDOFF_CALLS = {"handoff_under_traffic", "handoff_op"}
MEASURE_CALLS = {"measure", "measure_switch"}
# The name of an operation that hands off ("upgrade", the package tests' "apt-upgrade").
OPERATION = re.compile(r"([a-z]+-)?(up|down)grade")


@dataclass(frozen=True)
class Exempt:
    """Why a handoff test runs clean only (a claim nobody has shown would fail when
    broken: keep the list short), and what its source must contain for that reason to
    hold: each ``evidence`` string must appear in the test or the functions of its module
    it calls, or the exemption has outlived its reason and this check fails."""

    reason: str
    evidence: tuple[str, ...]


EXEMPT: dict[str, Exempt] = {
    "tests/daemon/test_patch_ports.py::test_downgrade_to_a_build_without_patch_ports_is_refused_before_freezing": Exempt(
        "the downgrade is refused before the freeze: no new process takes anything over,"
        " and the test asserts the refusal and the old process serving",
        ('assert not report["ok"]',),
    ),
    # This build's ebpf datapath has the blackout and the duplicate in its kernel flows
    # (EbpfDatapath.fault_hold, fault_duplicate); a previous build's act on the netdev
    # datapath's rings only.
    "tests/datapath/test_ebpf_upgrade.py::test_downgrade_to_a_build_that_knows_only_an_older_layout_moves_down_first": Exempt(
        "the new process is a previous build (LAYOUT_1_BUILD) on the ebpf datapath: its"
        " blackout:<ms> and duplicate act on the netdev datapath's rings only, and on ebpf"
        " the kernel forwards whatever that process does, so nothing could catch them",
        ("ebpf_switch(", "build(LAYOUT_1_BUILD)"),
    ),
}


# Tests whose written-out fault list lacks the blackout or the duplicate case, and why:
# the same ``Exempt`` as above (its evidence checked the same way).
NARROW: dict[str, Exempt] = {}

# Faults after which the old process serves on (the handoff rolls back): a test armed
# only with these judges the rollback, and no new process takes over for a blackout or
# a duplicate to act in.
ROLLBACK = ("crash:", "stall:", "delay:")


def _called(node: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            if isinstance(n.func, ast.Name):
                out.add(n.func.id)
            elif isinstance(n.func, ast.Attribute):
                out.add(n.func.attr)
    return out


def _strings(node: ast.AST) -> set[str]:
    return {
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


@dataclass(frozen=True)
class Found:
    params: list[str]
    source: str  # the test's and the module functions' it reaches
    faults: list[str | None] | None  # its ``fault`` values when written out as a list


def fault_values(node: ast.FunctionDef) -> list[str | None] | None:
    """The values of a ``@pytest.mark.parametrize("fault", [...])`` written out as a
    list of literals and ``*BREAKS``; None when the test has no such list (computed
    cases, several parameters at once: not checked here)."""
    for d in node.decorator_list:
        if not (isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)):
            continue
        if d.func.attr != "parametrize" or len(d.args) < 2:
            continue
        name, values = d.args[0], d.args[1]
        if not (isinstance(name, ast.Constant) and name.value == "fault"):
            continue
        if not isinstance(values, ast.List):
            return None
        out: list[str | None] = []
        for v in values.elts:
            if isinstance(v, ast.Constant) and (v.value is None or isinstance(v.value, str)):
                out.append(v.value)
            elif (
                isinstance(v, ast.Starred)
                and isinstance(v.value, ast.Name)
                and v.value.id == "BREAKS"
            ):
                out += list(BREAKS)
            else:
                return None
        return out
    return None


def handoff_tests(root: Path = ROOT) -> dict[str, Found]:
    """path::name -> what the scan found, for every test function under ``root`` that
    judges traffic across a handoff (see the module docstring)."""
    out = {}
    for path in sorted(root.rglob("test_*.py")):
        text = path.read_text()
        tree = ast.parse(text, str(path))
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        for name, node in funcs.items():
            if not name.startswith("test_"):
                continue
            reached: dict[str, ast.FunctionDef] = {}
            todo = [node]
            while todo:
                f = todo.pop()
                if f.name not in reached:
                    reached[f.name] = f
                    todo += [funcs[c] for c in _called(f) if c in funcs and c not in reached]
            calls = set().union(*(_called(f) for f in reached.values()))
            strings = set().union(*(_strings(f) for f in reached.values()))
            measured = MEASURE_CALLS & calls and any(OPERATION.fullmatch(s) for s in strings)
            if HANDOFF_CALLS & calls or measured:
                source = "\n".join(ast.get_source_segment(text, f) or "" for f in reached.values())
                key = f"{path.relative_to(root.parent)}::{name}"
                out[key] = Found([a.arg for a in node.args.args], source, fault_values(node))
    return out


def test_every_zero_loss_test_runs_with_the_faults_it_must_catch() -> None:
    tests = handoff_tests()
    # the scan finds them, those that go through handoff_op + measure too (it would
    # pass on finding none)
    assert len(tests) >= 20, sorted(tests)
    assert (
        "tests/datapath/test_ebpf_upgrade.py::test_failed_handoff_on_ebpf_leaves_the_datapath_attached"
        in tests
    )
    assert "tests/debpkg/test_apt.py::test_apt_upgrade_and_downgrade_under_traffic" in tests
    missing = [
        t for t, found in tests.items()
        if not {"fault", "armed"} & set(found.params) and t not in EXEMPT
    ]  # fmt: skip
    assert not missing, "zero-loss tests without fault cases:\n" + "\n".join(missing)
    assert not set(EXEMPT) - set(tests), "exempt tests that no longer exist (or no longer hand off)"
    stale = [
        f"{t}: {e!r} not in its source"
        for t, ex in EXEMPT.items()
        for e in ex.evidence
        if t in tests and e not in tests[t].source
    ]
    assert not stale, "exemptions whose reason no longer holds:\n" + "\n".join(stale)
    unexplained = [
        t for t, ex in {**EXEMPT, **NARROW}.items() if len(ex.reason) < 40 or not ex.evidence
    ]  # fmt: skip
    assert not unexplained, unexplained


def test_each_zero_loss_test_is_armed_with_a_blackout_and_a_duplicate() -> None:
    """Issue 14's bar, where a test writes its fault list out: a ``blackout:<ms>`` and
    the ``duplicate`` case (``*BREAKS`` has both), unless every fault it arms makes the
    handoff roll back, or it is listed in ``NARROW`` with its reason."""
    tests = handoff_tests()
    listed = {t: f.faults for t, f in tests.items() if f.faults is not None}
    assert len(listed) >= 10, sorted(listed)  # the decorators are read (or this checks nothing)
    short = []
    for t, faults in listed.items():
        armed = [f for f in faults if f is not None]
        if armed and all(f.startswith(ROLLBACK) for f in armed):
            continue
        has = {"blackout" if f.startswith("blackout:") else f for f in armed}
        if not {"blackout", "duplicate"} <= has and t not in NARROW:
            short.append(f"{t}: {faults}")
    assert not short, "zero-loss tests without a blackout and a duplicate case:\n" + "\n".join(
        short
    )
    assert not set(NARROW) - set(listed), "narrow tests that no longer exist (or list no faults)"
    stale = [
        f"{t}: {e!r} not in its source"
        for t, ex in NARROW.items()
        for e in ex.evidence
        if e not in tests[t].source
    ]
    assert not stale, "narrow exemptions whose reason no longer holds:\n" + "\n".join(stale)


def test_the_scan_finds_handoffs_through_module_helpers_and_nothing_else(tmp_path: Path) -> None:
    """A test that reaches ``measure`` and an upgrade through a helper of its module,
    or ``handoff_op`` inside a nested function, is found with its parameters; a
    ``measure`` around something else is not."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "def helper(s):\n    return measure([], s.operation('apt-upgrade'))\n\n"
        "def test_through_helper(s, fault):\n    helper(s)\n\n"
        "def test_nested(sw):\n    def op():\n        return handoff_op(sw, 'downgrade')\n"
        "    measure([], op)\n\n"
        "def test_no_handoff(hosts):\n    measure(hosts, lambda: None, name='port down')\n\n"
        "def test_failing(hosts):\n    def broken():\n        raise RuntimeError('upgrade failed')\n"
        "    measure(hosts, broken)\n"
    )
    found = handoff_tests(tmp_path / "tests")
    assert found["tests/test_x.py::test_through_helper"].faults is None
    assert sorted(found) == ["tests/test_x.py::test_nested", "tests/test_x.py::test_through_helper"]
    assert found["tests/test_x.py::test_through_helper"].params == ["s", "fault"]
    assert "apt-upgrade" in found["tests/test_x.py::test_through_helper"].source
