"""What the server needs of an engine (:class:`ServingEngine`), and what every engine keeps
and shows: its served name, tokenizer, counters and health, and the bookkeeping around each
``generate`` call (in flight, failed in a row, or through)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from prometheus_client.registry import Collector

from search.engine import Engine, GenerationRequest, RequestRejected, Tokenizer
from server.engines.constraints import Grammars, Guide
from server.engines.hf_tokenizer import HFTokenizer
from server.engines.stats import EngineStats


class ChatTokenizer(Tokenizer, Protocol):
    """A tokenizer that also knows the model's chat template and its vocabulary size."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def chat_template(self) -> str:
        """The chat template's source text (``""`` if the model has none)."""
        ...

    def apply_chat_template(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> list[int]:
        """Prompt ids for a chat, generation prompt added; ``ValueError`` if it is rejected."""
        ...


class ServingEngine(Engine, Protocol):
    """What the server needs of an engine: the search's :class:`~search.engine.Engine`, plus
    a chat tokenizer, counters, a context length, health and shutdown."""

    max_model_len: int

    @property
    def tokenizer(self) -> ChatTokenizer: ...

    @property
    def stats(self) -> EngineStats:
        """Live counters for ``/metrics`` and the benchmarks."""
        ...

    def health(self) -> str | None:
        """``None`` while the engine can serve, else the reason it cannot."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...

    def metric_collectors(self) -> list[Collector]:
        """The engine's own Prometheus families, shown on ponder's ``/metrics`` (vLLM's)."""
        ...


class Health:
    """An engine's health: down once closed, or after several failed calls in a row."""

    FAILURES_BEFORE_DOWN = 3

    def __init__(self) -> None:
        self.failures = 0
        self.last_error = ""
        self.closed = False

    def failed(self, exc: BaseException) -> None:
        """Count a failed generation call."""
        self.failures, self.last_error = self.failures + 1, repr(exc)

    def succeeded(self) -> None:
        """A call went through: the engine serves."""
        self.failures = 0

    def problem(self) -> str | None:
        """``None`` while the engine serves; else why not."""
        if self.closed:
            return "the engine is closed"
        if self.failures >= self.FAILURES_BEFORE_DOWN:
            return f"{self.failures} generation calls failed in a row; last: {self.last_error}"
        return None


class BaseEngine:
    """The part of :class:`ServingEngine` that is the same for every engine."""

    max_model_len: int

    def __init__(self, model_name: str, tokenizer: HFTokenizer) -> None:
        self._model_name = model_name
        self._tokenizer = tokenizer
        self._stats = EngineStats()
        self._health = Health()
        self._grammars = Grammars(tokenizer)

    @property
    def model_name(self) -> str:
        """The name the model is served under."""
        return self._model_name

    @property
    def tokenizer(self) -> HFTokenizer:
        """The model's HF tokenizer, with its chat template."""
        return self._tokenizer

    @property
    def stats(self) -> EngineStats:
        """Live counters (calls in flight, tokens computed, cached and generated, batches)."""
        return self._stats

    def metric_collectors(self) -> list[Collector]:
        """The engine's own Prometheus families for ``/metrics``: none but vLLM's."""
        return []

    def health(self) -> str | None:
        """``None`` while the engine serves; else why not (closed, or failing call after call)."""
        return self._health.problem()

    async def _guides(self, requests: Sequence[GenerationRequest]) -> list[Guide | None]:
        """Each request's compiled constraint (see :mod:`.constraints`), in a worker thread
        (the first builds llguidance's tokenizer); ``[]`` for a call with none."""
        if all(r.constraint is None for r in requests):
            return []
        return await asyncio.to_thread(self._grammars.guides, requests)

    @contextmanager
    def _calling(self) -> Iterator[None]:
        """Around one ``generate`` call: count it in flight.  A call that goes through restores
        health; one the engine failed (a fault, or any unexpected error) counts against it; one
        it refused (the client's doing) or that was cancelled does neither."""
        self._stats.requests_in_flight += 1
        try:
            yield
        except RequestRejected:
            raise
        except Exception as exc:
            self._health.failed(exc)
            raise
        finally:
            self._stats.requests_in_flight -= 1
        self._health.succeeded()
