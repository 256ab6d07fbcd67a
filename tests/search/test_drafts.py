"""A streamed sampling search shows its first sample while the engine call that draws it is
still running (scripted engine, gated: the call is held until the test has seen the draft)."""

from __future__ import annotations

import asyncio

import pytest

from search import AnswerDelta, DraftDelta, Finished, SearchParams, run_search
from search.drafts import INCOMPLETE, Draft
from search.events import SearchEvent
from tests.scripted import CharTokenizer, ScriptedEngine, scored

PROMPT = tuple(CharTokenizer().encode("Q? "))
SAMPLES = ["so 7", "so 9", "so 7"]


def test_a_draft_adds_only_whole_characters_that_extend_what_it_sent() -> None:
    async def check() -> None:
        draft = Draft(CharTokenizer())
        assert (draft.add("ab"), draft.add("abc" + INCOMPLETE), draft.add("abcd")) == (
            "ab",
            "",
            "cd",
        )
        assert (draft.add("xbcde"), draft.add("abcde")) == ("", "e")  # a rewrite waits

    asyncio.run(check())


@pytest.mark.parametrize("method", ["self_consistency", "best_of_n"])
def test_the_first_sample_streams_while_its_call_runs_and_changes_nothing(method: str) -> None:
    async def events(drafts: bool) -> tuple[list[SearchEvent], int]:
        engine = ScriptedEngine([scored(t, 0.8) for t in SAMPLES], gated=True)
        params = SearchParams(
            prompt_token_ids=PROMPT, method=method, samples=3, seed=2, drafts=drafts
        )
        stream = aiter(run_search(params, engine))
        seen = [await anext(stream)]  # Started
        if drafts:  # the draft arrives while the engine still holds the call
            seen.append(await anext(stream))
            assert isinstance(seen[-1], DraftDelta) and engine.calls == [1]
        engine.release()
        seen += [e async for e in stream]
        return seen, len(engine.calls)

    shown, calls = asyncio.run(events(drafts=True))
    plain, plain_calls = asyncio.run(events(drafts=False))
    draft = "".join(e.text for e in shown if isinstance(e, DraftDelta))
    assert draft == SAMPLES[0] and calls == plain_calls == 1
    assert not any(isinstance(e, DraftDelta) for e in plain)
    assert [e for e in shown if not isinstance(e, DraftDelta)] == plain
    assert isinstance(plain[-1], Finished) and any(isinstance(e, AnswerDelta) for e in plain)
