"""Engine adapters, loaded lazily by name so heavy optional imports stay where they are used."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from search.engine import Completion, EngineStats, GenerationRequest, Tokenizer
from server.args import ServerArgs
from server.model_source import resolve


class ChatTokenizer(Tokenizer, Protocol):
    """A tokenizer that also knows the model's chat template."""

    def apply_chat_template(self, messages: list[dict[str, str]]) -> list[int]:
        """Prompt ids for a chat, generation prompt added; ``ValueError`` if it is rejected."""
        ...


class ServingEngine(Protocol):
    """What the server needs of an engine: the search's interface plus chat and limits."""

    @property
    def model_name(self) -> str: ...

    @property
    def tokenizer(self) -> ChatTokenizer: ...

    @property
    def stats(self) -> EngineStats: ...

    @property
    def max_model_len(self) -> int: ...

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """See :meth:`search.engine.Engine.generate`."""
        ...

    def health(self) -> str | None:
        """``None`` while the engine can serve, else the reason it cannot."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...


def load_engine(args: ServerArgs) -> ServingEngine:
    """Build the engine ``args.engine`` names (``auto`` picks the best one installed)."""
    source = resolve(args.model)
    if args.served_model_name:
        source = replace(source, served_name=args.served_model_name)
    from server.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(source, dtype=args.dtype, device=args.device)
    if args.max_model_len is not None:
        engine.max_model_len = min(engine.max_model_len, args.max_model_len)
    return engine
