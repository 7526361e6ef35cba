"""Every test that judges traffic across a handoff (``tests.traffic.handoff_under_traffic``)
also runs with the faults that must break it (issue 14: a zero-loss test must fail on a
deliberate 100 ms blackout and on a duplicated datagram): it takes a ``fault`` (or
``armed``) parameter, or is listed below with the reason it cannot. Checked statically
(the test functions' source), so a new zero-loss test without its fault cases fails here
before anyone trusts it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# test (path::name) -> why it runs clean only. Keep it short: each entry is a claim
# nobody has shown would fail when broken.
EXEMPT: dict[str, str] = {
    "tests/daemon/test_patch_ports.py::test_downgrade_to_a_build_without_patch_ports_is_refused_before_freezing": (
        "the downgrade is refused before the freeze: no new process takes anything over,"
        " and the test asserts the refusal and the old process serving"
    ),
}


def zero_loss_tests() -> dict[str, list[str]]:
    """path::name -> the test's parameters, for every test function that calls
    ``handoff_under_traffic``."""
    out = {}
    for path in sorted(ROOT.rglob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            calls = {
                n.func.id
                for n in ast.walk(node)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            }
            if "handoff_under_traffic" in calls:
                key = f"{path.relative_to(ROOT.parent)}::{node.name}"
                out[key] = [a.arg for a in node.args.args]
    return out


def test_every_zero_loss_test_runs_with_the_faults_it_must_catch() -> None:
    tests = zero_loss_tests()
    assert len(tests) >= 10, tests  # the scan finds them (it would pass on finding none)
    missing = [
        t for t, params in tests.items()
        if not {"fault", "armed"} & set(params) and t not in EXEMPT
    ]  # fmt: skip
    assert not missing, "zero-loss tests without fault cases:\n" + "\n".join(missing)
    assert not set(EXEMPT) - set(tests), "exempt tests that no longer exist"
