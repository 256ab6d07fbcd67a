"""The engine contract: every engine passes the same tests on the real default model.

Parametrised over the engines installed here (llama.cpp, the default, and transformers, the
reference).  Where an engine's arithmetic is not exact, the tolerance says why.  The vLLM engine
joins this suite where vLLM and CUDA are present.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

from search.engine import Completion, GenerationRequest, TokenLogprob
from server.engines.base import ServingEngine
from server.engines.prefix_cache import common_prefix
from server.engines.transformers_engine import TransformersEngine
from tests.waiting import until, wait_for

if TYPE_CHECKING:  # llama-cpp-python is absent where only the GPU engines run
    from server.engines.llamacpp.engine import LlamaCppEngine

# transformers: float32 logits, identical however the batch is made up.  llama.cpp: a call
# that runs alone on an empty cache matches a from-scratch scoring exactly, but once other
# sequences share its unified KV cache its attention rounds differently (seen: up to 0.3 nats
# on one token, with or without flash attention, f16 or f32 cache; exact with one thread).
# vLLM (float32 on the GPU) is held to the transformers engine on the same weights: GPU
# kernels sum in another order, nothing more.
TOLERANCE = {"llamacpp": 0.35, "transformers": 1e-3, "upstream": 0.35, "vllm": 0.02}
QUANTISATION_MEAN, QUANTISATION_MAX = 0.15, 1.0  # nats, llama.cpp vs transformers


@pytest.fixture(params=["llamacpp", "transformers", "upstream", "vllm"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine_under_test(kind: str, request: pytest.FixtureRequest) -> ServingEngine:
    name = {"llamacpp": "engine", "transformers": "transformers_engine"}.get(kind, f"{kind}_engine")
    engine: ServingEngine = request.getfixturevalue(name)
    return engine


@pytest.fixture
def scorer(
    kind: str, engine_under_test: ServingEngine, request: pytest.FixtureRequest
) -> ServingEngine:
    """The engine whose model does the arithmetic: the upstream's is the llama.cpp engine of
    the ponder it calls; vLLM's is scored from scratch by transformers on the same weights."""
    other = {"upstream": "engine", "vllm": "transformers_engine"}.get(kind)
    scoring: ServingEngine = request.getfixturevalue(other) if other else engine_under_test
    return scoring


def prompt(engine: ServingEngine, text: str) -> tuple[int, ...]:
    return tuple(engine.tokenizer.apply_chat_template([{"role": "user", "content": text}]))


def generate(engine: ServingEngine, *requests: GenerationRequest) -> list[list[Completion]]:
    return asyncio.run(engine.generate(list(requests)))


def reference_logprobs(engine: ServingEngine, token_ids: list[int]) -> np.ndarray[Any, Any]:
    """Log-softmax at every position of ``token_ids``, scored in one pass from scratch by the
    engine's own model (a fresh llama.cpp context, or a plain transformers forward)."""
    if isinstance(engine, TransformersEngine):
        with torch.inference_mode():
            ids = torch.tensor([token_ids], device=engine.device)
            logits = engine.model(input_ids=ids).logits[0].float()
        return torch.log_softmax(logits, dim=-1).cpu().numpy()
    import llama_cpp

    assert _is_llamacpp(engine)
    with _fresh_context(engine, len(token_ids)) as ctx:
        batch = llama_cpp.llama_batch_init(len(token_ids), 0, 1)
        batch.n_tokens = len(token_ids)
        for i, token in enumerate(token_ids):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, True
        assert llama_cpp.llama_decode(ctx, batch) == 0
        n_vocab = engine._n_vocab
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits(ctx), shape=(len(token_ids), n_vocab)
        ).astype(np.float64)
        llama_cpp.llama_batch_free(batch)
    peak = logits.max(axis=1, keepdims=True)
    return logits - peak - np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))


def _is_llamacpp(engine: ServingEngine) -> bool:
    return type(engine).__name__ == "LlamaCppEngine"


