"""Inputs that once broke something (tests/fuzz/corpus/), replayed on every run: each
must now get our clear error and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from hitless.daemon.ofmgmt import parse_target

CORPUS = Path(__file__).parent / "corpus"


def _lines(name: str) -> list[str]:
    text = (CORPUS / name).read_text()
    return [x.strip() for x in text.splitlines() if x.strip() and not x.startswith("#")]


@pytest.mark.parametrize("target", _lines("controller-targets.txt"))
def test_controller_targets_that_crashed_the_daemon_are_refused_clearly(target: str) -> None:
    with pytest.raises(ValueError, match="controller target"):
        parse_target(target)


def test_good_targets_still_parse() -> None:
    assert parse_target("tcp:127.0.0.1") == ("tcp", ("127.0.0.1", 6653))
    assert parse_target("tcp:10.0.0.1:6633") == ("tcp", ("10.0.0.1", 6633))
    assert parse_target("ptcp:6653:127.0.0.1") == ("ptcp", ("127.0.0.1", 6653))
    assert parse_target("ptcp:0") == ("ptcp", ("0.0.0.0", 0))
    assert parse_target("punix:/tmp/x") == ("punix", "/tmp/x")
