"""``/v1/completions``: the engine's plain generation in OpenAI's (and vLLM's) completions
format, token-id or text prompts, with logprobs.  No search: this is what lets one ponder (or
any ``vllm serve``) be the upstream of another."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from search.engine import SEED_BOUND, Completion, Constraint, GenerationRequest
from server.engines.base import ServingEngine
from server.errors import InvalidRequest, ModelNotFound
from server.metrics import COMPLETIONS, Metrics
from server.openai.completions_protocol import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
)
from server.openai.protocol import PromptTokensDetails, Usage
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
        request, prompts = prepared.request, prepared.prompts
        response_id = f"cmpl-{uuid.uuid4().hex}"
        prompt_tokens = sum(len(ids) for ids in prompts)
        generated: int | None = None

        def log(status: int, seconds: float) -> None:
            facts: dict[str, object] = {
                "prompts": len(prompts),
                "n": request.n,
                "max_tokens": request.max_tokens,
                "prompt_tokens": prompt_tokens,
            }
            if generated is not None:
                facts.update(completion_tokens=generated, generated_tokens=generated)
            log_outcome(response_id, COMPLETIONS, status, seconds, **facts)

        tracker = self.metrics.track(COMPLETIONS)
        with recorded(tracker, response_id, log, {"constraint": "structured_outputs.grammar"}):
            outputs = await self.engine.generate(list(prepared.calls))
            response = completion_response(response_id, request, prompts, outputs, self.engine)
            generated = response.usage.completion_tokens
            tracker.generated(prompt_tokens, generated)
        return response


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
    if request.stream:
        raise InvalidRequest("streaming completions are not supported", param="stream")
    stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
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
    prompts: list[tuple[int, ...]],
    outputs: list[list[Completion]],
    engine: ServingEngine,
) -> CompletionResponse:
    """OpenAI's ``text_completion``: choices prompt-major, as OpenAI numbers them."""
    choices = [
        _choice(p * request.n + i, completion, request, engine)
        for p, samples in enumerate(outputs)
        for i, completion in enumerate(samples)
    ]
    generated = sum(len(c.token_ids) for samples in outputs for c in samples)
    prompt_tokens = sum(len(ids) for ids in prompts)
    cached = sum(samples[0].cached_tokens for samples in outputs if samples)
    return CompletionResponse(
        id=response_id,
        model=request.model,
        choices=choices,
        usage=Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=generated,
            total_tokens=prompt_tokens + generated,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        ),
    )


def _choice(
    index: int, completion: Completion, request: CompletionRequest, engine: ServingEngine
) -> CompletionChoice:
    text = completion.text
    stop = completion.stop_reason
    if isinstance(stop, str) and stop in text:  # the stop string's token may run past it
        kept = len(stop) if request.include_stop_str_in_output else 0
        text = text[: text.find(stop) + kept]
    logprobs = None
    if request.logprobs is not None:

        def name(token: int) -> str:
            if request.return_tokens_as_token_ids:
                return f"token_id:{token}"
            return engine.tokenizer.decode([token])

        tokens = [name(t.token_id) for t in completion.logprobs]
        offsets, offset = [], 0
        for token in tokens:
            offsets.append(offset)
            offset += len(token)
        logprobs = CompletionLogprobs(
            tokens=tokens,
            token_logprobs=[t.logprob for t in completion.logprobs],
            top_logprobs=[{name(i): lp for i, lp in t.top} for t in completion.logprobs],
            text_offset=offsets,
        )
    return CompletionChoice(
        index=index,
        text=text,
        logprobs=logprobs,
        finish_reason=completion.finish_reason,
        stop_reason=stop,
    )
