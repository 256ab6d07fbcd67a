"""Chat completions: an OpenAI chat request -> SearchParams -> a search -> chunks or one response.

The wire mapping of a finished search (message, ``finish_reason``, usage, the ``search``
object) is written once, here, for the streamed and the JSON answer alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from search import (
    AnswerDelta,
    Expanded,
    Finished,
    FinishReason,
    ReasoningDelta,
    SearchConfigError,
    SearchEvent,
    SearchParams,
    SearchResult,
    run_search,
)
from search.formats import choose, opens_reasoning, with_system_prompt
from server.admission import Admission
from server.args import ServerArgs
from server.caps import capped_defaults, check_caps
from server.engines.base import ServingEngine
from server.errors import InvalidRequest, ModelNotFound, PonderError
from server.metrics import Metrics
from server.openai.models import ALIASES
from server.openai.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChunkChoice,
    CompletionTokensDetails,
    DeltaMessage,
    ResponseMessage,
    SearchInfo,
    SearchOptions,
    SearchProgress,
    Usage,
)
from server.outcome import log_outcome, recorded
from server.traces import TraceStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PreparedChat:
    """A validated request, ready to search."""

    request_id: str
    created: int
    model: str
    params: SearchParams
    reasoning_format: str
    include_usage: bool
    return_tree: bool
    progress: bool
    question: str


def usage_of(result: SearchResult) -> Usage:
    """OpenAI usage of a finished search."""
    return Usage(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=result.reasoning_tokens),
    )


def finish_reason_of(result: SearchResult) -> FinishReason:
    """The choice's ``finish_reason``, one of OpenAI's: ``length`` when a budget (tokens, the
    deadline, a server shutdown) cut the search, else how the returned text ended (``stop`` or
    ``length``).  Typed clients reject values outside OpenAI's set; why the search ended is
    ``search.stop_reason``."""
    if result.stop_reason in ("max_seconds", "interrupted", "max_search_tokens"):
        return "length"
    return result.finish_reason


def search_info(prepared: PreparedChat, result: SearchResult, *, with_tree: bool) -> SearchInfo:
    """ponder's ``search`` object for a finished search, with the tree when asked for."""
    own = ("reasoning_format", "tree")
    fields = {name: getattr(result, name) for name in SearchInfo.model_fields if name not in own}
    tree = list(result.tree) if with_tree else None
    return SearchInfo(**fields, reasoning_format=prepared.reasoning_format, tree=tree)


def _engine_fields(method: str) -> dict[str, str]:
    """The chat fields behind the engine call fields a refusal names: a call's ``n`` is the
    method's samples (or branching), its prompt the messages."""
    n = "search.samples" if method in ("best_of_n", "self_consistency") else "search.branching"
    return {"n": n, "prompt": "messages"}


def _log_outcome(
    prepared: PreparedChat, status: int, seconds: float, result: SearchResult | None
) -> None:
    """One line per request: what was asked (method, budgets) and how it went."""
    p = prepared.params
    facts: dict[str, Any] = {
        "reasoning_format": prepared.reasoning_format,
        "granularity": p.granularity,
        "iterations": p.iterations,
        "branching": p.branching,
        "max_search_tokens": p.max_search_tokens,
        "max_seconds": p.max_seconds,
        "prompt_tokens": len(p.prompt_token_ids),
    }
    if result is not None:
        facts.update(
            completion_tokens=result.completion_tokens,
            generated_tokens=result.generated_tokens,
            stop_reason=result.stop_reason,
            reward=round(result.reward, 4),
        )
    log_outcome(prepared.request_id, p.method, status, seconds, **facts)


