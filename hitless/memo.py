"""A small bounded cache for conversions that see few distinct inputs (the same action
or instruction list on many flows): ``Memo(limit).get(key, make)`` returns the value
stored for ``key``, or stores and returns ``make()``; past ``limit`` entries it starts
afresh (no eviction order to keep: the working set is far smaller than the limit)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    __slots__ = ("_d", "limit")

    def __init__(self, limit: int = 4096) -> None:
        self._d: dict[K, V] = {}
        self.limit = limit

    def get(self, key: K, make: Callable[[], V]) -> V:
        v = self._d.get(key)
        if v is None:
            if len(self._d) > self.limit:
                self._d.clear()
            v = self._d[key] = make()
        return v
