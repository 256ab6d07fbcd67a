"""Chat completions: an OpenAI chat request -> SearchParams -> a search -> chunks or one response.

The request is checked and prepared here, and its search run once admitted; what the search
shows (:mod:`server.openai.shown`) becomes chunks (:mod:`server.openai.chat_stream`), and the
JSON body is what those chunks add up to.

A request for ``n`` choices runs ``n`` answers at once (:func:`search.run_search`): for method
``none`` ``n`` samples of each engine call, for a search ``n`` searches whose engine calls share
the engine's batch.  Each choice spends at most ``max_completion_tokens`` (as OpenAI bounds each
choice), and the usage sums them.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool

from search import (
    Finished,
    SearchConfigError,
    SearchEvent,
    SearchResult,
    run_search,
)
from search.formats import choose, opens_reasoning, with_system_prompt
from search.params import MAX_SAMPLES
from search.presets import preset
from search.verifier import Verifier
from server.admission import Admission
from server.args import ServerArgs
from server.caps import capped_defaults, check_caps
from server.engines.base import ServingEngine
from server.errors import InvalidRequest, ModelNotFound
from server.metrics import Metrics
from server.openai.aliases import ALIASES
from server.openai.chat_checks import engine_logprobs, refuse_unsupported
from server.openai.chat_stream import chat_chunks, chat_response, with_usage
from server.openai.chat_wire import (
    PreparedChat,
    search_info,
    usage_of,
)
from server.openai.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
)
from server.openai.search_options import SearchOptions
from server.openai.shown import Shown, shown
from server.openai.structured import output_constraint
from server.openai.tool_calls import (
    answered_calls,
    check_tool_results,
    offered,
    template_message,
    with_tools,
)
from server.outcome import log_outcome, recorded
from server.traces import TraceStore

logger = logging.getLogger(__name__)


def _engine_fields(method: str) -> dict[str, str]:
    """The chat fields behind the engine call fields a refusal names: a call's ``n`` is the
    method's samples (or branching), its prompt the messages."""
    n = "search.samples" if method in ("best_of_n", "self_consistency") else "search.branching"
    return {"n": n, "prompt": "messages"}


def _log_outcome(
    prepared: PreparedChat, status: int, seconds: float, results: list[SearchResult]
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
        "n": prepared.n,
    }
    if len(results) == prepared.n:
        first = results[0]
        facts.update(
            completion_tokens=usage_of(*results).completion_tokens,
            generated_tokens=sum(r.generated_tokens for r in results),
            ended_by=first.ended_by,
            reward=round(first.reward, 4),
        )
    log_outcome(prepared.request_id, p.method, status, seconds, **facts)


