"""The search service every surface shares: an :class:`Ask` -> SearchParams -> a search ->
what its client sees.

A request is checked against the model and prepared here (prompt, budgets, caps, the
constraint, the verifier), and its search run once admitted; what the search shows
(:mod:`server.openai.shown`) is each surface's input: chat's chunks
(:mod:`server.openai.chat_stream`), the Responses API's events (:mod:`server.openai.responses`).

A request for ``n`` choices runs ``n`` answers at once (:func:`search.run_search`): for method
``none`` ``n`` samples of each engine call, for a search ``n`` searches whose engine calls share
the engine's batch.  Each choice spends at most ``max_tokens`` (as OpenAI bounds each choice),
and the usage sums them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
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
from search.params import MAX_SAMPLES, REWARD_TOP_K
from search.presets import preset
from search.verifier import Verifier
from server.admission import Admission
from server.args import ServerArgs
from server.caps import capped_defaults, check_caps
from server.engines.base import ServingEngine
from server.errors import InvalidRequest, ModelNotFound
from server.metrics import Metrics
from server.openai.aliases import ALIASES
from server.openai.ask import Ask, PreparedSearch
from server.openai.chat_wire import search_info, usage_of
from server.openai.search_options import SearchOptions
from server.openai.shown import Shown, shown
from server.openai.structured import output_constraint
from server.openai.tool_calls import (
    answered_calls,
    check_tool_results,
    offered,
    with_tools,
)
from server.outcome import log_outcome, recorded
from server.traces import TraceStore

logger = logging.getLogger(__name__)


def _engine_fields(method: str) -> dict[str, str]:
    """The :class:`Ask` fields behind the engine call fields a refusal names: a call's ``n``
    is the method's samples (or branching), its prompt the messages, its constraint the
    answer's format."""
    n = "search.samples" if method in ("best_of_n", "self_consistency") else "search.branching"
    return {"n": n, "prompt": "messages", "constraint": "format"}


