"""A continuation another system generated (vLLM's ``CompletionOutput``, a ``/v1/completions``
choice of an upstream server), in the engine interface's terms: one mapping for both, so the
two engines that do not sample themselves agree on what a ``Completion`` holds."""

from __future__ import annotations

from collections.abc import Iterable

from search.engine import Completion, EngineFault, Tokenizer, TokenLogprob

# one generated token: its id, its logprob, and candidate (token id, logprob) pairs (the top-k
# and perhaps the token itself, in any order)
Position = tuple[int, float, Iterable[tuple[int, float]]]


def foreign_completion(
    positions: Iterable[Position],
    finish_reason: str,
    stop_reason: str | int | None,
    k: int,
    tokenizer: Tokenizer,
) -> Completion:
    """The :class:`Completion` of the generated ``positions``: each token's top ``k``
    alternatives best first; the text decoded from every id (a source may cut it after a stop
    string); ended on an end-of-sequence token when it stopped with no stop reason given.
    Any finish reason but ``stop`` and ``length`` (aborted, failed) is not a finished sample:
    an :class:`EngineFault`."""
    return finished(
        tuple(foreign_token(p, k) for p in positions), finish_reason, stop_reason, tokenizer
    )


def foreign_token(position: Position, k: int) -> TokenLogprob:
    """One generated position as a token: its top ``k`` alternatives best first."""
    token, logprob, top = position
    ranked = sorted(((int(t), float(lp)) for t, lp in top), key=lambda p: -p[1])
    return TokenLogprob(int(token), float(logprob), tuple(ranked[:k]))


def finished(
    logprobs: tuple[TokenLogprob, ...],
    finish_reason: str,
    stop_reason: str | int | None,
    tokenizer: Tokenizer,
) -> Completion:
    """The :class:`Completion` of the generated tokens (see :func:`foreign_completion`)."""
    if finish_reason not in ("stop", "length"):
        raise EngineFault(f"the sample ended with finish reason {finish_reason!r}")
    ids = tuple(position.token_id for position in logprobs)
    if finish_reason == "stop" and stop_reason is None and ids:
        stop_reason = ids[-1]
    return Completion(
        token_ids=ids,
        text=tokenizer.decode(ids),
        logprobs=logprobs,
        finish_reason="stop" if finish_reason == "stop" else "length",
        stop_reason=stop_reason,
    )
