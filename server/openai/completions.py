"""``/v1/completions``: the engine's plain generation in OpenAI's (and vLLM's) completions
format, token-id or text prompts, with logprobs.  No search: this is what lets one ponder (or
any ``vllm serve``) be the upstream of another."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from search.engine import SEED_BOUND, Completion, Constraint, GenerationRequest
from server.engines.base import ServingEngine
from server.errors import InvalidRequest, ModelNotFound
from server.metrics import COMPLETIONS, Metrics
from server.openai.completion_choices import ShownChoice, streamed
from server.openai.completions_protocol import (
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    CompletionResponse,
)
from server.openai.protocol import PromptTokensDetails, Usage, stop_strings
from server.outcome import log_outcome, recorded


@dataclass(frozen=True, slots=True)
class PreparedCompletion:
    """A checked request: its prompts as token ids and one engine call per prompt."""

    request: CompletionRequest
    prompts: list[tuple[int, ...]]
    calls: tuple[GenerationRequest, ...]

    @property
    def sequences(self) -> int:
        """The sequences the engine runs for it: ``n`` for each prompt."""
        return sum(call.n for call in self.calls)


class CompletionService:
    """Runs ``/v1/completions`` on one engine, counted in metrics and logged as chat is."""

    def __init__(self, engine: ServingEngine, metrics: Metrics) -> None:
        self.engine = engine
        self.metrics = metrics

    async def prepare(self, request: CompletionRequest) -> PreparedCompletion:
        """Check the request and build its engine calls.  Text prompts are tokenized in a
        worker thread: megabytes take seconds, which on the event loop every other request
        would wait for."""
        if request.model != self.engine.model_name:
            raise ModelNotFound(request.model)
        prompts = await run_in_threadpool(prompts_of, request, self.engine)
        calls = tuple(generation_requests(request, prompts))
        return PreparedCompletion(request, prompts, calls)

    async def create(self, prepared: PreparedCompletion) -> CompletionResponse:
        """Generate for every prompt and build the ``text_completion``."""
        response_id = f"cmpl-{uuid.uuid4().hex}"
        with self._recorded(prepared, response_id) as generated:
            outputs = await self.engine.generate(list(prepared.calls))
            usage = generated(outputs)
        return completion_response(response_id, prepared.request, outputs, usage, self.engine)

    async def stream(self, prepared: PreparedCompletion) -> AsyncIterator[CompletionChunk]:
        """Generate as :meth:`create` does, each choice's tokens sent as the engine makes them
        (:func:`~server.openai.completion_choices.streamed`), then the usage where
        ``stream_options.include_usage`` asks; a client that closes the stream cancels the
        engine call."""
        request, prompts = prepared.request, prepared.prompts
        response_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        choices = [ShownChoice(i, request, self.engine) for i in range(len(prompts) * request.n)]
        outputs: list[list[Completion]] = []
        with self._recorded(prepared, response_id) as generated:
            async for choice in streamed(self.engine, prepared.calls, choices, request.n, outputs):
                yield CompletionChunk(
                    id=response_id, created=created, model=request.model, choices=[choice]
                )
            usage = generated(outputs)
        if request.stream_options and request.stream_options.include_usage:
            yield CompletionChunk(
                id=response_id, created=created, model=request.model, choices=[], usage=usage
            )

    @contextlib.contextmanager
    def _recorded(
        self, prepared: PreparedCompletion, response_id: str
    ) -> Iterator[Callable[[list[list[Completion]]], Usage]]:
        """Count and log the work inside (see :func:`~server.outcome.recorded`), which hands
        the engine's outputs to the function this yields, for their usage."""
        request, prompts = prepared.request, prepared.prompts
        prompt_tokens = sum(len(ids) for ids in prompts)
        tokens: int | None = None

        def log(status: int, seconds: float) -> None:
            facts: dict[str, object] = {
                "prompts": len(prompts),
                "n": request.n,
                "max_tokens": request.max_tokens,
                "prompt_tokens": prompt_tokens,
            }
            if tokens is not None:
                facts.update(completion_tokens=tokens, generated_tokens=tokens)
            log_outcome(response_id, COMPLETIONS, status, seconds, **facts)

        def generated(outputs: list[list[Completion]]) -> Usage:
            nonlocal tokens
            usage = usage_of(prompts, outputs)
            tokens = usage.completion_tokens
            tracker.generated(prompt_tokens, tokens)
            return usage

        tracker = self.metrics.track(COMPLETIONS)
        with recorded(tracker, response_id, log, {"constraint": "structured_outputs.grammar"}):
            yield generated


