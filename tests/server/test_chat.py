"""Chat completions through the official openai client against a live server."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from search.consensus import is_free_text
from search.extract import final_answer
from server.args import ServerArgs
from server.engines.base import ServingEngine
from server.engines.llamacpp.engine import LlamaCppEngine
from server.openai.shown import DRAFT_SEPARATOR
from tests.conftest import TINY_SEARCH, LiveServer

QUESTION = [{"role": "user", "content": "What is 17*23?"}]


def test_mcts_answer_with_reasoning_and_search_object(
    client: openai.OpenAI, model_name: str, engine: ServingEngine
) -> None:
    r = client.chat.completions.create(
        model=model_name,
        messages=QUESTION,
        seed=5,
        max_completion_tokens=200,
        extra_body={"search": TINY_SEARCH},
    )
    message = r.choices[0].message
    assert r.object == "chat.completion" and r.model == model_name
    assert message.content
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == extra["reasoning"]
    search = (r.model_extra or {})["search"]
    assert search["method"] == "mcts"
    # at least the root and one child: a round may stop at the token bound, and children whose
    # first actions are identical merge, so no larger count holds on every CPU
    assert search["iterations"] >= 1 and search["nodes"] >= 2
    assert 0 < search["reward"] <= 1
    # usage counts are the real token counts; completion tokens are all the search generated
    prompt = engine.tokenizer.apply_chat_template(QUESTION)
    assert r.usage.prompt_tokens == len(prompt)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.completion_tokens == search["generated_tokens"]
    assert 0 < r.usage.completion_tokens <= 200
    # reasoning tokens are the generated tokens that are not in the visible answer
    reasoning_tokens = r.usage.completion_tokens_details.reasoning_tokens
    assert 0 <= reasoning_tokens < r.usage.completion_tokens
    # the answer's own tokens: re-encoding its text gives the canonical tokenization, which a
    # sampled text need not have (seen: 19 sampled tokens re-encoded as 16), never a longer one
    # but for a token split where reasoning and answer meet, and the whitespace stripped
    answer_tokens = r.usage.completion_tokens - reasoning_tokens
    assert 0 < len(engine.tokenizer.encode(message.content)) <= answer_tokens + 2


def test_streaming_sends_reasoning_before_content_and_usage_last(
    client: openai.OpenAI, server: LiveServer, model_name: str, engine: LlamaCppEngine
) -> None:
    # llama.cpp rounds a little differently as its KV cache fills, which can move a sampled
    # token: both runs below start from an empty cache so the same seed means the same search
    server.fresh(engine)
    started = time.monotonic()
    stream = client.chat.completions.create(
        model=f"{model_name}:mcts",
        messages=QUESTION,
        seed=5,
        max_tokens=120,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"search": TINY_SEARCH},
    )
    kinds: list[str] = []
    arrivals: list[float] = []
    reasoning = content = ""
    finish = usage = search = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
            continue
        delta = chunk.choices[0].delta
        extra = delta.model_extra or {}
        if extra.get("reasoning_content"):
            assert extra["reasoning"] == extra["reasoning_content"]
            kinds.append("reasoning")
            arrivals.append(time.monotonic() - started)
            reasoning += extra["reasoning_content"]
        if delta.content:
            kinds.append("content")
            arrivals.append(time.monotonic() - started)
            content += delta.content
        if chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
            search = (chunk.model_extra or {}).get("search")
    # an answer, and no reasoning after it (a search may leave none before it either)
    assert "content" in kinds and "reasoning" not in kinds[kinds.index("content") :]
    assert arrivals[0] < arrivals[-1]  # the first step went out before the search ended
    assert finish in ("stop", "length") and search is not None
    assert usage is not None and usage.completion_tokens <= 120
    # streaming and non-streaming runs of the same seeded search give the same answer
    server.fresh(engine)
    r = client.chat.completions.create(
        model=model_name,
        messages=QUESTION,
        seed=5,
        max_tokens=120,
        extra_body={"search": TINY_SEARCH},
    )
    assert r.choices[0].message.content == content
    assert (r.choices[0].message.model_extra or {})["reasoning_content"] == reasoning
    assert r.usage.completion_tokens == usage.completion_tokens


SEEDED_SEARCHES: dict[str, dict[str, object]] = {
    "none": {"method": "none", "step_tokens": 8},  # streamed, it goes out 8 tokens at a time
    "mcts": TINY_SEARCH,
    "best_of_n": {"method": "best_of_n", "samples": 2},
    "self_consistency": {"method": "self_consistency", "samples": 2},
    "beam": {
        "method": "beam",
        "granularity": "mini_step",
        "step_tokens": 8,
        "beam_width": 2,
        "branching": 2,
    },
}


@pytest.mark.parametrize("method", SEEDED_SEARCHES)
def test_a_seeded_answer_is_the_same_streamed_or_not(
    client: openai.OpenAI, server: LiveServer, model_name: str, engine: LlamaCppEngine, method: str
) -> None:
    """The README's promise, for every method, sampling at temperature 0.8."""
    asked: dict[str, Any] = {
        "model": model_name,
        "messages": QUESTION,
        "seed": 7,
        "temperature": 0.8,
        "max_tokens": 24,
        "extra_body": {"search": SEEDED_SEARCHES[method]},
    }
    server.fresh(engine)  # both runs start from the same engine state
    reasoning = content = ""
    for chunk in client.chat.completions.create(**asked, stream=True):
        if chunk.choices:
            delta = chunk.choices[0].delta
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            content += delta.content or ""
    server.fresh(engine)
    message = client.chat.completions.create(**asked).choices[0].message
    thought = (message.model_extra or {}).get("reasoning_content") or ""
    assert message.content == content
    assert content
    if method in ("best_of_n", "self_consistency"):  # the stream showed a draft first
        assert reasoning.startswith(thought) or reasoning.endswith(DRAFT_SEPARATOR + thought)
    else:
        assert reasoning == thought


