"""The sampling rules both local engines share: raw logprobs, top-k, temperature, top-p and
per-sample seeds, on fixed distributions."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from search.engine import GenerationRequest
from server.engines import sampling, tensor_sampling
from server.engines.samples import Sample
from server.engines.transformers_engine import TransformersEngine

PROBS = np.array([0.05, 0.5, 0.15, 0.3])  # token 1, then 3, then 2, then 0
VOCAB = 151_936  # Qwen2.5's: 1,187 blocks of sampling.BLOCK tokens


def spec(**fields: float | int | None) -> GenerationRequest:
    return GenerationRequest((1,), max_tokens=1, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("top_p", "kept"),
    [(1.0, [0, 1, 2, 3]), (0.97, [0, 1, 2, 3]), (0.9, [1, 2, 3]), (0.7, [1, 3]), (0.3, [1])],
)
def test_top_p_keeps_tokens_while_the_mass_before_them_is_within_it(
    top_p: float, kept: list[int]
) -> None:
    assert sampling.nucleus(PROBS * 7.0, top_p).tolist() == kept  # unnormalised: it is relative


def test_top_p_counts_the_long_tail_of_a_large_vocabulary() -> None:
    """151,935 tokens 16.8 nats below the best hold 0.75% of the mass; added up in float32 after
    the best token's weight of 1, each is below half a unit in the last place and vanishes, which
    shrank every top-p nucleus to the best token alone.  Both engines add up in float64."""
    weights = np.full(VOCAB, 5e-8, dtype=np.float32)
    weights[0] = 1.0
    total = weights.sum(dtype=np.float64)
    expected = 1 + int((0.995 * total - 1.0) / float(weights[1])) + 1  # the best, then the tail
    assert len(sampling.nucleus(weights, 0.995)) == pytest.approx(expected, abs=2)
    on_torch = tensor_sampling._nucleus(torch.from_numpy(weights)[None], torch.tensor([0.995]))
    assert int(on_torch.count_nonzero()) == pytest.approx(expected, abs=2)


def test_draws_follow_the_renormalised_nucleus() -> None:
    logprobs = np.log(PROBS).astype(np.float32)
    rng = np.random.default_rng(0)
    draws = Counter(sampling.choose(spec(top_p=0.7), logprobs, rng) for _ in range(4000))
    assert set(draws) == {1, 3}
    assert draws[1] / 4000 == pytest.approx(0.5 / 0.8, abs=0.03)


def test_temperature_sharpens_and_flattens() -> None:
    logprobs = np.log(PROBS).astype(np.float32)

    def share_of_best(temperature: float) -> float:
        rng = np.random.default_rng(1)
        request = spec(temperature=temperature)
        return sum(sampling.choose(request, logprobs, rng) == 1 for _ in range(2000)) / 2000

    assert share_of_best(1.0) == pytest.approx(0.5, abs=0.04)
    assert share_of_best(0.1) > 0.99
    expected = math.sqrt(0.5) / sum(math.sqrt(p) for p in PROBS)  # temperature 2: p ** (1/2)
    assert share_of_best(2.0) == pytest.approx(expected, abs=0.04)


def test_greedy_takes_the_most_likely_token() -> None:
    request = spec(temperature=0.0, seed=5)
    assert sampling.generator(request, 0) is None
    assert sampling.choose(request, np.log(PROBS), None) == 1


def test_sample_i_draws_from_seed_plus_i() -> None:
    request = spec(seed=7, n=3)
    for i in range(3):
        rng = sampling.generator(request, i)
        assert rng is not None
        assert rng.random() == np.random.default_rng(7 + i).random()


def pairwise_bound(exact: sampling.Array, width: int) -> sampling.Array:
    """How far numpy's float32 log-softmax may lie from the exact one, in the arithmetic's own
    terms (``eps``: float32's machine epsilon): ``x - max`` and ``- log S`` round once each
    (``|value| eps``); every ``exp`` is off by a few units in the last place (4 ``eps`` on S);
    numpy adds a row pairwise, 16 terms per lane within blocks of 128 and then halves
    (``(16 + log2 width) eps`` on S); ``log S`` rounds at ``|log S| <= log width``.  Doubled:
    a bound, not an estimate, whichever SIMD kernels this CPU picks."""
    eps = float(np.finfo(np.float32).eps)
    return 2 * eps * (2 * np.abs(exact) + 4 + 16 + 2 * math.log2(width))


def lanes_bound(exact: sampling.Array, width: int) -> sampling.Array:
    """The same for torch's float32 log-softmax, which adds a row in (at least 8) vector lanes,
    each in sequence: ``width / 8`` roundings of the running sum on S.  Tail terms below half a
    unit of a lane's sum vanish, so this is the bound that holds, not the typical error."""
    eps = float(np.finfo(np.float32).eps)
    return 2 * eps * (2 * np.abs(exact) + 4 + width / 8 + math.log2(width))


@pytest.mark.parametrize("width", [50, 1000, VOCAB])  # one short block; a tail block; Qwen's
@pytest.mark.parametrize("clustered", [False, True], ids=["spread", "clustered"])
def test_logprobs_and_top_k_agree_with_a_float64_reference(width: int, clustered: bool) -> None:
    """The top-k is found from group maxima: right whether the best tokens are spread over the
    vocabulary or all in one group (tokens ``t``, ``t + groups``, ...).  The reference is the
    float64 log-softmax; the top-k is checked by value (the k-th best value is continuous in the
    logits, so near ties cannot flip it) and each id by its own exact logprob."""
    logits = torch.randn(3, width, generator=torch.Generator().manual_seed(0))
    if clustered:
        logits[:, 10 + max(width // sampling.BLOCK, 1) * torch.arange(6)] += 20
    exact = torch.log_softmax(logits.double(), dim=-1).numpy()
    bound = pairwise_bound(exact, width)
    logprobs = sampling.log_softmax(logits.numpy())
    assert (np.abs(logprobs - exact) <= bound).all()
    candidates = sampling.top_candidates(logprobs, 5)
    assert candidates is not None
    for row in range(3):
        ranked = sampling.ranked(logprobs[row], candidates[row], 5)
        ids, values = [t for t, _ in ranked], np.array([lp for _, lp in ranked])
        assert len(set(ids)) == 5 and (np.diff(values) <= 0).all()
        best = np.sort(exact[row])[::-1][:5]
        assert (np.abs(values - best) <= 2 * bound[row][ids]).all()
        assert (np.abs(values - exact[row][ids]) <= bound[row][ids]).all()
    assert sampling.top_candidates(logprobs, 0) is None
    assert sampling.ranked(logprobs[0], None, 0) == ()


@pytest.mark.parametrize("width", [1000, VOCAB])
def test_a_draw_lands_where_the_running_sum_passes_it(width: int) -> None:
    """Blocks find the token a uniform number picks: the one a running sum over the whole
    vocabulary, token by token, would pick."""
    generator = np.random.default_rng(4)
    weights = np.exp(3 * generator.standard_normal(width)).astype(np.float32)
    weights[generator.random(width) < 0.3] = 0.0  # outside a nucleus
    running = np.cumsum(weights, dtype=np.float64)
    for uniform in [0.0, *generator.random(300), np.nextafter(1.0, 0.0)]:
        expected = int(np.searchsorted(running, uniform * running[-1], side="right"))
        assert sampling.draw(weights, uniform) == min(expected, int(np.flatnonzero(weights)[-1]))


def test_the_last_draw_never_lands_on_a_token_of_weight_zero() -> None:
    """Even where rounding takes the target to the whole mass (here forced with 1.0)."""
    weights = np.zeros(VOCAB, dtype=np.float32)
    weights[[3, 700, 5000]] = [0.2, 0.3, 0.5]
    assert sampling.draw(weights, np.nextafter(1.0, 0.0)) == 5000
    assert sampling.draw(weights, 1.0) == 5000
    assert sampling.draw(weights, 0.0) == 3


@pytest.mark.parametrize(
    "request_",
    [
        GenerationRequest((1,), max_tokens=50, n=64, temperature=0.8, top_p=0.9, seed=11),
        GenerationRequest((1,), max_tokens=50, n=64, temperature=1.3, seed=5, logprobs=3),
        GenerationRequest((1,), max_tokens=50, n=8, temperature=0.0, seed=2),
    ],
    ids=["top_p", "hot", "greedy"],
)
def test_the_transformers_engine_samples_as_llama_cpp_does_on_the_same_logits(
    transformers_engine: TransformersEngine, request_: GenerationRequest
) -> None:
    """The same logits and seed choose the same tokens, with the same logprobs and top-k,
    whether torch chooses them on the model's device (the transformers engine) or numpy on
    the host (llama.cpp's)."""
    vocab = transformers_engine.tokenizer.vocab_size
    logits = 4 * torch.randn(request_.n, vocab, generator=torch.Generator().manual_seed(3))

    def samples() -> list[Sample]:
        return [Sample(0, i, request_, sampling.generator(request_, i)) for i in range(request_.n)]

    by_torch, by_numpy = samples(), samples()
    tokens = transformers_engine._step(by_torch, logits)
    logprobs = sampling.log_softmax(logits.numpy())
    candidates = sampling.top_candidates(logprobs, request_.logprobs)
    assert candidates is not None
    for row, sample in enumerate(by_numpy):
        sample.advance(logprobs[row], candidates[row], transformers_engine.tokenizer)
    assert tokens.tolist() == [s.token_ids[0] for s in by_numpy]
    exact = torch.log_softmax(logits.double(), dim=-1).numpy()
    apart = lanes_bound(exact, vocab) + pairwise_bound(exact, vocab)  # each from the exact one
    for row, (torch_sample, numpy_sample) in enumerate(zip(by_torch, by_numpy, strict=True)):
        (mine,), (theirs,) = torch_sample.logprobs, numpy_sample.logprobs
        assert mine.token_id == theirs.token_id
        assert abs(mine.logprob - theirs.logprob) <= apart[row][mine.token_id]
        assert [t for t, _ in mine.top] == [t for t, _ in theirs.top]
        for (token, lp), (_, their_lp) in zip(mine.top, theirs.top, strict=True):
            assert abs(lp - their_lp) <= apart[row][token]


def test_a_step_mixes_greedy_and_sampled_rows_and_their_own_top_k(
    transformers_engine: TransformersEngine,
) -> None:
    """Rows of different calls share one step: a greedy row takes the argmax, a sampled row
    draws from its own stream, and each row keeps only its own number of alternatives."""
    vocab = transformers_engine.tokenizer.vocab_size
    logits = 4 * torch.randn(3, vocab, generator=torch.Generator().manual_seed(8))
    greedy = GenerationRequest((1,), max_tokens=5, temperature=0.0, logprobs=0)
    hot = GenerationRequest((1,), max_tokens=5, temperature=2.0, seed=1, logprobs=5)
    rows = [
        Sample(0, 0, greedy, None),
        Sample(1, 0, hot, sampling.generator(hot, 0)),
        Sample(1, 1, hot, sampling.generator(hot, 1)),
    ]
    transformers_engine._step(rows, logits)
    assert rows[0].token_ids == [int(logits[0].argmax())]
    assert rows[0].logprobs[0].top == ()
    assert [len(r.logprobs[0].top) for r in rows[1:]] == [5, 5]
    numpy_logprobs = sampling.log_softmax(logits.numpy())
    for j in (1, 2):
        expected = sampling.choose(hot, numpy_logprobs[j], sampling.generator(hot, j - 1))
        assert rows[j].token_ids == [expected]
