"""The engine interface: the only thing a search needs from an inference backend.

One batched async call turns a list of :class:`GenerationRequest` into, for each request, ``n``
:class:`Completion` objects that carry per-token logprobs of the chosen token and its top-k
alternatives.  Logprobs are raw model log-probabilities (log-softmax of the logits *before*
temperature), so rewards do not depend on the sampling temperature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length"]

# Every seed an engine is handed stays below this bound, so that ``seed + i`` (sample ``i``'s
# seed) fits a signed 64-bit integer whatever ``n`` is: vLLM stores per-sample seeds in an
# int64 array and an overflow there is fatal to its engine core.  Client seeds are reduced
# modulo this bound at the API boundary.
SEED_BOUND = 2**62

# Told, on the engine's own thread after every token, a sample's index and its tokens so far
# with their logprobs (the engine's list: copy what you keep); see ``GenerationRequest.watch``.
Watch = Callable[[int, Sequence["TokenLogprob"]], None]
Halt = Callable[[Sequence["TokenLogprob"]], bool]


class EngineError(Exception):
    """A generation call that did not go through.

    ::

        EngineError
         +-- RequestRejected   the call asks for what this engine cannot do (client's doing)
         +-- EngineFault       the engine failed a call it should have served
    """


class RequestRejected(EngineError):
    """The call asks for something this engine cannot do: more samples than it runs at once,
    a prompt and budget longer than its context, a stop string it refuses.  The client's
    doing: a 400 naming ``param``, never a mark against the engine's health.  ``param`` is the
    call's field as OpenAI's completions API spells it (``n``, ``max_tokens``, ``prompt``), so
    a server can name the field of its own route that set it."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class EngineFault(EngineError):
    """The engine failed a call it should have served; counts against its health."""


@dataclass(frozen=True, slots=True)
class Constraint:
    """What a request's generated text must be (structured outputs, forced tool calls).

    ``grammar`` is an llguidance grammar: a Lark grammar in which ``%json {...}`` stands for
    the JSON a schema allows.  ``done`` are the tokens of the constrained text already at the
    end of the prompt: a search continuing its path continues the same text, so the engine
    resumes the grammar after them.
    """

    grammar: str
    done: tuple[int, ...] = ()


GREEDY_BELOW = 1e-5  # vLLM's _SAMPLING_EPS: a temperature under it decodes greedily


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Sample ``n`` continuations of ``prompt_token_ids``.

    ``stop`` strings and ``stop_token_ids`` end a continuation (finish reason ``stop``), as does
    any end-of-sequence token of the tokenizer; the stopping token stays in ``token_ids``.
    ``seed`` makes sampling reproducible: sample ``i`` uses ``seed + i``; it is below
    :data:`SEED_BOUND`.  ``watch``, where the engine can say (the local and upstream engines
    do), hears every token as it is generated (a search that streams a sample while it
    decodes); it must be quick and thread-safe, and it changes nothing that is generated.
    ``halt``, where the engine can (the local and upstream engines do), is asked after every
    token that did not end a sample, with that sample's logprobs so far; ``True`` ends it there
    (finish reason ``length``), which frees its row of the call for the others
    (:mod:`search.halting`); it must be quick and thread-safe, and an engine that cannot ask it
    finishes the sample.  ``constraint`` limits what may be generated (an engine that cannot
    honour it rejects the request); logprobs stay the model's own, before the constraint
    masked any token.
    """

    prompt_token_ids: tuple[int, ...]
    max_tokens: int
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    logprobs: int = 5
    watch: Watch | None = field(default=None, compare=False, repr=False)
    halt: Halt | None = field(default=None, compare=False, repr=False)
    constraint: Constraint | None = None

    def __post_init__(self) -> None:
        if self.seed is not None and not 0 <= self.seed < SEED_BOUND:
            raise ValueError(f"seed {self.seed} is outside [0, 2**62)")

    @property
    def greedy(self) -> bool:
        """Whether to take the most likely token: at temperature 0, and below
        :data:`GREEDY_BELOW`, where dividing logits by the temperature overflows."""
        return self.temperature < GREEDY_BELOW


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token: its id, its raw logprob, and the top-k ``(token_id, logprob)``."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True)
class Completion:
    """One sampled continuation.

    ``text`` is the decoding of all of ``token_ids`` (a matched stop string included, so text and
    token ids always describe the same state); ``stop_reason`` is the matched stop string or
    token id, ``None`` when the token budget ran out or a ``halt`` ended it.  ``cached_tokens``
    is how many tokens of the request's prompt the engine took from its prefix cache instead of
    computing them (the same on every sample of a request; 0 where the engine does not say),
    OpenAI's ``cached_tokens``.
    """

    token_ids: tuple[int, ...]
    text: str
    logprobs: tuple[TokenLogprob, ...]
    finish_reason: FinishReason
    stop_reason: str | int | None = None
    cached_tokens: int = 0


@runtime_checkable
class Tokenizer(Protocol):
    """What a search needs of a tokenizer: text <-> ids and the end-of-sequence ids."""

    @property
    def eos_token_ids(self) -> frozenset[int]: ...

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added."""
        ...

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids`` with special tokens removed."""
        ...


@runtime_checkable
class Engine(Protocol):
    """A batched, cancellable generator.  Cancelling ``generate`` must free the engine's work."""

    @property
    def model_name(self) -> str: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Return, for each request in order, its ``n`` completions."""
        ...
