"""The rules of :mod:`server.engines.sampling`, batched in torch on the model's device: the
transformers engine's logits never leave the GPU; only each row's chosen token, its logprob and
its top-k cross to the host.  Sampling a 151k-token vocabulary row by row in numpy cost about a
second a step at a few hundred rows on an H200 (2026-11-26), which made the GPU slower than
llama.cpp on two CPU cores.  Each sampled row still draws its one uniform number from its own
numpy stream (``seed + i``), so the same logits and seed choose the same token as llama.cpp's
engine, up to float rounding at a draw's boundary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from server.engines.samples import Sample
from server.engines.sampling import Ranked


@dataclass(frozen=True, slots=True)
class Chosen:
    """One step's picks, on the host: row ``j`` chose ``tokens[j]`` with raw logprob
    ``logprobs[j]``, and ``top[j]`` is its top-k, best first."""

    tokens: list[int]
    logprobs: list[float]
    top: list[Ranked]


def choose(samples: Sequence[Sample], logits: torch.Tensor) -> tuple[torch.Tensor, Chosen]:
    """Every row's next token from ``logits`` (one row per sample): the tokens on the logits'
    device (to feed the model) and the picks on the host (to record)."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # raw: rewards ignore temperature
    allowed = _guided(samples, logprobs)
    tokens = allowed.argmax(dim=-1)
    drawn = [j for j, sample in enumerate(samples) if sample.rng is not None]
    if drawn:
        rows = torch.tensor(drawn, device=logits.device)
        tokens[rows] = _draw([samples[j] for j in drawn], allowed[rows])
    picked = logprobs.gather(1, tokens.unsqueeze(1)).squeeze(1)
    k = max(sample.spec.logprobs for sample in samples)
    top: list[Ranked] = [()] * len(samples)
    if k:
        values, ids = logprobs.topk(min(k, logprobs.shape[-1]), dim=-1)
        pairs = zip(ids.tolist(), values.tolist(), strict=True)
        top = [
            tuple(zip(row_ids[: s.spec.logprobs], row_values[: s.spec.logprobs], strict=True))
            for s, (row_ids, row_values) in zip(samples, pairs, strict=True)
        ]
    return tokens, Chosen(tokens.tolist(), picked.tolist(), top)


def _guided(samples: Sequence[Sample], logprobs: torch.Tensor) -> torch.Tensor:
    """``logprobs``, or where some samples are guided a copy with each one's forbidden
    tokens at ``-inf`` (the masks are made on the host: a few rows of bits)."""
    guided = [(j, sample.guide) for j, sample in enumerate(samples) if sample.guide is not None]
    if not guided:
        return logprobs
    width = logprobs.shape[-1]
    masks = np.stack([guide.allowed(width) for _, guide in guided])
    rows = torch.tensor([j for j, _ in guided], device=logprobs.device)
    forbidden = ~torch.from_numpy(masks).to(logprobs.device)
    allowed = logprobs.clone()
    allowed[rows] = allowed[rows].masked_fill(forbidden, float("-inf"))
    return allowed


def _draw(samples: Sequence[Sample], logprobs: torch.Tensor) -> torch.Tensor:
    """One draw per row at its sample's temperature within its top-p nucleus, each from the
    sample's own uniform number (as :func:`server.engines.sampling.choose` draws)."""
    device = logprobs.device
    temperature = torch.tensor([s.spec.temperature for s in samples], device=device)
    weights = torch.exp((logprobs - logprobs.amax(dim=-1, keepdim=True)) / temperature[:, None])
    top_p = torch.tensor([s.spec.top_p for s in samples], device=device)
    if bool((top_p < 1.0).any()):
        weights = torch.where((top_p < 1.0)[:, None], _nucleus(weights, top_p), weights)
    cumulative = weights.double().cumsum(dim=-1)
    uniform = torch.tensor([s.rng.random() for s in samples if s.rng], device=device)
    target = uniform.double() * cumulative[:, -1]
    picks = torch.searchsorted(cumulative, target.unsqueeze(1), right=True).squeeze(1)
    return picks.clamp_(max=logprobs.shape[-1] - 1)


def _nucleus(weights: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Each row's ``weights`` zeroed outside its top-p nucleus: a token stays while the mass of
    the more likely tokens before it is at most ``top_p`` of the row's whole (added up in
    float64, as :func:`server.engines.sampling.nucleus` does)."""
    kept, order = weights.sort(dim=-1, descending=True)
    cumulative = kept.double().cumsum(dim=-1)
    keep = cumulative - kept <= top_p.double()[:, None] * cumulative[:, -1:]
    return torch.zeros_like(weights).scatter_(1, order, kept * keep)
