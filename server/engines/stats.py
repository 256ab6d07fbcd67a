"""The counters an engine keeps for ``/metrics``, the benchmarks and tests (not the search's
business: a search never reads them)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class EngineStats:
    """Counters an engine keeps for metrics and tests (mutable, owned by the engine).

    ``decode_rows / decode_steps`` is the mean number of sequences per forward pass.  An
    engine's scheduler thread records steps while a scrape reads them: read the forward passes
    through :meth:`batch_histogram`, never by iterating ``batch_sizes``.
    """

    prompt_tokens_computed: int = 0
    prompt_tokens_cached: int = 0
    generated_tokens: int = 0
    requests_in_flight: int = 0
    decode_steps: int = 0
    decode_rows: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)  # forward passes by rows
    busy_seconds: float = 0.0  # time spent computing, for the orchestration overhead
    preemptions: int = 0  # calls sent back to wait because the KV cache was full
    _steps_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def record_step(self, rows: int) -> None:
        """Count one forward pass over ``rows`` sequences."""
        with self._steps_lock:
            self.decode_steps += 1
            self.decode_rows += rows
            self.batch_sizes[rows] += 1

    def batch_histogram(self) -> tuple[Counter[int], int]:
        """A copy of ``batch_sizes`` and the rows of all those passes, taken together: a
        counter that another thread adds a key to while it is iterated raises, and the two
        must agree for a histogram's buckets to."""
        with self._steps_lock:
            return Counter(self.batch_sizes), self.decode_rows
