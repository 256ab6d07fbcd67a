"""Budget arithmetic on a fake clock: deadlines, token counts and cut calls, with no real
time involved."""

from __future__ import annotations

import asyncio

from search import Budget, GenerationRequest, SearchParams
from tests.scripted import CharTokenizer, FakeClock, ScriptedEngine, scored

PROMPT = tuple(CharTokenizer().encode("Q? "))
REQUEST = [GenerationRequest(PROMPT, max_tokens=8)]


def test_the_deadline_is_max_seconds_on_the_injected_clock() -> None:
    clock = FakeClock(now=1000.0)
    budget = Budget(SearchParams(prompt_token_ids=PROMPT, max_seconds=5), clock=clock)
    clock.advance(4.999)
    assert budget.exhausted() is None
    clock.advance(0.001)
    assert budget.exhausted() == "max_seconds"


def test_generated_tokens_count_against_the_token_budget() -> None:
    engine = ScriptedEngine([scored("abc", 0.9), scored("defg", 0.9)])
    budget = Budget(SearchParams(prompt_token_ids=PROMPT, max_search_tokens=9))
    asyncio.run(budget.generate(engine, REQUEST))
    assert (budget.generated, budget.remaining_tokens(), budget.exhausted()) == (4, 5, None)
    asyncio.run(budget.generate(engine, REQUEST))
    assert (budget.generated, budget.remaining_tokens()) == (9, 0)
    assert budget.exhausted() == "max_search_tokens"


def test_a_call_still_running_when_the_time_is_up_is_cancelled() -> None:
    engine = ScriptedEngine([scored("abc", 0.9)], gated=True)  # never released
    budget = Budget(SearchParams(prompt_token_ids=PROMPT, max_seconds=1), clock=engine.clock)
    engine.clock.advance(1)  # no time left: the call is given none
    assert asyncio.run(budget.generate(engine, REQUEST)) is None
    assert engine.cancelled == 1 and budget.generated == 0
    assert budget.exhausted() == "max_seconds"


def test_an_interrupt_cuts_a_running_call_and_stays_the_reason() -> None:
    engine = ScriptedEngine([scored("abc", 0.9)], gated=True)

    async def interrupted() -> object:
        interrupt = asyncio.Event()
        budget = Budget(SearchParams(prompt_token_ids=PROMPT), interrupt, engine.clock)
        call = asyncio.create_task(budget.generate(engine, REQUEST))
        await engine.started(1)
        interrupt.set()
        assert await call is None
        interrupt.clear()  # the cut is remembered, not read again
        return budget.exhausted()

    assert asyncio.run(interrupted()) == "interrupted"
    assert engine.cancelled == 1
