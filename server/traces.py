"""A bounded, in-memory store of finished searches' trees, served at ``/v1/traces/{id}``."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any


class TraceStore:
    """Keeps the newest ``capacity`` traces, each for at most ``ttl_seconds``."""

    def __init__(self, capacity: int = 256, ttl_seconds: float = 3600.0) -> None:
        self._capacity = capacity
        self._ttl = ttl_seconds
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def put(self, trace_id: str, trace: dict[str, Any]) -> None:
        """Store a trace, evicting the oldest beyond capacity."""
        self._items[trace_id] = (time.monotonic(), trace)
        self._items.move_to_end(trace_id)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def get(self, trace_id: str) -> dict[str, Any] | None:
        """The trace, or ``None`` if it was never stored, was evicted, or has expired."""
        item = self._items.get(trace_id)
        if item is None:
            return None
        stored, trace = item
        if time.monotonic() - stored > self._ttl:
            del self._items[trace_id]
            return None
        return trace