def empty_cache(scorer: ServingEngine) -> None:
    """Start llama.cpp from an empty KV cache, as on a fresh engine: its attention rounds
    differently once other sequences have filled it (see TOLERANCE), so what earlier tests left
    there would change this one's numbers.  Waits for what still runs (a search an earlier
    test's client left) to let go first."""
    if _is_llamacpp(scorer):
        wait_for(lambda: scorer.stats.requests_in_flight == 0, "the engine to be idle")
        scorer.reset_prefix_cache()  # type: ignore[attr-defined]


class _fresh_context:
    def __init__(self, engine: LlamaCppEngine, tokens: int) -> None:
        import llama_cpp

        params = llama_cpp.llama_context_default_params()
        params.n_ctx = params.n_batch = params.n_ubatch = max(tokens, 64)
        self.ctx = llama_cpp.llama_init_from_model(engine._scheduler._context.model, params)

    def __enter__(self) -> ctypes.c_void_p:
        return self.ctx  # type: ignore[no-any-return]

    def __exit__(self, *_: object) -> None:
        import llama_cpp

        llama_cpp.llama_free(self.ctx)


def test_logprobs_are_the_log_softmax_of_the_engines_own_scoring(
    engine_under_test: ServingEngine, scorer: ServingEngine, kind: str
) -> None:
    engine, tolerance = engine_under_test, TOLERANCE[kind]
    ids = prompt(engine, "Name a colour.")
    empty_cache(scorer)
    [[out]] = generate(engine, GenerationRequest(ids, max_tokens=12, seed=3, logprobs=5))
    reference = reference_logprobs(scorer, list(ids) + list(out.token_ids))
    for step, token in enumerate(out.logprobs):
        row = reference[len(ids) - 1 + step]
        assert token.logprob == pytest.approx(row[token.token_id], abs=tolerance)
        assert len(token.top) == 5
        assert [lp for _, lp in token.top] == sorted((lp for _, lp in token.top), reverse=True)
        best = np.sort(row)[::-1][:5]
        assert [lp for _, lp in token.top] == pytest.approx(best.tolist(), abs=tolerance)
        for top_id, top_lp in token.top:
            assert row[top_id] == pytest.approx(top_lp, abs=tolerance)


def test_llamacpp_agrees_with_transformers_on_the_same_weights(
    engine: LlamaCppEngine, transformers_engine: TransformersEngine
) -> None:
    """Both engines run the same GGUF weights: llama.cpp in Q4_1 with 8-bit activations,
    transformers dequantised to float32.  On the same path their logprobs agree within the
    quantisation noise of the activations."""
    ids = prompt(engine, "What is the capital of France?")
    [[out]] = generate(engine, GenerationRequest(ids, max_tokens=24, temperature=0))
    path = list(ids) + list(out.token_ids)
    ours = np.array(
        [reference_logprobs(engine, path)[len(ids) - 1 + i][t] for i, t in enumerate(out.token_ids)]
    )
    theirs = np.array(
        [
            reference_logprobs(transformers_engine, path)[len(ids) - 1 + i][t]
            for i, t in enumerate(out.token_ids)
        ]
    )
    gap = np.abs(ours - theirs)
    print(
        f"llama.cpp vs transformers, {len(gap)} tokens: mean {gap.mean():.4f}, max {gap.max():.4f}"
    )
    assert gap.mean() < QUANTISATION_MEAN and gap.max() < QUANTISATION_MAX


def test_logprobs_do_not_depend_on_temperature(
    engine_under_test: ServingEngine, scorer: ServingEngine, kind: str
) -> None:
    engine = engine_under_test
    ids = prompt(engine, "Say hello.")
    empty_cache(scorer)
    [[cold]] = generate(engine, GenerationRequest(ids, max_tokens=6, temperature=0))
    [[hot]] = generate(engine, GenerationRequest(ids, max_tokens=1, temperature=1.7, seed=1))
    assert [t for t, _ in hot.logprobs[0].top] == [t for t, _ in cold.logprobs[0].top]
    hot_values = [lp for _, lp in hot.logprobs[0].top]
    # vLLM reads the second call's prompt from its prefix cache and recomputes only the last
    # block, summing in another order (seen on an H200: 8e-4 nats); temperature 1.7 applied to
    # logprobs would move them by tenths of a nat
    same = 2e-3 if kind == "vllm" else 1e-4
    assert hot_values == pytest.approx([lp for _, lp in cold.logprobs[0].top], abs=same)