def prompts_of(request: CompletionRequest, engine: ServingEngine) -> list[tuple[int, ...]]:
    """The request's prompts as token ids, checked against the context length."""
    prompt = request.prompt
    items: list[str | list[int]]
    if isinstance(prompt, str):
        items = [prompt]
    elif isinstance(prompt[0], int):
        items = [[int(t) for t in prompt]]
    else:
        items = list(prompt)
    try:
        batches = [
            tuple(engine.tokenizer.encode(item)) if isinstance(item, str) else tuple(item)
            for item in items
        ]
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="prompt") from exc
    if not all(batches):
        raise InvalidRequest("every prompt needs at least one token", param="prompt")
    vocab = engine.tokenizer.vocab_size
    if any(not 0 <= t < vocab for ids in batches for t in ids):
        raise InvalidRequest(f"token ids must be in [0, {vocab})", param="prompt")
    limit = engine.max_model_len
    for ids in batches:
        if len(ids) + request.max_tokens > limit:
            raise InvalidRequest(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{len(ids) + request.max_tokens} tokens ({len(ids)} in the prompt, "
                f"{request.max_tokens} in the completion).",
                param="max_tokens",
            )
    return batches


def generation_requests(
    request: CompletionRequest, prompts: list[tuple[int, ...]]
) -> list[GenerationRequest]:
    """One engine request per prompt, ``n`` samples each."""
    if request.echo:
        raise InvalidRequest("echo is not supported", param="echo")
    stop = stop_strings(request.stop)
    grammar = request.structured_outputs.grammar if request.structured_outputs else None
    if request.constraint_done and (
        grammar is None or request.constraint_done > min(map(len, prompts))
    ):
        raise InvalidRequest(
            "constraint_done counts prompt tokens a structured_outputs grammar has read: it "
            "needs a grammar, and no more tokens than the prompt has",
            param="constraint_done",
        )
    return [
        GenerationRequest(
            prompt_token_ids=ids,
            max_tokens=request.max_tokens,
            n=request.n,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=None if request.seed is None else request.seed % SEED_BOUND,
            stop=stop,
            stop_token_ids=tuple(request.stop_token_ids or ()),
            logprobs=request.logprobs or 0,
            constraint=None
            if grammar is None
            else Constraint(grammar, done=ids[len(ids) - request.constraint_done :]),
        )
        for ids in prompts
    ]


def completion_response(
    response_id: str,
    request: CompletionRequest,
    outputs: list[list[Completion]],
    usage: Usage,
    engine: ServingEngine,
) -> CompletionResponse:
    """OpenAI's ``text_completion``: choices prompt-major, as OpenAI numbers them."""
    choices = [
        _choice(p * request.n + i, completion, request, engine)
        for p, samples in enumerate(outputs)
        for i, completion in enumerate(samples)
    ]
    return CompletionResponse(id=response_id, model=request.model, choices=choices, usage=usage)


def usage_of(prompts: list[tuple[int, ...]], outputs: list[list[Completion]]) -> Usage:
    """The tokens read (those the engine's prefix cache held among them) and generated."""
    generated = sum(len(c.token_ids) for samples in outputs for c in samples)
    prompt_tokens = sum(len(ids) for ids in prompts)
    cached = sum(samples[0].cached_tokens for samples in outputs if samples)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=generated,
        total_tokens=prompt_tokens + generated,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )


def _choice(
    index: int, completion: Completion, request: CompletionRequest, engine: ServingEngine
) -> CompletionChoice:
    """The choice as the last chunk of its stream would show it, had none come before: the
    JSON body and the stream cannot disagree."""
    shown = ShownChoice(index, request, engine).end(completion)
    return CompletionChoice.model_validate(shown, from_attributes=True)