class ChatService:
    """Validates chat requests and runs their searches on one engine."""

    def __init__(
        self,
        engine: ServingEngine,
        args: ServerArgs,
        metrics: Metrics,
        admission: Admission,
        traces: TraceStore,
        judge: ServingEngine | None = None,
    ) -> None:
        self.engine = engine
        self.judge = judge  # the --verifier model
        self.args = args
        self.defaults = capped_defaults(args)
        self.chat_template = engine.tokenizer.chat_template
        self.metrics = metrics
        self.admission = admission
        self.traces = traces

    async def prepare(self, request: ChatCompletionRequest) -> PreparedChat:
        """Check the request against the model and build its frozen search parameters.  The
        reasoning format (the request's, else the server's) may put its system prompt first,
        where the messages hold no system or developer message.  The chat template runs in a
        worker thread: a message of megabytes takes seconds to tokenize, and on the event loop
        every other request and stream would wait for it."""
        options = self._options(request)
        asked_options = request.search.model_fields_set if request.search else set()
        check_caps(options, self.args)
        refuse_unsupported(request)
        if request.n > self.args.max_n:
            raise InvalidRequest(
                f"n is {request.n}, above this server's cap of {self.args.max_n}",
                param="n",
                code="over_server_cap",
            )
        profile = choose(request.reasoning_format or self.args.reasoning_format, self.chat_template)
        tools = offered(request)
        check_tool_results(request.messages)
        constraint = output_constraint(request, tools, self.engine.tokenizer)
        asked = [template_message(m) for m in request.messages]
        verifier = self._verifier(options.verifier, asked)
        messages, rendered = with_tools(asked, tools, self.chat_template)
        messages = with_system_prompt(messages, profile)
        try:
            template = self.engine.tokenizer.apply_chat_template
            prompt = tuple(await run_in_threadpool(template, messages, rendered))
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="messages") from exc
        max_tokens, max_search_tokens = self._budgets(request, options, len(prompt))
        stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
        markers = options.answer_markers
        # a thinking template that ends its prompt in <think> leaves the model mid-reasoning
        opened = profile.name == "think" and opens_reasoning(
            self.engine.tokenizer.decode(prompt[-8:])
        )
        try:
            params = options.search_params(
                prompt_token_ids=prompt,
                max_tokens=max_tokens,
                max_search_tokens=max_search_tokens,
                answer_markers=profile.answer_markers if markers is None else tuple(markers),
                starts_in_reasoning=opened,
                drafts=bool(request.stream),
                temperature=(
                    self.args.default_temperature
                    if request.temperature is None
                    else request.temperature
                ),
                top_p=1.0 if request.top_p is None else request.top_p,
                seed=request.seed,
                stop=stop,
                logprobs=engine_logprobs(request, options),
                constraint=constraint,
                verifier=verifier,
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
            n=request.n,
            reasoning_format=profile.name,
            include_usage=include_usage,
            return_tree=options.return_tree,
            progress=options.progress,
            widens=(
                self.args.adaptive_parallel
                and options.method == "mcts"
                and request.n == 1
                and "parallel" not in asked_options
            ),
            question=request.messages[-1].text(),
            tools=frozenset(t["function"]["name"] for t in tools),
            answered=answered_calls(request.messages),
            parallel_tool_calls=request.parallel_tool_calls is not False,
            top_logprobs=(request.top_logprobs or 0) if request.logprobs else None,
        )

    def _options(self, request: ChatCompletionRequest) -> SearchOptions:
        """Server defaults, then the ``reasoning_effort`` preset, then the model alias's
        method, then the request's ``search``."""
        name = self.engine.model_name
        asked = request.search.model_dump(exclude_unset=True) if request.search else {}
        update = {**preset(request.reasoning_effort), **asked}
        if request.model != name:
            base, _, alias = request.model.rpartition(":")
            if base != name or alias not in ALIASES:
                raise ModelNotFound(request.model)
            if asked.get("method", alias) != alias:
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
            deadline = min(options.max_seconds or request.timeout, request.timeout)
            options = options.model_copy(update={"max_seconds": deadline})
        return options

    def _verifier(self, asked: str | None, messages: list[dict[str, Any]]) -> Verifier | None:
        """The judge ``search.verifier`` asks for, reading the chat ``messages`` then each
        answer: the model that answered (``self``) or the ``--verifier`` model (``judge``)."""
        if asked is None:
            return None
        engine = self.engine if asked == "self" else self.judge
        if engine is None:
            raise InvalidRequest(
                "search.verifier is 'judge', but this server has no judge: start it with "
                "--verifier MODEL",
                param="search.verifier",
                code="verifier_not_configured",
            )
        return Verifier.in_chat(engine, engine.tokenizer.apply_chat_template, messages)

    def _widened(self, prepared: PreparedChat) -> PreparedChat:
        """The search as it runs now that it holds its slots: ``--adaptive-parallel`` widens
        an MCTS search of one choice that asked no ``parallel`` and that nothing else shares
        the engine with, which would otherwise keep only ``branching`` rows of the batch busy.
        Decided here, after admission, not when the request is checked: two requests that
        arrive together would both see an idle server."""
        p = prepared.params
        if not (prepared.widens and self.admission.alone):
            return prepared
        width = min(p.iterations, MAX_SAMPLES // p.branching)  # >= 1
        return replace(prepared, params=replace(p, parallel=width))

    def _budgets(
        self,
        request: ChatCompletionRequest,
        options: SearchOptions,
        prompt_tokens: int,
    ) -> tuple[int, int]:
        """The answer path's most tokens and the whole search's, per choice.
        ``max_completion_tokens`` (or its deprecated alias ``max_tokens``) bounds every token
        generated, as for OpenAI's reasoning models: the search's token budget is the smaller
        of it and ``search.max_search_tokens``, and the path cannot be longer either.  As
        before, a bound that does not fit the context after the prompt is refused (a larger
        search budget is ``search.max_search_tokens``)."""
        limit = self.engine.max_model_len
        asked = request.max_completion_tokens or request.max_tokens
        searched = options.max_search_tokens
        room = limit - prompt_tokens
        if (asked or 1) > room:
            raise InvalidRequest(
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {prompt_tokens + (asked or 0)} tokens ({prompt_tokens} in the "
                f"messages, {asked or 0} in the completion). Please reduce the length of the "
                "messages or completion.",
                param="messages" if asked is None else "max_tokens",
            )
        if asked is None:
            return room, searched
        return min(asked, room), min(asked, searched)

    async def events(self, prepared: PreparedChat) -> AsyncIterator[SearchEvent]:
        """Run the search, observing every event in metrics and counting the outcome."""
        tracker = self.metrics.track(prepared.params.method, searches=prepared.n)
        results: dict[int, SearchResult] = {}  # by choice

        def log(status: int, seconds: float) -> None:
            _log_outcome(prepared, status, seconds, [results[i] for i in sorted(results)])

        fields = _engine_fields(prepared.params.method)
        with recorded(tracker, prepared.request_id, log, fields):
            interrupt = self.admission.interrupt
            search = run_search(prepared.params, self.engine, interrupt, n=prepared.n)
            async with contextlib.aclosing(search) as events:
                async for event in events:
                    tracker.observe(event)
                    if isinstance(event, Finished):
                        results[event.choice] = event.result
                        if event.choice == 0:  # the trace store keeps one tree per response
                            self._keep_trace(prepared, event.result)
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
                "path": self.engine.tokenizer.decode(result.token_ids),  # reasoning and answer
                "search": info.model_dump(),
            },
        )

    async def records(self, prepared: PreparedChat) -> AsyncGenerator[Shown]:
        """Run the search, once admitted (this generator starts when it is first read), as
        what its client sees: every surface's input."""
        prepared = self._widened(prepared)
        records = shown(prepared, self.events(prepared), self.engine.tokenizer)
        async with contextlib.aclosing(records) as stream:
            async for record in stream:
                yield record

    def chunks(self, prepared: PreparedChat) -> AsyncGenerator[ChatCompletionChunk]:
        """Run the search as stream chunks: role first, deltas, finish, then usage."""
        return chat_chunks(prepared, self.records(prepared))

    async def complete(self, prepared: PreparedChat) -> ChatCompletionResponse:
        """Run the searches to the end: the ``chat.completion`` their stream adds up to."""
        return await chat_response(prepared, self.chunks(with_usage(prepared)))