def test_batched_generation_equals_one_by_one_for_greedy(
    engine_under_test: ServingEngine, kind: str
) -> None:
    engine = engine_under_test
    requests = [
        GenerationRequest(prompt(engine, q), max_tokens=16, temperature=0)
        for q in ("What is the capital of France?", "Count to five.", "Hi")
    ]
    together = generate(engine, *requests)
    alone = [generate(engine, r)[0] for r in requests]
    for batched, single in zip(together, alone, strict=True):
        assert_same_greedy(batched[0], single[0], TOLERANCE[kind])


def test_a_call_joins_another_calls_batch_midway(
    engine_under_test: ServingEngine, scorer: ServingEngine, kind: str
) -> None:
    """Cross-request batching: a call that arrives while another is decoding shares its
    forward passes (rows of both in one step), and gets what it would have got alone."""
    engine = engine_under_test
    first = GenerationRequest(
        prompt(engine, "Count from one to fifty."), max_tokens=48, temperature=0
    )
    if kind == "vllm":  # a GPU decodes 48 tokens in a blink: eight long samples keep it busy
        first = GenerationRequest(
            prompt(engine, "Write a long essay about the sea."), max_tokens=1500, n=8, seed=1
        )
    second = GenerationRequest(prompt(engine, "Name three fruits."), max_tokens=8, temperature=0)
    [[alone]] = generate(engine, second)
    stats = scorer.stats
    before, _ = stats.batch_histogram()

    def decoded() -> float:
        """How far the engine has decoded: forward passes, or (vLLM, which counts none for
        ponder) its own generated-token counter, eight a step for the first call."""
        return _vllm_generated_tokens() if kind == "vllm" else stats.decode_steps

    async def second_joins() -> Completion:
        start = decoded()
        running = asyncio.ensure_future(engine.generate([first]))
        steps = 16 if kind == "vllm" else 2
        await until(  # the first call is decoding (polled often: it must not have ended yet)
            lambda: decoded() >= start + steps, "the first call to start decoding", 120, 0.002
        )
        [[joined]] = await engine.generate([second])
        assert not running.done()
        if kind == "vllm":  # its eight long samples are not the point
            running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running  # the engine is idle again for the next test
        return joined

    joined = asyncio.run(second_joins())
    assert_same_greedy(joined, alone, TOLERANCE[kind])
    if kind != "vllm":
        shared = stats.batch_histogram()[0] - before
        assert any(rows >= 2 for rows in shared), shared


def _vllm_generated_tokens() -> float:
    """vLLM's ``vllm:generation_tokens`` counter, which its stat logger bumps every step."""
    from prometheus_client import REGISTRY

    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "vllm:generation_tokens"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def test_a_vanishing_temperature_decodes_greedily(
    engine_under_test: ServingEngine, kind: str
) -> None:
    # found by the schema fuzzer: 5e-269 divided llama.cpp's logits into infinities (a 500)
    engine = engine_under_test
    ids = prompt(engine, "Count to five.")
    [[greedy]] = generate(engine, GenerationRequest(ids, max_tokens=8, temperature=0))
    [[tiny]] = generate(engine, GenerationRequest(ids, max_tokens=8, temperature=5e-269, seed=3))
    assert_same_greedy(tiny, greedy, TOLERANCE[kind])


def assert_same_greedy(a: Completion, b: Completion, tolerance: float) -> None:
    """Two greedy completions of one prompt agree: the same logprobs on their common prefix,
    and where they part, only at a near tie (both choices within the tolerance)."""
    same = common_prefix(a.token_ids, b.token_ids)
    for x, y in zip(a.logprobs[:same], b.logprobs[:same], strict=True):
        assert x.logprob == pytest.approx(y.logprob, abs=tolerance)
    if same < min(len(a.token_ids), len(b.token_ids)):
        top = dict(a.logprobs[same].top)
        assert b.token_ids[same] in top
        assert abs(top[a.token_ids[same]] - top[b.token_ids[same]]) < 2 * tolerance


