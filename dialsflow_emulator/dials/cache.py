"""Byte caches: serialised th1/th2 rows and whole bodies (DIALS' 30 s Redis cache)."""

from __future__ import annotations

import collections
import math
import time
from typing import Any


class BytesCache:
    """LRU of bytes bounded by their total size, with an optional time to live."""

    def __init__(self, budget: int, ttl: float | None = None) -> None:
        self.budget = budget
        self.ttl = ttl
        self.size = 0
        self._items: collections.OrderedDict[Any, tuple[float, bytes]] = (
            collections.OrderedDict())

    def get(self, key: Any) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if self.ttl is not None and item[0] < time.monotonic():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: Any, value: bytes) -> None:
        if len(value) > self.budget // 4:
            return  # one huge body must not flush everything else
        if key in self._items:
            self._drop(key)
        expires = time.monotonic() + self.ttl if self.ttl is not None else math.inf
        self._items[key] = (expires, value)
        self.size += len(value)
        while self.size > self.budget:
            self._drop(next(iter(self._items)))

    def _drop(self, key: Any) -> None:
        self.size -= len(self._items.pop(key)[1])