async def chat_chunks(
    prepared: PreparedChat, events: AsyncIterator[SearchEvent]
) -> AsyncIterator[ChatCompletionChunk]:
    """A search's events as stream chunks: role first, deltas, finish, then usage."""

    def chunk(
        delta: DeltaMessage | None, finish_reason: str | None = None, **extensions: Any
    ) -> ChatCompletionChunk:
        """A chunk of this response: one choice with ``delta``, or none (the usage chunk)."""
        choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish_reason)]
        return ChatCompletionChunk(
            id=prepared.request_id,
            created=prepared.created,
            model=prepared.model,
            choices=choices,
            **extensions,
        )

    yield chunk(DeltaMessage(role="assistant", content=""))
    async for event in events:
        if isinstance(event, ReasoningDelta):
            yield chunk(DeltaMessage(reasoning=event.text, reasoning_content=event.text))
        elif isinstance(event, AnswerDelta):
            yield chunk(DeltaMessage(content=event.text))
        elif isinstance(event, Expanded) and prepared.progress:
            progress = SearchProgress(
                round=event.round,
                iterations=event.iterations,
                nodes=event.nodes,
                best_reward=event.best_reward,
            )
            yield chunk(DeltaMessage(), search_progress=progress)
        elif isinstance(event, Finished):
            result = event.result
            yield chunk(
                DeltaMessage(),
                finish_reason_of(result),
                search=search_info(prepared, result, with_tree=prepared.return_tree),
            )
            if prepared.include_usage:
                yield chunk(None, usage=usage_of(result))


def _refuse_unsupported(request: ChatCompletionRequest) -> None:
    """A 400 naming each field ponder cannot honour, rather than an answer that ignored it."""
    if request.logprobs:
        raise InvalidRequest("logprobs are not supported with search", param="logprobs")
    if request.tools:
        raise InvalidRequest("tools are not supported: ponder answers in text", param="tools")
    if request.tool_choice not in (None, "none"):
        raise InvalidRequest("tool_choice is not supported without tools", param="tool_choice")
    if (request.response_format or {}).get("type", "text") != "text":
        raise InvalidRequest(
            "response_format other than text is not supported", param="response_format"
        )