def test_n_samples_and_seeds_are_reproducible(
    engine_under_test: ServingEngine, scorer: ServingEngine, kind: str
) -> None:
    """Same seed, same samples, from the same engine state.  llama.cpp's attention rounds
    differently as its shared KV cache fills (see TOLERANCE), which can move a sampled token,
    so its cache is reset before each call."""
    engine = engine_under_test
    request = GenerationRequest(prompt(engine, "Tell me a story."), max_tokens=10, n=3, seed=11)

    def fresh_call() -> list[Completion]:
        empty_cache(scorer)
        return generate(engine, request)[0]

    first, second = fresh_call(), fresh_call()
    assert len(first) == 3
    assert [c.token_ids for c in first] == [c.token_ids for c in second]
    assert len({c.token_ids for c in first}) > 1  # different samples, not copies


# the engines that can say (the upstream one by streaming its call)
@pytest.mark.parametrize("kind", ["llamacpp", "transformers", "upstream"])
def test_a_watch_hears_every_sample_grow_and_changes_nothing(
    engine_under_test: ServingEngine, scorer: ServingEngine, kind: str
) -> None:
    """``GenerationRequest.watch`` is told each sample's tokens after every token (what a
    streamed sampling search shows as it decodes), and the samples are those of the same call
    without it."""
    engine = engine_under_test
    heard: dict[int, list[tuple[int, ...]]] = defaultdict(list)

    def watch(index: int, tokens: Sequence[TokenLogprob]) -> None:
        heard[index].append(tuple(t.token_id for t in tokens))

    request = GenerationRequest(prompt(engine, "Tell me a story."), max_tokens=10, n=2, seed=11)
    empty_cache(scorer)
    plain = generate(engine, request)[0]
    empty_cache(scorer)
    watched = generate(engine, replace(request, watch=watch))[0]
    assert [c.token_ids for c in watched] == [c.token_ids for c in plain]
    for index, completion in enumerate(watched):
        ids = completion.token_ids
        assert heard[index] == [ids[:k] for k in range(1, len(ids) + 1)]


@pytest.mark.parametrize("kind", ["llamacpp", "transformers"])  # the engines that can stop one
def test_a_halt_ends_its_sample_there_and_leaves_the_others(
    engine_under_test: ServingEngine, scorer: ServingEngine, kind: str
) -> None:
    """``GenerationRequest.halt`` is asked after every token with the sample's logprobs so far;
    where it says so, that sample ends (``length``, no stop reason) as the same call's without
    a halt began, and the call's other samples run on as before.  It halts the first sample
    once its tokens so far are no other sample's."""
    engine = engine_under_test
    request = GenerationRequest(prompt(engine, "Tell me a story."), max_tokens=12, n=3, seed=11)
    empty_cache(scorer)
    plain = generate(engine, request)[0]
    first = plain[0].token_ids
    prefixes = [first[:k] for k in range(1, len(first))]
    at = next(k for k, p in enumerate(prefixes, 1) if all(c.token_ids[:k] != p for c in plain[1:]))
    asked: list[tuple[int, ...]] = []

    def halt(logprobs: Sequence[TokenLogprob]) -> bool:
        asked.append(ids := tuple(t.token_id for t in logprobs))
        return ids == first[:at]

    empty_cache(scorer)
    halted = generate(engine, replace(request, halt=halt))[0]
    assert halted[0].token_ids == first[:at]
    kept = zip(halted[0].logprobs, plain[0].logprobs[:at], strict=True)
    assert max(abs(a.logprob - b.logprob) for a, b in kept) <= TOLERANCE[kind]  # batch changed
    assert (halted[0].finish_reason, halted[0].stop_reason) == ("length", None)
    assert [c.token_ids for c in halted[1:]] == [c.token_ids for c in plain[1:]]
    for completion in halted:  # every token that did not end its sample was judged
        ids, stopped = completion.token_ids, completion.finish_reason == "stop"
        assert all(ids[:k] in asked for k in range(1, len(ids) + (not stopped)))


