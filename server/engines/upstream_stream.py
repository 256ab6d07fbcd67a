"""What the upstream engine reads from a fleet's ``/v1/completions``: a choice's logprobs as
engine tokens, whole or streamed.

A request that is watched or may be halted is streamed (``stream: true``): every token is
heard as the fleet sends it (``watch``), ``halt`` is asked after every token that did not end
its sample, and once every choice of the call has ended or been halted the stream is closed,
which stops the fleet's generation (vLLM aborts a request whose client has gone; ponder
cancels its engine call).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from search.engine import (
    Completion,
    EngineFault,
    GenerationRequest,
    RequestRejected,
    Tokenizer,
    TokenLogprob,
)
from server.engines.foreign import Position, finished, foreign_token

CONSTRAINT_FIELDS = ("structured_outputs", "constraint_done")  # the engine's `constraint`
CLIENTS_DOING = ("invalid_request_error", "BadRequestError")  # ponder's and vLLM's 400 types


class UpstreamError(EngineFault):
    """The fleet failed the call: every replica failed it, one refused ponder's own setup (its
    key or model name), or one answered in a shape ponder cannot read."""


def positions(logprobs: dict[str, Any] | None) -> Iterator[Position]:
    """OpenAI's ``choices[].logprobs`` (tokens as ``token_id:N``) as generated positions."""
    if not logprobs:
        return
    for token, logprob, top in zip(
        logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True
    ):
        yield token_id(token), logprob, ((token_id(t), lp) for t, lp in (top or {}).items())


async def read_stream(
    response: httpx.Response,
    request: GenerationRequest,
    first: int,
    n: int,
    tokenizer: Tokenizer,
) -> list[Completion]:
    """The ``n`` choices of a streamed call, sample ``first + i`` of ``request`` for choice
    ``i``, read until each has ended or been halted."""
    tokens: list[list[TokenLogprob]] = [[] for _ in range(n)]
    ends: list[tuple[str, str | int | None] | None] = [None] * n
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            payload = json.loads(line[len("data: ") :])
            if "error" in payload:  # an error after the stream began: the last frame
                if payload["error"].get("type") in CLIENTS_DOING:
                    raise refused(payload, line)
                raise UpstreamError(f"the upstream failed the call: {payload['error']}")
            for choice in payload["choices"]:
                _read_choice(choice, request, first, tokens, ends)
            if all(end is not None for end in ends):
                break  # leaving the stream closes it: the fleet stops what still runs
    except httpx.TransportError as exc:
        raise UpstreamError(f"the upstream stream broke: {exc!r}") from exc
    if any(end is None for end in ends):
        raise UpstreamError("the upstream stream ended before every choice did")
    return [
        finished(tuple(heard), end[0], end[1], tokenizer)
        for heard, end in zip(tokens, ends, strict=True)
        if end is not None
    ]


def _read_choice(
    choice: dict[str, Any],
    request: GenerationRequest,
    first: int,
    tokens: list[list[TokenLogprob]],
    ends: list[tuple[str, str | int | None] | None],
) -> None:
    """One chunk's choice: its tokens heard and judged; its end, or a halt, kept."""
    i = choice["index"]
    if ends[i] is not None:  # halted: what the fleet still sends is not read
        return
    new = [foreign_token(p, request.logprobs) for p in positions(choice.get("logprobs"))]
    finish = choice.get("finish_reason")
    for k, token in enumerate(new):
        tokens[i].append(token)
        if request.watch is not None:
            request.watch(first + i, tokens[i])
        # this token ended the sample (a fleet that sends the finish in a chunk of its own
        # lets the halt judge the last token too: a sample it halts there counts as halted)
        ended = finish is not None and k == len(new) - 1
        if not ended and request.halt is not None and request.halt(tokens[i]):
            ends[i] = ("length", None)
            return
    if finish is not None:
        ends[i] = (finish, choice.get("stop_reason"))


def refused(payload: Any, text: str) -> RequestRejected:
    """The fleet's refusal of the call (its error body, or an error frame mid-stream) as the
    engine's own, naming the field the fleet named as the engine names its fields."""
    try:
        error = payload.get("error", payload)  # OpenAI's shape, or vLLM's older flat one
        message, param = str(error["message"]), error.get("param")
    except (KeyError, TypeError, AttributeError):
        message, param = text, None
    if param is not None and str(param).split(".")[0] in CONSTRAINT_FIELDS:
        param = "constraint"  # the engine interface's name, which each surface renames
    return RequestRejected(f"the upstream refused the call: {message}", param=param)


def token_id(token: str) -> int:
    """``token_id:123`` (vLLM's ``return_tokens_as_token_ids``) -> 123."""
    prefix, _, number = token.partition(":")
    if prefix != "token_id" or not number.lstrip("-").isdigit():
        raise UpstreamError(f"the upstream did not return token ids (got {token!r})")
    return int(number)