class ChatService:
    """Validates chat requests and runs their searches on one engine."""

    def __init__(
        self,
        engine: ServingEngine,
        args: ServerArgs,
        metrics: Metrics,
        admission: Admission,
        traces: TraceStore,
    ) -> None:
        self.engine = engine
        self.args = args
        self.defaults = capped_defaults(args)
        self.chat_template = engine.tokenizer.chat_template
        self.metrics = metrics
        self.admission = admission
        self.traces = traces
        self.interrupt = asyncio.Event()  # set when a drain runs out: searches end early

    def drain(self, seconds: float) -> None:
        """Begin a graceful shutdown: admit nothing more, let running searches go on for
        ``seconds``, then cut them short so each still answers with its best path."""
        self.admission.close()
        logger.info("draining: no new searches; running ones are cut short in %.1fs", seconds)
        asyncio.get_running_loop().call_later(seconds, self.interrupt.set)

    async def prepare(self, request: ChatCompletionRequest) -> PreparedChat:
        """Check the request against the model and build its frozen search parameters.  The
        reasoning format (the request's, else the server's) may put its system prompt first,
        where the messages hold no system or developer message.  The chat template runs in a
        worker thread: a message of megabytes takes seconds to tokenize, and on the event loop
        every other request and stream would wait for it."""
        options = self._options(request)
        check_caps(options, self.args)
        _refuse_unsupported(request)
        profile = choose(request.reasoning_format or self.args.reasoning_format, self.chat_template)
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in request.messages
        ]
        messages = with_system_prompt(messages, profile)
        try:
            template = self.engine.tokenizer.apply_chat_template
            prompt = tuple(await run_in_threadpool(template, messages))
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="messages") from exc
        max_tokens = self._max_tokens(request, len(prompt))
        stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
        markers = options.answer_markers
        # a thinking template that ends its prompt in <think> leaves the model mid-reasoning
        opened = profile.name == "think" and opens_reasoning(
            self.engine.tokenizer.decode(prompt[-8:])
        )
        try:
            params = SearchParams(
                prompt_token_ids=prompt,
                **options.model_dump(exclude={"answer_markers", "return_tree", "progress"}),
                answer_markers=profile.answer_markers if markers is None else tuple(markers),
                starts_in_reasoning=opened,
                max_tokens=max_tokens,
                temperature=1.0 if request.temperature is None else request.temperature,
                top_p=1.0 if request.top_p is None else request.top_p,
                seed=request.seed,
                stop=stop,
            )
        except SearchConfigError as exc:
            param = f"search.{exc.param}" if exc.param in SearchOptions.model_fields else exc.param
            raise InvalidRequest(str(exc), param=param) from exc
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return PreparedChat(
            request_id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=request.model,
            params=params,
            reasoning_format=profile.name,
            include_usage=include_usage,
            return_tree=options.return_tree,
            progress=options.progress,
            question=request.messages[-1].text(),
        )

    def _options(self, request: ChatCompletionRequest) -> SearchOptions:
        """Server defaults, then the model alias's method, then the request's ``search``."""
        name = self.engine.model_name
        update = request.search.model_dump(exclude_unset=True) if request.search else {}
        if request.model != name:
            base, _, alias = request.model.rpartition(":")
            if base != name or alias not in ALIASES:
                raise ModelNotFound(request.model)
            if update.get("method", alias) != alias:
                raise InvalidRequest(
                    f"search.method '{update['method']}' contradicts the model alias "
                    f"'{request.model}'",
                    param="search.method",
                )
            update["method"] = alias
        options = self.defaults.model_copy(update=update)
        if request.timeout is not None:
            cap = self.args.max_search_seconds
            if cap is not None and request.timeout > cap:
                raise InvalidRequest(
                    f"timeout is {request.timeout}, above this server's cap of {cap}",
                    param="timeout",
                    code="over_server_cap",
                )
            asked: float | None = options.model_dump()["max_seconds"]  # generated: no attribute
            deadline = min(asked or request.timeout, request.timeout)
            options = options.model_copy(update={"max_seconds": deadline})
        return options

    def _max_tokens(self, request: ChatCompletionRequest, prompt_tokens: int) -> int:
        limit = self.engine.max_model_len
        asked = request.max_completion_tokens or request.max_tokens
        if prompt_tokens + (asked or 1) > limit:
            raise InvalidRequest(
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {prompt_tokens + (asked or 0)} tokens ({prompt_tokens} in the "
                f"messages, {asked or 0} in the completion). Please reduce the length of the "
                "messages or completion.",
                param="messages" if asked is None else "max_tokens",
            )
        return asked or limit - prompt_tokens

    async def events(self, prepared: PreparedChat) -> AsyncIterator[SearchEvent]:
        """Run the search, observing every event in metrics and counting the outcome."""
        tracker = self.metrics.track(prepared.params.method)
        result: SearchResult | None = None

        def log(status: int, seconds: float) -> None:
            _log_outcome(prepared, status, seconds, result)

        fields = _engine_fields(prepared.params.method)
        with recorded(tracker, prepared.request_id, log, fields):
            search = run_search(prepared.params, self.engine, self.interrupt)
            async with contextlib.aclosing(search) as events:
                async for event in events:
                    tracker.observe(event)
                    if isinstance(event, Finished):
                        result = event.result
                        self._keep_trace(prepared, result)
                    yield event

    def _keep_trace(self, prepared: PreparedChat, result: SearchResult) -> None:
        info = search_info(prepared, result, with_tree=True)
        self.traces.put(
            prepared.request_id,
            {
                "id": prepared.request_id,
                "model": prepared.model,
                "created": prepared.created,
                "question": prepared.question,
                "answer": self.engine.tokenizer.decode(result.token_ids),
                "search": info.model_dump(),
            },
        )

    def chunks(self, prepared: PreparedChat) -> AsyncIterator[ChatCompletionChunk]:
        """Run the search as stream chunks: role first, deltas, finish, then usage."""
        return chat_chunks(prepared, self.events(prepared))

    async def complete(self, prepared: PreparedChat) -> ChatCompletionResponse:
        """Run the search to the end and build one ``chat.completion``."""
        reasoning: list[str] = []
        content: list[str] = []
        result: SearchResult | None = None
        async for event in self.events(prepared):
            if isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
            elif isinstance(event, AnswerDelta):
                content.append(event.text)
            elif isinstance(event, Finished):
                result = event.result
        if result is None:
            raise PonderError("the search ended without a result")
        thought = "".join(reasoning) or None
        message = ResponseMessage(
            content="".join(content), reasoning=thought, reasoning_content=thought
        )
        return ChatCompletionResponse(
            id=prepared.request_id,
            created=prepared.created,
            model=prepared.model,
            choices=[Choice(message=message, finish_reason=finish_reason_of(result))],
            usage=usage_of(result),
            search=search_info(prepared, result, with_tree=prepared.return_tree),
        )
