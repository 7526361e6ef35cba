"""Every test that judges traffic across a handoff also runs with the faults that must
break it (issue 14: a zero-loss test must fail on a deliberate 100 ms blackout and on a
duplicated datagram): it takes a ``fault`` (or ``armed``) parameter, or is listed below
with the reason it cannot, and that reason is checked against the test's own source.

A handoff test is found by what it calls, directly or through the functions of its own
module or those it imports from other test modules: ``tests.traffic.handoff_under_traffic``
or ``handoff_op``, or the impact harness's ``measure`` (or the package tests'
``measure_switch``) around an operation named ``upgrade`` or ``downgrade`` (or
``apt-upgrade``...); or by an operation so named passed to any call together with an
``assert`` on something ``lost`` (a test that counts its own traffic: the OVN router's,
the side-by-side conntrack runs). Checked statically (the test
functions' source), so a new zero-loss test without its fault cases fails here before
anyone trusts it."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from tests.traffic import BREAKS, COLD

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
    # Side by side with Open vSwitch: the claim is the connections kept where Open
    # vSwitch's restart forgets them. Their generator counts datagrams (lost, doubled)
    # without timing them; the sibling test_the_side_by_side_check_catches_... runs the
    # same generator armed with duplicate and flush-after-adopt (both caught), and the
    # same firewall under the shared, timed traffic is
    # test_upgrade_behind_a_stateful_firewall_keeps_the_handoff_claim, armed with BREAKS.
    **{
        f"tests/handoff/test_ct_upgrade.py::{name}": Exempt(
            "side by side with Open vSwitch, counting its own untimed traffic: the same"
            " generator is armed in test_the_side_by_side_check_catches_a_new_process_that"
            "_breaks_the_claim, the same firewall under timed traffic in"
            " test_upgrade_behind_a_stateful_firewall_keeps_the_handoff_claim",
            ('run_side("hitless"', 'ours["udp_dups"] == 0'),
        )
        for name in (
            "test_upgrade_keeps_connections_behind_a_stateful_firewall_where_ovs_restart_drops_them",
            "test_downgrade_keeps_connections_behind_a_stateful_firewall_where_ovs_restart_drops_them",
        )
    },
    **{
        f"tests/datapath/test_ebpf_ct.py::{name}": Exempt(
            "the side-by-side conntrack run of tests/handoff/test_ct_upgrade.py on ebpf"
            " (untimed traffic, doubled datagrams counted); the ebpf handoff under timed"
            " traffic with blackout and duplicate armed is tests/datapath/test_ebpf_upgrade.py's",
            ('datapath="ebpf"', "assert_kept_where_ovs_forgets"),
        )
        for name in (
            "test_upgrade_on_ebpf_keeps_connections_behind_a_stateful_firewall",
            "test_downgrade_on_ebpf_keeps_connections_behind_a_stateful_firewall",
        )
    },
    # ``hitless impact`` end to end: what is tested is the tool (its options, JSON, plot,
    # clean-up), whose judgement is the shared one (hitless.impact.bounds), tested to
    # catch each fault's traces in tests/impact/test_bounds.py.
    **{
        f"tests/impact/test_cli.py::{name}": Exempt(
            "runs the hitless impact command to test the tool itself (its options, JSON,"
            " plot, clean-up); its judgement is hitless.impact.bounds, checked against"
            " each fault's traces in tests/impact/test_bounds.py",
            ('"--ops", "upgrade"',),
        )
        for name in (
            "test_upgrade_run_loses_nothing_and_writes_json_and_plot",
            "test_upgrade_keeps_the_controller_session",
            "test_upgrade_keeps_openflow_rules_their_traffic_and_counters",
            "test_upgrade_measured_on_an_ovn_shaped_pipeline",
            "test_after_keeps_the_traffic_going_past_a_long_operation",
        )
    },
}


# Tests whose written-out fault list lacks the blackout or the duplicate case, and why:
# the same ``Exempt`` as above (its evidence checked the same way).
NARROW: dict[str, Exempt] = {
    # None now: the state-kept tests of the layers beside the forwarding (spanning
    # trees, mirrors, exporters, tc trees), which counted their own UDP untimed, run
    # it through ``tests.traffic.upgrade_under_udp`` (timed, the shared judgement) and
    # are armed with the blackout and the duplicate besides their COLD case.
}

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
    list of literals, ``COLD`` and ``*BREAKS``; None when the test has no such list (computed
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
            elif isinstance(v, ast.Name) and v.id == "COLD":
                out.append(COLD)
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


class _Modules:
    """Test modules parsed once: their top-level functions and the names they import
    from other ``tests`` modules (a helper shared across files, such as the OVN tests'
    ``upgrade_under_traffic``, is followed into its module)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parsed: dict[Path, tuple[str, dict[str, ast.FunctionDef], dict[str, tuple[Path, str]]]] = {}

    def __call__(
        self, path: Path
    ) -> tuple[str, dict[str, ast.FunctionDef], dict[str, tuple[Path, str]]]:
        if path not in self.parsed:
            text = path.read_text()
            tree = ast.parse(text, str(path))
            funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
            imports: dict[str, tuple[Path, str]] = {}
            for n in ast.walk(tree):  # imports inside a test's body count too
                if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("tests."):
                    base = self.root.parent.joinpath(*(n.module or "").split("."))
                    mod = base.with_suffix(".py") if base.with_suffix(".py").exists() else None
                    for a in n.names:
                        if mod is not None:
                            imports[a.asname or a.name] = (mod, a.name)
            self.parsed[path] = (text, funcs, imports)
        return self.parsed[path]

    def reached(self, path: Path, node: ast.FunctionDef) -> dict[tuple[Path, str], ast.FunctionDef]:
        """``node`` and every function of its module, or imported from another test
        module, that it calls, directly or through them."""
        out: dict[tuple[Path, str], ast.FunctionDef] = {}
        todo = [(path, node)]
        while todo:
            p, f = todo.pop()
            if (p, f.name) in out:
                continue
            out[(p, f.name)] = f
            _text, funcs, imports = self(p)
            for c in _called(f):
                if c in funcs:
                    todo.append((p, funcs[c]))
                elif c in imports:
                    q, name = imports[c]
                    target = self(q)[1].get(name)
                    if target is not None:
                        todo.append((q, target))
        return out


