"""The one way tests wait: for a condition, never for a fixed time.

``wait_for(cond, what)`` polls ``cond`` (every 20 ms, backing off to 100 ms) until it
returns something truthy and returns that value; after ``timeout`` seconds it raises
``AssertionError`` naming ``what`` and the last value seen, so a test that waited for
something that never happened fails and says what it waited for. The timeout is a
safety net for a loaded machine, not a measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(cond: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    pause = 0.02
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.1)


def eventually(cond: Callable[[], object], timeout: float = 30.0) -> bool:
    """``wait_for`` for a test that asserts the outcome itself (``assert eventually(...)``)
    or checks that something does *not* happen within ``timeout``: True as soon as
    ``cond`` holds, False after ``timeout`` seconds."""
    try:
        wait_for(cond, "", timeout)
    except AssertionError:
        return False
    return True
