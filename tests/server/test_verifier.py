"""The verifier against a live server and the real test model: ``search.verifier`` scores each
whole answer by a judge's P(True) (the model that answered, a ``--verifier`` model, or one
served upstream), the answer is the one it trusts most, streamed as unstreamed, and a judge
that is missing, misused or down gets a clear error while the server stays healthy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import openai
import pytest

from search.engine import Completion, GenerationRequest
from search.methods.sampling import WHOLE_ANSWER_TOKENS
from search.verifier import judge_chat, p_yes
from server.args import ServerArgs
from server.engines import load_engine
from server.engines.llamacpp.engine import LlamaCppEngine
from server.engines.upstream_engine import UpstreamEngine
from tests.conftest import TEST_MODEL, LiveServer

QUESTION = "What is 3 + 4? Answer in one short sentence."
ASK: Any = [{"role": "user", "content": QUESTION}]
# answers of one line, and a budget with room for three whole ones: one wave of them all
ONE_LINE: Any = {"stop": ["\n"]}
ROOM = {"max_search_tokens": 3 * WHOLE_ANSWER_TOKENS}
JUDGED = {"method": "best_of_n", "samples": 3, "verifier": "judge", "return_tree": True, **ROOM}


class Recording:
    """The test engine as a judge, keeping every request it is asked and what it answered."""

    def __init__(self, engine: LlamaCppEngine) -> None:
        self.engine = engine
        self.asked: list[tuple[GenerationRequest, Completion]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        outputs = await self.engine.generate(requests)
        self.asked += [(r, c) for r, (c,) in zip(requests, outputs, strict=True)]
        return outputs


@pytest.fixture(scope="module")
def judge(engine: LlamaCppEngine) -> Recording:
    return Recording(engine)


@pytest.fixture(scope="module")
def judged(engine: LlamaCppEngine, judge: Recording) -> Iterator[LiveServer]:
    """A server whose ``--verifier`` is the test model again, on the same engine."""
    with LiveServer(engine, judge=judge) as live:  # type: ignore[arg-type]
        yield live


def ask(server: LiveServer, search: dict[str, Any], stream: bool = False) -> Any:
    """The test's question with these search options: the response, or a stream's chunks."""
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0) as client:
        response = client.chat.completions.create(
            model=TEST_MODEL,
            messages=ASK,
            temperature=1.0,
            seed=7,
            stream=stream,
            extra_body={"search": search},
            **ONE_LINE,
        )
        return list(response) if stream else response


def test_best_of_n_answers_with_the_sample_its_judge_trusts_most(
    judged: LiveServer, judge: Recording, engine: LlamaCppEngine
) -> None:
    judge.asked.clear()
    response = ask(judged, JUDGED)
    search = response.model_extra["search"]
    samples = [node for node in search["tree"] if node["parent"] is not None]
    assert len(samples) == 3
    ended = [node for node in samples if node["terminal"]] or samples
    chosen = next(node for node in samples if node["chosen"])
    assert chosen["value"] == max(node["value"] for node in ended)
    assert search["reward"] == pytest.approx(chosen["value"])
    assert search["chosen_by"] == "verifier"
    # the judge was asked once per answer, in the request's chat, and each value is the
    # probability of "Yes" against "No" it answered
    template = engine.tokenizer.apply_chat_template
    assert [r.prompt_token_ids for r, _ in judge.asked] == [
        tuple(template(judge_chat(ASK, node["text"]))) for node in ended
    ]
    assert {(r.max_tokens, r.temperature) for r, _ in judge.asked} == {(1, 0.0)}
    verdicts = [p_yes(completion, engine.tokenizer) for _, completion in judge.asked]
    assert [node["value"] for node in ended] == verdicts
    assert all(0 <= v <= 1 for v in verdicts)


def test_a_judged_vote_streams_what_it_answers_unstreamed(
    judged: LiveServer, engine: LlamaCppEngine
) -> None:
    search = {
        "method": "self_consistency",
        "samples": 3,
        "voting": "weighted",
        "verifier": "self",
        **ROOM,
    }
    judged.fresh(engine)  # both runs start from the same engine state
    whole = ask(judged, search).choices[0].message
    judged.fresh(engine)
    chunks = ask(judged, search, stream=True)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == whole.content


@pytest.mark.parametrize(
    ("search", "code"),
    [
        ({"method": "best_of_n", "verifier": "judge"}, "verifier_not_configured"),
        ({"method": "mcts", "verifier": "self"}, None),
        ({"method": "best_of_n", "verifier": "oracle"}, None),
    ],
)
def test_a_missing_misused_or_unknown_verifier_is_a_400_naming_it(
    http: httpx.Client, search: dict[str, Any], code: str | None
) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={"model": TEST_MODEL, "messages": ASK, "max_tokens": 8, "search": search},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "search.verifier"
    assert error["type"] == "invalid_request_error"
    if code:
        assert error["code"] == code
    assert http.get("/health").status_code == 200


def test_a_judge_served_upstream_judges_and_a_judge_gone_down_is_a_503_naming_it(
    engine: LlamaCppEngine, upstream_engine: UpstreamEngine
) -> None:
    with LiveServer(engine, judge=upstream_engine) as live:
        search = ask(live, JUDGED).model_extra["search"]
        assert 0 <= search["reward"] <= 1
    with LiveServer(engine) as fleet:  # a judge's fleet that then goes away
        judge = load_engine(ServerArgs(upstreams=[fleet.url], model=TEST_MODEL))
    try:
        with (
            LiveServer(engine, judge=judge) as live,
            httpx.Client(base_url=live.url, timeout=120) as http,
        ):
            response = http.post(
                "/v1/chat/completions",
                json={"model": TEST_MODEL, "messages": ASK, "search": JUDGED, **ONE_LINE},
            )
            assert response.status_code == 503
            error = response.json()["error"]
            assert (error["param"], error["code"]) == ("search.verifier", "verifier_fault")
            assert http.get("/health").status_code == 200  # the policy's engine is fine
            plain = {"model": TEST_MODEL, "messages": ASK, "max_tokens": 8}
            assert http.post("/v1/chat/completions", json=plain).status_code == 200
    finally:
        judge.close()


def test_a_default_that_asks_for_a_judge_needs_one() -> None:
    with pytest.raises(ValueError, match="verifier"):
        ServerArgs(search_defaults={"verifier": "judge"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--verifier"):
        ServerArgs(verifier_upstreams=["http://127.0.0.1:1"])