def _operations(node: ast.AST) -> set[str]:
    """The operations named as a call's argument, or a word of a command passed to one
    (``sw.hitless("upgrade")``, ``run_side("hitless", "downgrade")``,
    ``subprocess.run([hitless, "upgrade", ...])``)."""
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            for a in n.args:
                words = a.elts if isinstance(a, (ast.List, ast.Tuple)) else [a]
                out |= {
                    w.value
                    for w in words
                    if isinstance(w, ast.Constant) and isinstance(w.value, str)
                    and OPERATION.fullmatch(w.value)
                }  # fmt: skip
    return out


def _asserts_loss(node: ast.AST) -> bool:
    """Whether an ``assert`` of ``node`` judges something lost (a ``lost`` count or
    key: ``assert (lost_ab, lost_ba) == (0, 0)``, ``c["lost"] == 0``)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Assert):
            for m in ast.walk(n.test):
                word = (
                    m.id if isinstance(m, ast.Name)
                    else m.value if isinstance(m, ast.Constant) and isinstance(m.value, str)
                    else ""
                )  # fmt: skip
                if "lost" in word.split("_"):
                    return True
    return False


def handoff_tests(root: Path = ROOT) -> dict[str, Found]:
    """path::name -> what the scan found, for every test function under ``root`` that
    judges traffic across a handoff (see the module docstring), or asserts that nothing
    was lost across an upgrade or a downgrade in its own way (the traffic counted by its
    own senders and sinks)."""
    out = {}
    modules = _Modules(root)
    for path in sorted(root.rglob("test_*.py")):
        _text, funcs, _imports = modules(path)
        for name, node in funcs.items():
            if not name.startswith("test_"):
                continue
            reached = modules.reached(path, node)
            calls = set().union(*(_called(f) for f in reached.values()))
            strings = set().union(*(_strings(f) for f in reached.values()))
            measured = MEASURE_CALLS & calls and any(OPERATION.fullmatch(s) for s in strings)
            counted = any(_operations(f) for f in reached.values()) and any(
                _asserts_loss(f) for f in reached.values()
            )
            if HANDOFF_CALLS & calls or measured or counted:
                source = "\n".join(
                    ast.get_source_segment(modules(p)[0], f) or "" for (p, _n), f in reached.items()
                )
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
    """A test that reaches ``measure`` and an upgrade through a helper of its module or
    of another test module, or ``handoff_op`` inside a nested function, or asserts
    nothing lost around an upgrade it runs itself, is found with its parameters; a
    ``measure`` around something else is not, nor an upgrade with no loss asserted."""
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
    # A helper of another test module, followed through its import; a test that counts
    # its own traffic around an upgrade and asserts nothing lost; one that upgrades and
    # asserts no loss is not a zero-loss test.
    (tmp_path / "tests" / "shared.py").write_text(
        "def upgrade_it(s):\n    return measure([], s.operation('upgrade'))\n"
    )
    (tmp_path / "tests" / "test_y.py").write_text(
        "from tests.shared import upgrade_it\n\n"
        "def test_imported(s, fault):\n    upgrade_it(s)\n\n"
        "def test_counted(sw):\n    lost_ab = two_way(lambda: sw.hitless('upgrade'))\n"
        "    assert lost_ab == 0\n\n"
        "def test_a_command(sw):\n    lost = run([hitless, 'downgrade'])\n    assert not lost\n\n"
        "def test_no_loss_claim(sw):\n    sw.hitless('upgrade')\n    assert sw.ok\n"
    )
    found = handoff_tests(tmp_path / "tests")
    assert found["tests/test_x.py::test_through_helper"].faults is None
    assert sorted(found) == [
        "tests/test_x.py::test_nested",
        "tests/test_x.py::test_through_helper",
        "tests/test_y.py::test_a_command",
        "tests/test_y.py::test_counted",
        "tests/test_y.py::test_imported",
    ]
    assert found["tests/test_y.py::test_imported"].params == ["s", "fault"]
    assert found["tests/test_x.py::test_through_helper"].params == ["s", "fault"]
    assert "apt-upgrade" in found["tests/test_x.py::test_through_helper"].source
