"""Vacancy events (OFPT_TABLE_STATUS, OpenFlow 1.4+) against real Open vSwitch.

A table with Flow_Table ``flow_limit=4`` and ``mod-table 1 vacancy:30,70``; a monitor
that asked for table status (a SET_ASYNC with OFPTR_VACANCY_DOWN|UP, off by default as in
Open vSwitch) sees, as Open vSwitch's does, one VACANCY_DOWN when the third rule leaves
25% free (below 30%), nothing for the fourth (0%: the next event is up), one VACANCY_UP
when deleting leaves one rule (75% free, above 70%), and nothing more while it stays
between. A 1.3 session gets none (Open vSwitch's is 1.4+), and the table description
(`dump-table-desc`) gives the same free space in percent."""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Iterator

import pytest

from hitless.openflow.constants import AsyncConfigProp
from hitless.openflow.messages import AsyncConfig, SetAsync
from hitless.openflow.multipart import TableReason
from tests.netns import unique_suffix
from tests.openflow.differential import SwitchPair, normalize
from tests.openflow.test_flow_monitor import _monitor

pytestmark = pytest.mark.skipif(
    shutil.which("ovs-vswitchd") is None or shutil.which("ovs-ofctl") is None,
    reason="needs Open vSwitch (ovs-vswitchd, ovs-ofctl)",
)

VERSIONS = {"of14": ("-O", "OpenFlow14"), "of15": ("-O", "OpenFlow15")}


@pytest.fixture(scope="module")
def pair() -> Iterator[SwitchPair]:
    p = SwitchPair(f"va{unique_suffix()}"[:15])
    try:
        p.vsctl("--", "--id=@ft", "create", "Flow_Table", "flow_limit=4", "--", "set",
                "bridge", p.bridge, "flow_tables:1=@ft")  # fmt: skip
        yield p
    finally:
        p.close()


def _steps(version: int) -> list[tuple[str, ...]]:
    ask = SetAsync(xid=7, config=AsyncConfig.of({
        AsyncConfigProp.TABLE_STATUS_MASTER: 1 << TableReason.VACANCY_DOWN
        | 1 << TableReason.VACANCY_UP}))  # fmt: skip
    return [
        ("del-flows", "{br}"),
        ("mod-table", "{br}", "1", "novacancy"),
        ("own", ask.encode(version).hex()),
        ("mod-table", "{br}", "1", "vacancy:30,70"),
        *(("add-flow", "{br}", f"table=1,priority={i},actions=drop") for i in range(1, 5)),
        *(("--strict", "del-flows", "{br}", f"table=1,priority={i}") for i in range(1, 5)),
        *(("add-flow", "{br}", f"table=1,priority={i},actions=drop") for i in range(1, 3)),
        ("del-flows", "{br}", "table=1"),
    ]


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_vacancy_events_as_open_vswitch(pair: SwitchPair, version: str) -> None:
    flags = VERSIONS[version]
    steps = _steps(5 if version == "of14" else 6)
    assert pair.ovs is not None and pair.hl is not None
    ovs, hl = (normalize(_monitor(pair, sw, flags, "", steps)) for sw in (pair.ovs, pair.hl))
    assert hl == ovs, "".join(difflib.unified_diff(ovs.splitlines(True), hl.splitlines(True),
                                                   "ovs", "hitless"))  # fmt: skip
    # what Open vSwitch did, so the comparison says something
    assert ovs.count("reason=VACANCY_DOWN") == 1 and ovs.count("reason=VACANCY_UP") == 1, ovs
    assert "vacancy=25%" in ovs and "vacancy=75%" in ovs


def test_no_table_status_in_1_3_and_the_same_free_space_in_table_descriptions(
    pair: SwitchPair,
) -> None:
    steps = [("del-flows", "{br}"),
             *(("add-flow", "{br}", f"table=1,priority={i},actions=drop") for i in range(1, 4))]  # fmt: skip
    for flags in (("-O", "OpenFlow14"), ("-O", "OpenFlow13")):
        setup = [("-O", "OpenFlow14", "mod-table", "{br}", "1", "vacancy:30,70")]
        for args in setup:
            a, b = pair.ofctl(*args)
            assert a.rc == 0 and b.rc == 0, (a, b)
        assert pair.ovs is not None and pair.hl is not None
        ovs, hl = (normalize(_monitor(pair, sw, flags, "", steps)) for sw in (pair.ovs, pair.hl))
        assert hl == ovs
        assert "TABLE_STATUS" not in ovs  # nobody asked (and 1.3 has none)
    a, b = pair.ofctl("-O", "OpenFlow14", "dump-table-desc", "{br}")
    assert normalize(a.text()) == normalize(b.text())
    assert "vacancy=25%" in a.out  # table 1: 3 rules of 4
