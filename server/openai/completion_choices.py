"""What a ``/v1/completions`` choice shows, whole or streamed.  Streamed, each choice's tokens
go as the engine makes them (its ``watch``), so a client can read a sample while it decodes
and close the stream to stop it (ponder's upstream engine does both); the text is held back
where a stop string may yet cut it, or a character is not complete, and each choice's last
chunk says how it finished."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from search.drafts import INCOMPLETE
from search.engine import Completion, GenerationRequest, TokenLogprob, Watch
from server.engines.base import ServingEngine
from server.openai.completions_protocol import (
    CompletionChunkChoice,
    CompletionLogprobs,
    CompletionRequest,
)
from server.openai.protocol import stop_strings


def cut(text: str, stops: Sequence[str], keep: bool) -> str:
    """``text`` up to the first of ``stops`` in it (the stop string's token may run past it),
    the stop string kept when ``keep``; all of it when none is there."""
    found = [(text.find(s), s) for s in stops if s and s in text]
    if not found:
        return text
    at, stop = min(found)
    return text[: at + (len(stop) if keep else 0)]


def logprobs_of(
    tokens: Sequence[TokenLogprob],
    request: CompletionRequest,
    engine: ServingEngine,
    offset: int = 0,
) -> CompletionLogprobs | None:
    """OpenAI's ``logprobs`` of ``tokens`` (``None`` unless the request asks), each token
    named by its text or, with ``return_tokens_as_token_ids``, ``token_id:N``; offsets count
    the names' characters from ``offset``."""
    if request.logprobs is None:
        return None

    def name(token: int) -> str:
        if request.return_tokens_as_token_ids:
            return f"token_id:{token}"
        return engine.tokenizer.decode([token])

    names = [name(t.token_id) for t in tokens]
    offsets = []
    for token in names:
        offsets.append(offset)
        offset += len(token)
    return CompletionLogprobs(
        tokens=names,
        token_logprobs=[t.logprob for t in tokens],
        top_logprobs=[{name(i): lp for i, lp in t.top} for t in tokens],
        text_offset=offsets,
    )


class ShownChoice:
    """One choice of a streamed completion: the tokens and text sent so far."""

    def __init__(self, index: int, request: CompletionRequest, engine: ServingEngine) -> None:
        self.index = index
        self._request = request
        self._engine = engine
        self._tokens: list[TokenLogprob] = []
        self._offset = 0  # characters of the token names sent (OpenAI's text_offset)
        self._sent = ""

    def grew(self, tokens: Sequence[TokenLogprob]) -> CompletionChunkChoice:
        """The chunk of ``tokens``, just generated: them, and the text now safe to show."""
        self._tokens.extend(tokens)
        text = self._engine.tokenizer.decode([t.token_id for t in self._tokens])
        return self._chunk(tokens, self._safe(text))

    def end(self, completion: Completion) -> CompletionChunkChoice:
        """The last chunk: the tokens not heard yet (all of them where the engine cannot say),
        the rest of the text, and how the choice finished."""
        unheard = completion.logprobs[len(self._tokens) :]
        text = completion.text
        if isinstance(completion.stop_reason, str):
            text = cut(text, (completion.stop_reason,), self._request.include_stop_str_in_output)
        chunk = self._chunk(unheard, text)
        return chunk.model_copy(
            update={
                "finish_reason": completion.finish_reason,
                "stop_reason": completion.stop_reason,
            }
        )

    def _safe(self, text: str) -> str:
        """What of the text so far no later token can take back: cut at a stop string found
        in it, else short of a stop string's beginning, and of a character not complete."""
        request = self._request
        stops = stop_strings(request.stop)
        shown = cut(text, stops, request.include_stop_str_in_output)
        if shown == text and stops and not request.include_stop_str_in_output:
            shown = text[: len(text) - (max(map(len, stops)) - 1)]
        return shown.rstrip(INCOMPLETE)

    def _chunk(self, tokens: Sequence[TokenLogprob], text: str) -> CompletionChunkChoice:
        new = text[len(self._sent) :] if text.startswith(self._sent) else ""
        self._sent += new
        logprobs = logprobs_of(tokens, self._request, self._engine, self._offset)
        if logprobs is not None and logprobs.tokens:
            last = len(logprobs.tokens[-1])
            self._offset = logprobs.text_offset[-1] + last
        return CompletionChunkChoice(index=self.index, text=new, logprobs=logprobs)


async def streamed(
    engine: ServingEngine,
    calls: Sequence[GenerationRequest],
    choices: list[ShownChoice],
    n: int,
    outputs: list[list[Completion]],
) -> AsyncIterator[CompletionChunkChoice]:
    """Run ``calls`` (``n`` samples each, choices numbered prompt-major) on ``engine``,
    yielding each choice's chunks as its tokens come, then each choice's last, and keeping
    the engine's ``outputs``; cancelling the iteration cancels the engine call."""
    loop = asyncio.get_running_loop()
    heard: asyncio.Queue[tuple[int, TokenLogprob]] = asyncio.Queue()

    def listener(first: int) -> Watch:
        def watch(index: int, tokens: Sequence[TokenLogprob]) -> None:  # the engine's thread
            loop.call_soon_threadsafe(heard.put_nowait, (first + index, tokens[-1]))

        return watch

    watched = [replace(call, watch=listener(p * n)) for p, call in enumerate(calls)]
    call = asyncio.ensure_future(engine.generate(watched))
    try:
        while True:
            waiting = asyncio.ensure_future(heard.get())
            await asyncio.wait({call, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                waiting.cancel()
                break
            for chunk in _grown(waiting.result(), heard, choices):
                yield chunk
        outputs.extend(call.result())
        if not heard.empty():  # what the engine said before it returned
            for chunk in _grown(heard.get_nowait(), heard, choices):
                yield chunk
        for p, samples in enumerate(outputs):
            for i, completion in enumerate(samples):
                yield choices[p * n + i].end(completion)
    finally:
        call.cancel()


def _grown(
    first: tuple[int, TokenLogprob],
    heard: asyncio.Queue[tuple[int, TokenLogprob]],
    choices: list[ShownChoice],
) -> list[CompletionChunkChoice]:
    """One chunk per choice that grew, from ``first`` and everything else heard by now."""
    grown: dict[int, list[TokenLogprob]] = {}
    item: tuple[int, TokenLogprob] | None = first
    while item is not None:
        grown.setdefault(item[0], []).append(item[1])
        item = heard.get_nowait() if not heard.empty() else None
    return [choices[index].grew(tokens) for index, tokens in grown.items()]
