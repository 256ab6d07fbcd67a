"""ScriptedEngine: a deterministic engine for unit tests of search arithmetic only.

Tokens are characters (id = code point, 0 = end of sequence).  Each call pops the next
continuations from a script; every token's confidence is set by giving the chosen token a
logprob and four alternatives so that ``token_confidence`` returns exactly the scripted value.

Time is the test's: a gated engine holds each call until the test, having seen it start,
releases it, and a :class:`FakeClock` (handed to ``Budget``) moves only when a call says so.
Nothing here sleeps, so a busy machine changes no outcome.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from search.engine import Completion, GenerationRequest, TokenLogprob
from server.engines.stats import EngineStats

EOS = 0


class CharTokenizer:
    """One token per character; id 0 ends a sequence."""

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({EOS})

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(chr(t) for t in token_ids if t != EOS)


def scored(text: str, confidence: float, *, eos: bool = True) -> list[tuple[int, float]]:
    """Tokens of ``text`` (plus EOS) each with the given confidence."""
    ids = [ord(c) for c in text] + ([EOS] if eos else [])
    return [(i, confidence) for i in ids]


def _logprob(token: int, confidence: float) -> TokenLogprob:
    # chosen p = c, four alternatives share the rest equally: c / (c + 4 * (1-c)/4) = c
    rest = max((1 - confidence) / 4, 1e-12)
    alternatives = tuple((100_000 + j, math.log(rest)) for j in range(4))
    return TokenLogprob(token, math.log(confidence), ((token, math.log(confidence)), *alternatives))


@dataclass
class FakeClock:
    """Seconds that pass only when a test (or a scripted call) advances them."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ScriptedEngine:
    """Returns scripted continuations, one per sample, in order; records every request.

    With ``gated``, each call waits (after it is recorded, and after a request's ``watch`` has
    heard each of its samples grow token by token) until :meth:`release` lets it through;
    :meth:`started` waits until a number of calls have begun.  A call that finishes advances
    ``clock`` by ``call_seconds``: how long it took, as the search's budget sees it.  A call
    cancelled while it waits is counted in ``cancelled``.
    """

    script: list[list[tuple[int, float]]]
    gated: bool = False
    clock: FakeClock = field(default_factory=FakeClock)
    call_seconds: float = 0.0
    model_name: str = "scripted"
    tokenizer: CharTokenizer = field(default_factory=CharTokenizer)
    stats: EngineStats = field(default_factory=EngineStats)
    requests: list[GenerationRequest] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)  # requests per generate call
    cancelled: int = 0
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _releases: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        self.requests.extend(requests)
        self.calls.append(len(requests))
        async with self._arrived:
            self._arrived.notify_all()
        # a watched call "decodes" before it is held: its watches hear every token first
        outputs = None
        if any(r.watch for r in requests):
            outputs = [[self._next(r) for _ in range(r.n)] for r in requests]
            for request, batch in zip(requests, outputs, strict=True):
                for i, completion in enumerate(batch):
                    for k in range(1, len(completion.token_ids) + 1):
                        if request.watch:
                            request.watch(i, completion.logprobs[:k])
        if self.gated:
            try:
                await self._releases.acquire()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        self.clock.advance(self.call_seconds)
        return outputs or [[self._next(r) for _ in range(r.n)] for r in requests]

    async def started(self, calls: int) -> None:
        """Return once ``calls`` calls have begun (each is then held, if the engine is gated)."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.calls) >= calls)

    def release(self, calls: int = 1) -> None:
        """Let ``calls`` held calls (present or future) through."""
        for _ in range(calls):
            self._releases.release()

    def _next(self, request: GenerationRequest) -> Completion:
        tokens = self.script.pop(0) if self.script else [(EOS, 1.0)]
        tokens = tokens[: request.max_tokens]
        ids = tuple(t for t, _ in tokens)
        finished = ids[-1] == EOS
        return Completion(
            token_ids=ids,
            text=self.tokenizer.decode(ids),
            logprobs=tuple(_logprob(t, c) for t, c in tokens),
            finish_reason="stop" if finished else "length",
            stop_reason=EOS if finished else None,
        )