def _log_outcome(
    prepared: PreparedSearch, status: int, seconds: float, results: list[SearchResult]
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


class SearchService:
    """Prepares every surface's requests and runs their searches on one engine."""

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

    async def prepare(self, ask: Ask, request_id: str) -> PreparedSearch:
        """Check ``ask`` against the model and build its frozen search parameters, under the
        id its surface gives it (``chatcmpl-...``, ``resp_...``).  The
        reasoning format (the request's, else the server's) may put its system prompt first,
        where the messages hold no system or developer message.  The chat template runs in a
        worker thread: a message of megabytes takes seconds to tokenize, and on the event loop
        every other request and stream would wait for it."""
        options = self._options(ask)
        check_caps(options, self.args)
        if ask.n > self.args.max_n:
            raise InvalidRequest(
                f"n is {ask.n}, above this server's cap of {self.args.max_n}",
                param="n",
                code="over_server_cap",
            )
        profile = choose(ask.reasoning_format or self.args.reasoning_format, self.chat_template)
        tools = offered(ask.tools, ask.tool_choice, ask.function)
        check_tool_results(ask.messages)
        constraint = output_constraint(ask, tools, self.engine.tokenizer)
        verifier = self._verifier(options.verifier, ask.messages)
        messages, rendered = with_tools(list(ask.messages), tools, self.chat_template)
        messages = with_system_prompt(messages, profile)
        try:
            template = self.engine.tokenizer.apply_chat_template
            prompt = tuple(await run_in_threadpool(template, messages, rendered))
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="messages") from exc
        max_tokens, max_search_tokens = self._budgets(ask.max_tokens, options, len(prompt))
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
                drafts=ask.streamed,
                temperature=(
                    self.args.default_temperature if ask.temperature is None else ask.temperature
                ),
                top_p=1.0 if ask.top_p is None else ask.top_p,
                seed=ask.seed,
                stop=ask.stop,
                logprobs=_engine_logprobs(ask, options),
                constraint=constraint,
                verifier=verifier,
            )
        except SearchConfigError as exc:
            param = f"search.{exc.param}" if exc.param in SearchOptions.model_fields else exc.param
            raise InvalidRequest(str(exc), param=param) from exc
        return PreparedSearch(
            request_id=request_id,
            created=int(time.time()),
            model=ask.model,
            params=params,
            n=ask.n,
            reasoning_format=profile.name,
            include_usage=ask.include_usage,
            return_tree=options.return_tree,
            progress=options.progress,
            widens=(
                self.args.adaptive_parallel
                and options.method == "mcts"
                and ask.n == 1
                and "parallel" not in ask.search
            ),
            question=ask.messages[-1]["content"],
            tools=frozenset(t["function"]["name"] for t in tools),
            answered=answered_calls(ask.messages),
            parallel_tool_calls=ask.parallel_tool_calls is not False,
            top_logprobs=ask.top_logprobs,
        )

    def _options(self, ask: Ask) -> SearchOptions:
        """Server defaults, then the ``reasoning_effort`` preset, then the model alias's
        method, then the request's ``search``."""
        name = self.engine.model_name
        asked = ask.search
        update = {**preset(ask.reasoning_effort), **asked}
        if ask.model != name:
            base, _, alias = ask.model.rpartition(":")
            if base != name or alias not in ALIASES:
                raise ModelNotFound(ask.model)
            if asked.get("method", alias) != alias:
                raise InvalidRequest(
                    f"search.method '{update['method']}' contradicts the model alias '{ask.model}'",
                    param="search.method",
                )
            update["method"] = alias
        options = self.defaults.model_copy(update=update)
        if ask.timeout is not None:
            cap = self.args.max_search_seconds
            if cap is not None and ask.timeout > cap:
                raise InvalidRequest(
                    f"timeout is {ask.timeout}, above this server's cap of {cap}",
                    param="timeout",
                    code="over_server_cap",
                )
            deadline = min(options.max_seconds or ask.timeout, ask.timeout)
            options = options.model_copy(update={"max_seconds": deadline})
        return options

    def _verifier(self, asked: str | None, messages: Sequence[dict[str, Any]]) -> Verifier | None:
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
        return Verifier.in_chat(engine, engine.tokenizer.apply_chat_template, list(messages))

    def _widened(self, prepared: PreparedSearch) -> PreparedSearch:
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
        self, asked: int | None, options: SearchOptions, prompt_tokens: int
    ) -> tuple[int, int]:
        """The answer path's most tokens and the whole search's, per choice.  The ``asked``
        bound (chat's ``max_completion_tokens``, the Responses API's ``max_output_tokens``)
        bounds every token generated, as for OpenAI's reasoning models: the search's token
        budget is the smaller of it and ``search.max_search_tokens``, and the path cannot be
        longer either.  As before, a bound that does not fit the context after the prompt is
        refused (a larger search budget is ``search.max_search_tokens``)."""
        limit = self.engine.max_model_len
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

    async def events(self, prepared: PreparedSearch) -> AsyncIterator[SearchEvent]:
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

    def _keep_trace(self, prepared: PreparedSearch, result: SearchResult) -> None:
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

    async def records(self, prepared: PreparedSearch) -> AsyncGenerator[Shown]:
        """Run the search, once admitted (this generator starts when it is first read), as
        what its client sees: every surface's input."""
        prepared = self._widened(prepared)
        records = shown(prepared, self.events(prepared), self.engine.tokenizer)
        async with contextlib.aclosing(records) as stream:
            async for record in stream:
                yield record


def _engine_logprobs(ask: Ask, options: SearchOptions) -> int:
    """The top-k logprobs every engine call asks for: the rewards' (a search's rewards read
    that many alternatives, so a search keeps them), or more for plain sampling when the
    client asks for more ``top_logprobs``."""
    asked = ask.top_logprobs or 0
    if asked <= REWARD_TOP_K:
        return REWARD_TOP_K
    if options.method != "none":
        raise InvalidRequest(
            f"top_logprobs above {REWARD_TOP_K} needs method none: a search's rewards read the "
            f"top {REWARD_TOP_K} alternatives of each token",
            param="top_logprobs",
        )
    return asked
