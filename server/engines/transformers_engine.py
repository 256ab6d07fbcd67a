"""The reference engine: transformers on CPU (or CUDA), with exact HF logits.

A call's requests are generated together: each distinct prompt is prefilled once, its KV cache
is forked into the request's ``n`` samples, and all samples of all requests advance in one
forward pass per token.  Finished or cancelled samples leave the batch at once.  The torch work
runs on one worker thread (one call at a time, so two searches never thrash the cores); a
cancelled call sets a flag that the worker checks before every forward pass.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from transformers import AutoModelForCausalLM, DynamicCache
from transformers.cache_utils import DynamicLayer

from search.engine import Completion, GenerationRequest
from server.engines.base import BaseEngine
from server.engines.hf_tokenizer import HFTokenizer
from server.engines.prefix_cache import PrefixCache
from server.engines.samples import Sample
from server.model_source import ModelSource

logger = logging.getLogger(__name__)
_LayerKV = list[tuple[torch.Tensor, torch.Tensor]]  # one (keys, values) pair per layer


class _Cancelled(Exception):
    """Raised inside the worker when the caller went away."""


class TransformersEngine(BaseEngine):
    """``search.engine.Engine`` over a transformers causal LM."""

    def __init__(
        self,
        source: ModelSource,
        *,
        dtype: str = "auto",
        device: str = "auto",
        prefix_cache_tokens: int = 4096,
    ) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype: Any = torch.float32 if dtype == "auto" and device == "cpu" else dtype
        folder = source.hf_folder()
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
        self.device = torch.device(device)
        self.model.to(self.device)  # type: ignore[arg-type]
        self.model.eval()  # type: ignore[no-untyped-call]
        config_eos = self.model.generation_config.eos_token_id
        eos = config_eos if isinstance(config_eos, list) else [config_eos]
        super().__init__(source.served_name, HFTokenizer.load(folder, eos))
        self.max_model_len = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ponder-torch")
        self._prefixes: PrefixCache[_LayerKV] = PrefixCache(prefix_cache_tokens)
        logger.info("loaded %s on %s (%s)", folder, device, self.model.dtype)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Generate every request's samples in shared forward passes; cancel-safe."""
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        with self._calling():
            future = loop.run_in_executor(self._worker, self._generate_sync, list(requests), cancel)
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                cancel.set()
                if not future.cancel():  # already running: wait for the worker to let go
                    await asyncio.wait([future])
                raise

    def close(self) -> None:
        """Stop the worker thread."""
        self._health.closed = True
        self._worker.shutdown(wait=False, cancel_futures=True)

    @torch.inference_mode()
    def _generate_sync(
        self, requests: list[GenerationRequest], cancel: threading.Event
    ) -> list[list[Completion]]:
        samples = [
            Sample(r, i, spec, self._generator(spec, i))
            for r, spec in enumerate(requests)
            for i in range(spec.n)
        ]
        if not samples:
            return [[] for _ in requests]
        started = time.perf_counter()
        try:
            self._run(requests, samples, cancel)
        except _Cancelled:
            logger.debug("generation cancelled with %d samples", len(samples))
            raise
        finally:
            self._stats.busy_seconds += time.perf_counter() - started
        results: list[list[Completion]] = [[] for _ in requests]
        for sample in samples:
            assert sample.finish is not None
            results[sample.request].append(sample.finish)
        return results

    def _generator(self, spec: GenerationRequest, index: int) -> torch.Generator | None:
        if spec.temperature == 0:
            return None
        generator = torch.Generator(device=self.device)
        if spec.seed is None:
            generator.seed()
        else:
            generator.manual_seed(spec.seed + index)
        return generator

    def _run(
        self, requests: list[GenerationRequest], samples: list[Sample], cancel: threading.Event
    ) -> None:
        cache = DynamicCache()
        logits, mask = self._prefill(requests, cache)
        # fork each prompt's cache into its n samples
        rows = torch.tensor([s.request for s in samples], device=self.device)
        cache.batch_select_indices(rows)
        logits, mask = logits[rows], mask[rows]
        self._stats.prompt_tokens_cached += sum(
            len(r.prompt_token_ids) * (r.n - 1) for r in requests
        )
        active = list(range(len(samples)))
        while True:
            if cancel.is_set():
                raise _Cancelled
            self._stats.record_step(len(active))
            chosen = self._step([samples[i] for i in active], logits)
            for j, i in enumerate(active):
                sample = samples[i]
                if sample.finish is not None:
                    held = sample.spec.prompt_token_ids + tuple(sample.token_ids[:-1])
                    self._keep_prefix(held, cache, j, mask[j])
            keep = [j for j, i in enumerate(active) if samples[i].finish is None]
            if not keep:
                return
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                chosen, mask = chosen[index], mask[index]
                active = [active[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            positions = mask.sum(dim=1, keepdim=True) - 1
            out = self.model(
                input_ids=chosen.unsqueeze(1),
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
            )
            logits = out.logits[:, -1, :].float()

    def _prefill(
        self, requests: list[GenerationRequest], cache: DynamicCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run each distinct prompt once, starting from its longest cached prefix; return the
        last logits and the attention mask.

        Row ``i`` of the cache holds ``[padding][reused prefix]`` and its new tokens follow
        as ``[padding][rest of the prompt]``: the mask has a hole between, which attention
        accepts, and positions are given explicitly.
        """
        found = [self._prefixes.longest_prefix(r.prompt_token_ids) for r in requests]
        reused = [
            min(n, len(r.prompt_token_ids) - 1) for r, (_, n) in zip(requests, found, strict=True)
        ]
        rests = [r.prompt_token_ids[n:] for r, n in zip(requests, reused, strict=True)]
        old, new = max(reused), max(len(rest) for rest in rests)
        if old:
            self._load_prefixes([kv for kv, _ in found], reused, cache)
        ids = torch.full((len(requests), new), self._tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(requests), old + new), dtype=torch.long)
        positions = torch.zeros((len(requests), new), dtype=torch.long)
        for row, (n, rest) in enumerate(zip(reused, rests, strict=True)):
            ids[row, new - len(rest) :] = torch.tensor(rest)
            mask[row, old - n : old] = 1
            mask[row, old + new - len(rest) :] = 1
            positions[row, new - len(rest) :] = torch.arange(n, n + len(rest))
        ids, mask, positions = ids.to(self.device), mask.to(self.device), positions.to(self.device)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self._stats.prompt_tokens_computed += sum(len(rest) for rest in rests)
        self._stats.prompt_tokens_cached += sum(reused)
        return out.logits[:, -1, :].float(), mask

    def _load_prefixes(
        self, prefixes: list[_LayerKV | None], lengths: list[int], cache: DynamicCache
    ) -> None:
        """Put each row's reused prefix, right-aligned, into an empty ``cache``."""
        width = max(lengths)
        template = next(kv for kv in prefixes if kv is not None)
        for layer, (keys, _) in enumerate(template):
            heads, _, dim = keys.shape
            shape = (len(prefixes), heads, width, dim)
            k = keys.new_zeros(shape)
            v = keys.new_zeros(shape)
            for row, (kv, n) in enumerate(zip(prefixes, lengths, strict=True)):
                if kv is not None and n:
                    k[row, :, width - n :] = kv[layer][0][:, :n]
                    v[row, :, width - n :] = kv[layer][1][:, :n]
            cache.update(k, v, layer)

    def _keep_prefix(
        self, held: tuple[int, ...], cache: DynamicCache, row: int, mask: torch.Tensor
    ) -> None:
        """Cache the KV of batch row ``row`` (the tokens ``held``: a finished sample's prompt
        and all but its last token, which was never fed) for later prompts to start from."""
        if self._prefixes.max_tokens <= 0:
            return
        valid = mask.bool()
        kv: _LayerKV = []
        for layer in cache.layers:
            if not isinstance(layer, DynamicLayer) or layer.keys is None or layer.values is None:
                return  # a sliding or recurrent layer cannot be cut to a prefix
            kv.append((layer.keys[row][:, valid], layer.values[row][:, valid]))
        self._prefixes.add(held, kv)

    def _step(self, samples: list[Sample], logits: torch.Tensor) -> torch.Tensor:
        """Pick one token per sample, record its logprobs, and mark finished samples."""
        logprobs = torch.log_softmax(logits, dim=-1)
        k = max(s.spec.logprobs for s in samples)
        top_values, top_ids = logprobs.topk(k, dim=-1) if k else (logprobs[:, :0],) * 2
        chosen = torch.stack([self._sample(s, logits[row]) for row, s in enumerate(samples)])
        chosen_lp = logprobs.gather(1, chosen.unsqueeze(1)).squeeze(1).tolist()
        top_values_list, top_ids_list = top_values.tolist(), top_ids.tolist()
        for row, sample in enumerate(samples):
            token = int(chosen[row])
            k_row = sample.spec.logprobs
            top = tuple(zip(top_ids_list[row][:k_row], top_values_list[row][:k_row], strict=True))
            sample.add(token, chosen_lp[row], top, self._tokenizer)
        self._stats.generated_tokens += len(samples)
        return chosen

    @staticmethod
    def _sample(sample: Sample, logits: torch.Tensor) -> torch.Tensor:
        spec = sample.spec
        if spec.temperature == 0 or sample.rng is None:
            return logits.argmax()
        probs = torch.softmax(logits / spec.temperature, dim=-1)
        if spec.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            outside = sorted_probs.cumsum(0) - sorted_probs > spec.top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return torch.multinomial(probs, 1, generator=sample.rng).squeeze(0)