def test_the_default_streams_its_first_sample_as_it_decodes_and_answers_as_unstreamed(
    client: openai.OpenAI, server: LiveServer, model_name: str, engine: LlamaCppEngine
) -> None:
    """A streamed request that names no method shows its first sample while it decodes, in
    many reasoning chunks before any content, then the chosen sample's reasoning unless the
    draft showed it; its answer is the unstreamed one of the same seed."""
    asked: dict[str, Any] = {
        "model": model_name,
        "messages": QUESTION,
        "seed": 11,
        "temperature": 0.8,
        "max_tokens": 4 * 48,
        "extra_body": {"search": {"return_tree": True}},
    }
    server.fresh(engine)
    drafts, content, info = [], "", {}
    for chunk in client.chat.completions.create(**asked, stream=True):
        info = (chunk.model_extra or {}).get("search") or info
        if chunk.choices:
            delta = chunk.choices[0].delta
            thought = (delta.model_extra or {}).get("reasoning_content")
            if thought and not content:
                drafts.append(thought)
            content += delta.content or ""
    server.fresh(engine)
    message = client.chat.completions.create(**asked).choices[0].message
    assert info["method"] == "self_consistency" and message.content == content
    first = next(n for n in info["tree"] if n["parent"] is not None)
    streamed, chosen = "".join(drafts), (message.model_extra or {}).get("reasoning_content") or ""
    assert streamed.startswith(first["text"])
    pieces = [len("".join(drafts[:i])) for i in range(1, len(drafts) + 1)]
    assert sum(end <= len(first["text"]) for end in pieces) > 1  # it came in as it decoded
    shown = first["text"] if first["text"].startswith(chosen) else first["text"] + DRAFT_SEPARATOR
    assert streamed == shown + ("" if shown == first["text"] else chosen)


def test_method_none_is_plain_generation(
    client: openai.OpenAI, http: httpx.Client, model_name: str, engine: LlamaCppEngine
) -> None:
    """The answer is what /v1/completions gives for the chat-templated prompt, greedily, from
    the same engine state; no search ran, so nothing is reasoning."""
    engine.reset_prefix_cache()
    r = client.chat.completions.create(
        model=f"{model_name}:none", messages=QUESTION, temperature=0, max_tokens=30
    )
    engine.reset_prefix_cache()
    prompt = list(engine.tokenizer.apply_chat_template(QUESTION))
    body = {"model": model_name, "prompt": prompt, "temperature": 0, "max_tokens": 30}
    plain = http.post("/v1/completions", json=body).json()["choices"][0]
    assert r.choices[0].message.content == plain["text"].strip() and plain["text"].strip()
    assert (r.model_extra or {})["search"]["method"] == "none"
    assert (r.model_extra or {})["search"]["nodes"] == 0
    assert r.usage.completion_tokens_details.reasoning_tokens == 0


