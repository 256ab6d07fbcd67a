"""The transformers engine against the model's own logits, on the real default model."""

from __future__ import annotations

import asyncio
import time

import pytest
import torch

from search.engine import GenerationRequest
from server.engines.transformers_engine import TransformersEngine


def prompt(engine: TransformersEngine, text: str) -> tuple[int, ...]:
    return tuple(engine.tokenizer.apply_chat_template([{"role": "user", "content": text}]))


def generate(engine: TransformersEngine, *requests: GenerationRequest):  # type: ignore[no-untyped-def]
    return asyncio.run(engine.generate(list(requests)))


def test_logprobs_are_the_log_softmax_of_the_model_logits(engine: TransformersEngine) -> None:
    ids = prompt(engine, "Name a colour.")
    [[out]] = generate(engine, GenerationRequest(ids, max_tokens=12, seed=3, logprobs=5))
    full = torch.tensor([list(ids) + list(out.token_ids)])
    with torch.inference_mode():
        logits = engine.model(input_ids=full).logits[0].float()
    reference = torch.log_softmax(logits, dim=-1)
    for step, token in enumerate(out.logprobs):
        row = reference[len(ids) - 1 + step]
        assert token.logprob == pytest.approx(row[token.token_id].item(), abs=1e-3)
        values, indices = row.topk(5)
        assert [t for t, _ in token.top] == indices.tolist()
        assert [lp for _, lp in token.top] == pytest.approx(values.tolist(), abs=1e-3)


def test_logprobs_do_not_depend_on_temperature(engine: TransformersEngine) -> None:
    ids = prompt(engine, "Say hello.")
    [[cold]] = generate(engine, GenerationRequest(ids, max_tokens=6, temperature=0))
    [[hot]] = generate(engine, GenerationRequest(ids, max_tokens=1, temperature=1.7, seed=1))
    assert [t for t, _ in hot.logprobs[0].top] == [t for t, _ in cold.logprobs[0].top]
    hot_values = [lp for _, lp in hot.logprobs[0].top]
    assert hot_values == pytest.approx([lp for _, lp in cold.logprobs[0].top], abs=1e-4)


def test_batched_generation_equals_one_by_one_for_greedy(engine: TransformersEngine) -> None:
    requests = [
        GenerationRequest(prompt(engine, q), max_tokens=16, temperature=0)
        for q in ("What is the capital of France?", "Count to five.", "Hi")
    ]
    together = generate(engine, *requests)
    alone = [generate(engine, r)[0] for r in requests]
    for batched, single in zip(together, alone, strict=True):
        assert batched[0].token_ids == single[0].token_ids
        for a, b in zip(batched[0].logprobs, single[0].logprobs, strict=True):
            assert a.logprob == pytest.approx(b.logprob, abs=1e-3)


def test_n_samples_and_seeds_are_reproducible(engine: TransformersEngine) -> None:
    request = GenerationRequest(prompt(engine, "Tell me a story."), max_tokens=10, n=3, seed=11)
    first, second = generate(engine, request)[0], generate(engine, request)[0]
    assert len(first) == 3
    assert [c.token_ids for c in first] == [c.token_ids for c in second]
    assert len({c.token_ids for c in first}) > 1  # different samples, not copies


def test_stop_strings_end_generation_with_stop(engine: TransformersEngine) -> None:
    ids = prompt(engine, "What is the capital of France?")
    [[free]] = generate(engine, GenerationRequest(ids, max_tokens=30, temperature=0))
    assert "Paris" in free.text
    [[stopped]] = generate(
        engine, GenerationRequest(ids, max_tokens=30, temperature=0, stop=("Paris",))
    )
    assert stopped.finish_reason == "stop" and stopped.stop_reason == "Paris"
    assert stopped.text.endswith("Paris") or "Paris" in stopped.text[-8:]
    assert len(stopped.token_ids) < len(free.token_ids)


def test_stop_token_ids_and_length(engine: TransformersEngine) -> None:
    ids = prompt(engine, "What is the capital of France?")
    [[free]] = generate(engine, GenerationRequest(ids, max_tokens=30, temperature=0))
    stop_id = free.token_ids[2]
    [[stopped]] = generate(
        engine, GenerationRequest(ids, max_tokens=30, temperature=0, stop_token_ids=(stop_id,))
    )
    assert stopped.token_ids == free.token_ids[:3] and stopped.stop_reason == stop_id
    [[short]] = generate(engine, GenerationRequest(ids, max_tokens=2, temperature=0))
    assert short.finish_reason == "length" and len(short.token_ids) == 2
    assert free.finish_reason == "stop" and free.token_ids[-1] in engine.tokenizer.eos_token_ids


def test_cancelling_a_call_frees_the_engine(engine: TransformersEngine) -> None:
    ids = prompt(engine, "Write a long essay about the sea.")

    async def cancel_midway() -> float:
        task = asyncio.ensure_future(
            engine.generate([GenerationRequest(ids, max_tokens=2000, n=4, seed=1)])
        )
        await asyncio.sleep(1.0)
        assert engine.stats.requests_in_flight == 1
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert asyncio.run(cancel_midway()) < 1.0
    assert engine.stats.requests_in_flight == 0
    [[after]] = generate(engine, GenerationRequest(ids, max_tokens=3, temperature=0))
    assert len(after.token_ids) == 3