def test_a_prompt_longer_than_a_decode_batch_is_read_in_chunks(
    engine_under_test: ServingEngine, scorer: ServingEngine, kind: str
) -> None:
    """A prompt of more tokens than two llama.cpp decode steps take (512 each), alone on an
    idle engine: its first steps feed only prompt tokens, with nothing to sample yet."""
    engine = engine_under_test
    empty_cache(scorer)
    long = prompt(engine, "Repeat after me: " + "the cat sat on the mat. " * 150)
    assert len(long) > 2 * 512
    [[completion]] = generate(engine, GenerationRequest(long, max_tokens=4, temperature=0))
    assert 1 <= len(completion.token_ids) <= 4


def test_stop_strings_end_generation_with_stop(engine_under_test: ServingEngine, kind: str) -> None:
    engine = engine_under_test
    ids = prompt(engine, "What is 17*23?")
    [[free]] = generate(engine, GenerationRequest(ids, max_tokens=30, temperature=0))
    assert "=" in free.text  # "17*23 = 381." (sic)
    [[stopped]] = generate(
        engine, GenerationRequest(ids, max_tokens=30, temperature=0, stop=("=",))
    )
    assert stopped.finish_reason == "stop" and stopped.stop_reason == "="
    assert stopped.text.rstrip().endswith("=")
    assert len(stopped.token_ids) < len(free.token_ids)


def test_stop_token_ids_and_length(engine_under_test: ServingEngine, kind: str) -> None:
    engine = engine_under_test
    ids = prompt(engine, "What is 17*23?")
    [[free]] = generate(engine, GenerationRequest(ids, max_tokens=30, temperature=0))
    stop_id = free.token_ids[2]
    [[stopped]] = generate(
        engine, GenerationRequest(ids, max_tokens=30, temperature=0, stop_token_ids=(stop_id,))
    )
    assert stopped.token_ids == free.token_ids[:3] and stopped.stop_reason == stop_id
    [[short]] = generate(engine, GenerationRequest(ids, max_tokens=2, temperature=0))
    assert short.finish_reason == "length" and len(short.token_ids) == 2
    assert free.finish_reason == "stop" and free.token_ids[-1] in engine.tokenizer.eos_token_ids


def test_cancelling_a_call_frees_the_engine(
    engine_under_test: ServingEngine, scorer: ServingEngine, kind: str
) -> None:
    engine = engine_under_test
    ids = prompt(engine, "Write a long essay about the sea.")

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(
            engine.generate([GenerationRequest(ids, max_tokens=2000, n=4, seed=1)])
        )
        await until(lambda: engine.stats.requests_in_flight == 1, "the call to reach the engine")
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert engine.stats.requests_in_flight == 0
    # an upstream's replica notices its client left at its next disconnect poll
    wait_for(lambda: scorer.stats.requests_in_flight == 0, "the scoring engine to let go")
    [[after]] = generate(engine, GenerationRequest(ids, max_tokens=3, temperature=0))
    assert len(after.token_ids) == 3


def test_a_prompt_extending_a_finished_path_reuses_its_prefix(
    engine_under_test: ServingEngine, scorer: ServingEngine, kind: str
) -> None:
    """What an MCTS expansion does: continue a path the engine has just generated.  The cached
    prefix is reused, and the continuation is the one the first call went on to produce."""
    engine = engine_under_test
    ids = prompt(engine, "Write a poem about the moon.")
    [[path]] = generate(engine, GenerationRequest(ids, max_tokens=12, temperature=0))
    assert len(path.token_ids) == 12
    stats = engine.stats if kind == "vllm" else scorer.stats
    cached, computed = stats.prompt_tokens_cached, stats.prompt_tokens_computed
    extended = ids + path.token_ids[:6]
    [[rest]] = generate(engine, GenerationRequest(extended, max_tokens=6, temperature=0))
    cached, computed = stats.prompt_tokens_cached - cached, stats.prompt_tokens_computed - computed
    if kind == "vllm":  # vLLM caches whole KV blocks: the last, partial one is computed again
        assert 0 < cached < len(extended) and cached + computed == len(extended)
    else:
        assert (cached, computed) == (len(extended) - 1, 1)
    assert rest.token_ids == path.token_ids[6:]
    expected = [t.logprob for t in path.logprobs[6:]]
    assert [t.logprob for t in rest.logprobs] == pytest.approx(expected, abs=TOLERANCE[kind])