def test_a_request_without_temperature_samples_at_the_servers_default(
    engine: ServingEngine, model_name: str
) -> None:
    """Not at OpenAI's 1.0 but at ``--default-temperature``: on a server whose default is 0,
    three choices of a request that names no temperature are one greedy answer, the one an
    explicit temperature 0 gives; its own temperature still wins."""
    question = [{"role": "user", "content": "Write a poem about the sea."}]
    with (
        LiveServer(engine, ServerArgs(default_temperature=0)) as live,
        openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0) as client,
    ):

        def answers(**sampling: Any) -> list[str]:
            r = client.chat.completions.create(
                model=f"{model_name}:none", messages=question, max_tokens=24, n=3, **sampling
            )
            return [c.message.content or "" for c in r.choices]

        unset, greedy = answers(), answers(temperature=0)
        assert len(set(unset)) == 1 and unset == greedy
        assert len(set(answers(temperature=1.5, seed=3))) > 1


def test_stop_strings_are_cut_from_the_answer(
    client: openai.OpenAI, model_name: str, engine: LlamaCppEngine
) -> None:
    """The stop string is one the greedy answer holds (which one is the CPU's rounding's): the
    answer stops there, without it."""

    def answer(**stop: Any) -> tuple[str, str | None]:
        engine.reset_prefix_cache()  # each greedy run from the same engine state
        r = client.chat.completions.create(
            model=f"{model_name}:none", messages=QUESTION, temperature=0, max_tokens=30, **stop
        )
        return r.choices[0].message.content or "", r.choices[0].finish_reason

    free, _ = answer()
    stop = free[len(free) // 2]  # a character from the answer's middle
    cut, finish = answer(stop=[stop])
    assert finish == "stop" and cut == free[: free.index(stop)]


def test_models_lists_the_served_name_and_aliases(client: openai.OpenAI, model_name: str) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == model_name
    assert f"{model_name}:mcts" in ids and f"{model_name}:none" in ids


def test_health(http: httpx.Client) -> None:
    assert http.get("/health").json() == {"status": "ok"}


def metric(text: str, name: str) -> float:
    """Value of one sample line of a Prometheus exposition; 0.0 before it first appears."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_move_after_a_request(
    http: httpx.Client, client: openai.OpenAI, model_name: str
) -> None:
    requests_ok = 'ponder_requests_total{method="mcts",status="200"}'
    rollout_tokens = 'ponder_generated_tokens_total{phase="rollout"}'
    before = http.get("/metrics").text
    r = client.chat.completions.create(
        model=model_name,
        messages=QUESTION,
        seed=1,
        max_tokens=64,
        extra_body={"search": TINY_SEARCH},
    )
    after = http.get("/metrics").text
    assert r.usage is not None  # every token billed was generated by the engine
    engine_tokens = "ponder_engine_generated_tokens_total"
    spent = metric(after, engine_tokens) - metric(before, engine_tokens)
    assert spent >= r.usage.completion_tokens > 0
    for name in (
        "ponder_search_duration_seconds_count",
        "ponder_search_iterations_count",
        "ponder_tree_nodes_count",
        "ponder_reward_count",
        "ponder_time_to_first_token_seconds_count",
    ):
        assert (
            metric(after, f'{name}{{method="mcts"}}')
            == metric(before, f'{name}{{method="mcts"}}') + 1
        )
    assert metric(after, requests_ok) == metric(before, requests_ok) + 1
    assert metric(after, rollout_tokens) > metric(before, rollout_tokens)
    assert "ponder_requests_in_flight 0.0" in after
    # the engine's side: a search re-reads its prompt, so most prompt tokens come from cache
    computed, cached = (
        metric(after, f'ponder_prompt_tokens_total{{source="{s}"}}')
        - metric(before, f'ponder_prompt_tokens_total{{source="{s}"}}')
        for s in ("computed", "cached")
    )
    assert cached > computed > 0
    passes = metric(after, "ponder_engine_batch_size_count")
    assert passes > metric(before, "ponder_engine_batch_size_count")
    assert metric(after, 'ponder_engine_batch_size_bucket{le="+Inf"}') == passes


@pytest.mark.parametrize(
    ("alias", "search"),
    [
        ("best_of_n", {"samples": 2}),
        ("self_consistency", {"samples": 3, "reward": "min_step"}),
        (
            "self_consistency",
            {
                "samples": 3,
                "voting": "filtered",
                "keep": 0.5,
                "reward": "lowest_group",
                "window": 4,
            },
        ),
        ("beam", {"beam_width": 2, "branching": 2, "granularity": "mini_step", "step_tokens": 8}),
    ],
)
def test_every_method_answers_through_its_alias(
    client: openai.OpenAI, model_name: str, alias: str, search: dict[str, object]
) -> None:
    r = client.chat.completions.create(
        model=f"{model_name}:{alias}",
        messages=QUESTION,
        seed=2,
        max_tokens=16,
        extra_body={"search": search},
    )
    info = (r.model_extra or {})["search"]
    assert info["method"] == alias
    assert r.choices[0].message.content
    assert 0 < info["reward"] <= 1
    assert 0 < r.usage.completion_tokens <= 16
    assert info["generated_tokens"] == r.usage.completion_tokens


@pytest.mark.parametrize(
    "question", ["What is 2+3? Answer with the number.", "Say hello in French, in one word."]
)
def test_self_consistency_says_how_it_chose_by_the_rule_its_samples_meet(
    client: openai.OpenAI, model_name: str, question: str
) -> None:
    """``search.chosen_by`` is ``consensus`` exactly when most samples' final answers (of those
    that ended, else all) are free text; otherwise a vote, or the reward when none states one.
    Checked against the samples themselves, read back from the returned tree."""
    r = client.chat.completions.create(
        model=model_name,
        messages=[{"role": "user", "content": question}],
        seed=5,
        max_tokens=4 * 48,
        extra_body={"search": {"method": "self_consistency", "return_tree": True}},
    )
    info = (r.model_extra or {})["search"]
    samples = [n for n in info["tree"] if n["parent"] is not None]
    assert 1 <= len(samples) == info["iterations"] <= 4
    voters = [n for n in samples if n["terminal"]] or samples
    found = [final_answer(n["text"]) for n in voters]
    if is_free_text([f.kind if f else None for f in found]):
        assert info["chosen_by"] == "consensus"
    else:
        stated = any(f is not None for f in found)
        assert info["chosen_by"] == ("vote" if stated else "reward")
    chosen = next(n for n in samples if n["chosen"])
    assert r.choices[0].message.content and r.choices[0].message.content in chosen["text"]


def test_samples_that_halt_mid_answer_cost_only_their_tokens_and_stream_as_they_answer(
    client: openai.OpenAI, server: LiveServer, model_name: str, engine: LlamaCppEngine
) -> None:
    """DeepConf online on the served engine: two warm-up samples set the bar near the more
    confident one's lowest window (``halt_keep`` 0.05), and llama.cpp stops each later sample
    where its window falls below it (seen: one of two, at 58 tokens), so the search spends
    exactly the tokens its samples kept; a sample it stopped is chosen only when none ended;
    the streamed answer is the unstreamed one of the same seed."""
    search = {"samples": 4, "warmup": 2, "halt_keep": 0.05, "window": 8, "return_tree": True}
    asked: dict[str, Any] = {
        "model": model_name,
        "messages": QUESTION,
        "seed": 7,
        "max_tokens": 600,
        "extra_body": {"search": search},
    }
    server.fresh(engine)
    content = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(**asked, stream=True)
        if chunk.choices
    )
    server.fresh(engine)
    r = client.chat.completions.create(**asked)
    assert r.choices[0].message.content == content and content
    info = (r.model_extra or {})["search"]
    samples = [n for n in info["tree"] if n["parent"] is not None]
    assert len(samples) == info["iterations"] == 4
    assert sum(n["tokens"] for n in samples) == info["generated_tokens"]
    assert r.usage.completion_tokens == info["generated_tokens"]
    chosen = next(n for n in samples if n["chosen"])
    assert chosen["terminal"] or not any(n["terminal"] for n in samples)
