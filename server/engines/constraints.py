"""Constrained decoding in the local engines (llama.cpp, transformers), by llguidance.

A request's :class:`~search.engine.Constraint` is compiled once per ``generate`` call, before
the call joins a batch other calls share (a grammar that does not compile, or a path it does
not allow, is the client's error, not a fault of the batch), into a :class:`Guide` that has
read the constraint's ``done`` tokens.  Each sample decodes with its own copy: before a token
is chosen, the guide says which tokens may come next (a mask over the logits row, about 0.1 ms
for a JSON schema on Qwen2.5's 151,936 tokens); after, it reads the token.  Once the grammar
is complete, only an end-of-sequence token is allowed, so a sample ends as any other does.
The logprobs a sample records stay the model's own: a token the model thought unlikely and
the grammar forced shows as unlikely to the rewards.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import llguidance
import llguidance.hf
import llguidance.numpy
import numpy as np

from search.engine import Constraint, GenerationRequest, RequestRejected
from server.engines.hf_tokenizer import HFTokenizer


class Guide:
    """One sample's place in its constraint's grammar."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab: int) -> None:
        self._matcher = matcher
        self._bitmask = llguidance.numpy.allocate_token_bitmask(1, vocab)

    def copy(self) -> Guide:
        """A guide at the same place, that goes on independently."""
        return Guide(self._matcher.deep_copy(), self._bitmask.shape[1] * 32)

    def allowed(self, width: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Which of a logits row's ``width`` tokens may come next (a token past the
        tokenizer's vocabulary never may)."""
        llguidance.numpy.fill_next_token_bitmask(self._matcher, self._bitmask)
        bits = np.unpackbits(self._bitmask.view(np.uint8), bitorder="little").astype(bool)
        if len(bits) >= width:
            return bits[:width]
        return np.concatenate([bits, np.zeros(width - len(bits), dtype=bool)])

    def read(self, token: int) -> None:
        """The token chosen (always one :meth:`allowed` allowed)."""
        if not self._matcher.consume_token(token):
            raise RuntimeError(f"the grammar refused token {token}: {self._matcher.get_error()}")


class Grammars:
    """One engine's compiler of constraints into guides.  The llguidance tokenizer is built
    on first use (about 1.6 s for Qwen2.5's vocabulary), off the event loop."""

    def __init__(self, tokenizer: HFTokenizer) -> None:
        self._tokenizer = tokenizer
        self._built: llguidance.LLTokenizer | None = None
        self._lock = threading.Lock()

    def guides(self, requests: Sequence[GenerationRequest]) -> list[Guide | None]:
        """Each request's guide after its constraint's ``done`` tokens (``None`` where it has
        no constraint); ``RequestRejected`` naming ``constraint`` if one does not
        compile or its ``done`` tokens break it."""
        return [None if r.constraint is None else self._start(r.constraint) for r in requests]

    def _start(self, constraint: Constraint) -> Guide:
        tokenizer = self._llg_tokenizer()
        matcher = llguidance.LLMatcher(tokenizer, constraint.grammar, log_level=0)
        if not matcher.is_error() and constraint.done:
            matcher.consume_tokens(list(constraint.done))
        if matcher.is_error():
            raise RequestRejected(
                f"the output constraint failed: {_first_line(matcher.get_error())}",
                "constraint",
            )
        return Guide(matcher, tokenizer.vocab_size)

    def _llg_tokenizer(self) -> llguidance.LLTokenizer:
        with self._lock:
            if self._built is None:
                eos = sorted(self._tokenizer.eos_token_ids)
                self._built = llguidance.hf.from_tokenizer(self._tokenizer.hf, eos_token=eos)
            return self._built


def from_the_start(request: GenerationRequest, engine: str) -> str | None:
    """The grammar of ``request`` for an engine that holds each call to a grammar from the
    call's first token only (vLLM's structured outputs, in process or behind a fleet's
    ``structured_outputs.grammar``, whose guidance backend reads llguidance's Lark): ``None``
    without a constraint.  A constraint whose text has begun in the prompt (a search continuing
    its path: MCTS, beam, method ``none`` past its first call) is refused rather than restarted,
    which would let the path's text be written twice."""
    if request.constraint is None:
        return None
    if request.constraint.done:
        raise RequestRejected(
            f"{engine} holds a call to a grammar from its first token, so it cannot continue a "
            "constrained path: use method self_consistency or best_of_n (each answer one "
            "call), method none with step_tokens >= max_tokens, or the llama.cpp, "
            "transformers or a ponder upstream engine",
            "constraint",
        )
    return request.constraint.grammar


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "unknown error"
