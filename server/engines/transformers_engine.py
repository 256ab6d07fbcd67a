"""The reference engine: transformers on CPU (or CUDA), with exact HF logits.

One scheduler thread batches continuously: every forward pass carries the next token of each
running sample of every call in flight.  A new call's distinct prompts are prefilled together
(each from its longest cached prefix), forked into their ``n`` samples, and joined to the
running batch at the next step (rows are left-padded to a common width; positions are explicit,
so padding and the hole between a reused prefix and the rest of a prompt are only masked out).
Finished or cancelled samples leave the batch at once.  Models whose cache is not plain
per-layer keys and values (sliding windows) cannot join batches: their calls run one set at a
time.  Tokens are chosen on the device by :mod:`server.engines.tensor_sampling`, by the rules
the llama.cpp engine's follow.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoModelForCausalLM, DynamicCache
from transformers.cache_utils import DynamicLayer

from search.engine import Completion, GenerationRequest, TokenLogprob
from server.args import ServerArgs
from server.engines import sampling, tensor_sampling
from server.engines.base import BaseEngine
from server.engines.calls import Call, CallQueue, check_prompts
from server.engines.hf_tokenizer import HFTokenizer
from server.engines.prefix_cache import PrefixCache
from server.engines.samples import Sample
from server.model_source import ModelSource

logger = logging.getLogger(__name__)
_LayerKV = list[tuple[torch.Tensor, torch.Tensor]]  # one (keys, values) pair per layer


@dataclass(eq=False)
class _Call(Call):
    """A call and its samples (request by request)."""

    samples: list[Sample] = field(default_factory=list)

    def finished(self) -> bool:
        """Whether every sample of the call is done."""
        return all(sample.finish is not None for sample in self.samples)

    def results(self) -> list[list[Completion]]:
        """Each request's completions, in sample order."""
        out: list[list[Completion]] = [[] for _ in self.requests]
        for sample in self.samples:
            assert sample.finish is not None
            out[sample.request].append(sample.finish)
        return out


@dataclass(eq=False)
class _Batch:
    """The running batch: one row per sample of every call in flight, with its KV cache,
    attention mask, and each row's logits for the token it chooses next."""

    rows: list[tuple[_Call, Sample]]
    cache: DynamicCache
    mask: torch.Tensor
    logits: torch.Tensor

    def select(self, keep: list[int]) -> _Batch:
        """The rows ``keep`` only (the cache is cut in place)."""
        if len(keep) == len(self.rows):
            return self
        index = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(index)
        rows = [self.rows[j] for j in keep]
        return _Batch(rows, self.cache, self.mask[index], self.logits[index])


class TransformersEngine(BaseEngine):
    """``search.engine.Engine`` over a transformers causal LM, batching every call together."""

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
        # transformers renamed ``past_key_values`` to ``cache`` (5.2x; the old name is still
        # taken there): an unknown keyword is swallowed by ``**kwargs``, and the model then
        # runs without its cache and writes nonsense, so ask the model which one it takes
        parameters = inspect.signature(self.model.forward).parameters
        self._cache_keyword = "cache" if "cache" in parameters else "past_key_values"
        config_eos = self.model.generation_config.eos_token_id
        super().__init__(source.served_name, HFTokenizer.load(folder, config_eos))
        self.max_model_len = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._vocab = int(self.model.config.vocab_size)
        self._prefixes: PrefixCache[_LayerKV] = PrefixCache(prefix_cache_tokens)
        self._queue: CallQueue[_Call] = CallQueue()
        self._thread = threading.Thread(target=self._loop, name="ponder-torch", daemon=True)
        self._thread.start()
        logger.info("loaded %s on %s (%s)", folder, device, self.model.dtype)

    @classmethod
    def from_args(cls, args: ServerArgs, source: ModelSource) -> TransformersEngine:
        """The engine on ``--device`` in ``--dtype``."""
        return cls(
            source,
            dtype=args.dtype,
            device=args.device,
            prefix_cache_tokens=args.prefix_cache_tokens,
        )

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Queue the call for the scheduler and wait; cancelling it drops its rows."""
        if not requests:
            return []
        check_prompts(requests, self._vocab)
        guides = await self._guides(requests)
        with self._calling():
            return await self._queue.submit(_Call.start(requests, guides))

    def close(self) -> None:
        """Stop the scheduler thread."""
        self._health.closed = True
        self._queue.close()
        self._thread.join(timeout=10)

    # --- the scheduler thread -------------------------------------------------------------

    def _loop(self) -> None:
        batch: _Batch | None = None
        queue = self._queue
        while True:
            with queue.wake:
                while not (queue.incoming or batch) and not queue.closing:
                    queue.wake.wait()
                incoming: list[_Call] = []
                if batch is None or _joinable(batch.cache) or queue.closing:
                    incoming, queue.incoming = queue.incoming, []
                if queue.closing:
                    _fail([*_calls(batch), *incoming], RuntimeError("the engine is closed"))
                    return
            started = time.perf_counter()
            with torch.inference_mode():
                batch = self._drop_cancelled(batch)
                incoming = [call for call in incoming if not call.cancelled.is_set()]
                try:
                    if incoming:
                        batch = _join(batch, self._start(incoming))
                except Exception as exc:  # a new call's prefill failed: fail those calls only
                    logger.exception("prefill failed")
                    _fail(incoming, exc)
                try:
                    if batch is not None:
                        batch = self._advance(batch)
                except Exception as exc:  # a decode step failed: fail every call in the batch
                    logger.exception("transformers decode step failed")
                    _fail(_calls(batch), exc)
                    batch = None
            self._stats.busy_seconds += time.perf_counter() - started

    def _drop_cancelled(self, batch: _Batch | None) -> _Batch | None:
        if batch is None:
            return None
        keep = [j for j, (call, _) in enumerate(batch.rows) if not call.cancelled.is_set()]
        if not keep:
            return None
        return batch.select(keep)

    def _start(self, calls: list[_Call]) -> _Batch:
        """Prefill the new calls' prompts together and fork each into its ``n`` samples."""
        requests = [r for call in calls for r in call.requests]
        cache = DynamicCache()
        logits, mask, reused = self._prefill(requests, cache)
        rows: list[tuple[_Call, Sample]] = []
        cached = iter(reused)
        for call in calls:
            for r, spec in enumerate(call.requests):
                from_cache = next(cached)
                for i in range(spec.n):
                    sample = Sample(r, i, spec, sampling.generator(spec, i))
                    sample.cached_tokens = from_cache
                    sample.guide = call.guide(r)
                    call.samples.append(sample)
                    rows.append((call, sample))
        self._stats.prompt_tokens_cached += sum(
            len(r.prompt_token_ids) * (r.n - 1) for r in requests
        )
        fork = torch.tensor(
            [k for k, r in enumerate(requests) for _ in range(r.n)], device=self.device
        )
        cache.batch_select_indices(fork)
        return _Batch(rows, cache, mask[fork], logits[fork])

    def _advance(self, batch: _Batch) -> _Batch | None:
        """Choose every row's next token; settle finished calls; feed the rest one token."""
        self._stats.record_step(len(batch.rows))
        chosen = self._step([sample for _, sample in batch.rows], batch.logits)
        keep: list[int] = []
        for j, (call, sample) in enumerate(batch.rows):
            if sample.finish is None:
                keep.append(j)
                continue
            held = sample.spec.prompt_token_ids + tuple(sample.token_ids[:-1])
            self._keep_prefix(held, batch.cache, j, batch.mask[j])
            if call.finished():
                call.settle(call.results())
        if not keep:
            return None
        tokens = chosen[torch.tensor(keep, device=self.device)]
        batch = _trim(batch.select(keep))
        mask = torch.cat([batch.mask, batch.mask.new_ones((len(keep), 1))], dim=1)
        positions = mask.sum(dim=1, keepdim=True) - 1
        out = self.model(
            input_ids=tokens.unsqueeze(1),
            attention_mask=mask,
            position_ids=positions,
            **{self._cache_keyword: batch.cache},
            use_cache=True,
        )
        return _Batch(batch.rows, batch.cache, mask, out.logits[:, -1, :].float())

    def _prefill(
        self, requests: list[GenerationRequest], cache: DynamicCache
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Run each distinct prompt once, starting from its longest cached prefix; return the
        last logits, the attention mask and each prompt's tokens taken from the cache.

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
            **{self._cache_keyword: cache},
            use_cache=True,
            logits_to_keep=1,
        )
        self._stats.prompt_tokens_computed += sum(len(rest) for rest in rests)
        self._stats.prompt_tokens_cached += sum(reused)
        return out.logits[:, -1, :].float(), mask, reused

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
        """Pick one token per sample on the model's device, record it with its logprobs, and
        mark finished samples: by the same rules as the llama.cpp engine
        (:mod:`server.engines.tensor_sampling`)."""
        tokens, chosen = tensor_sampling.choose(samples, logits)
        for j, sample in enumerate(samples):
            sample.record(
                TokenLogprob(chosen.tokens[j], chosen.logprobs[j], chosen.top[j]), self._tokenizer
            )
        self._stats.generated_tokens += len(samples)
        return tokens


def _calls(batch: _Batch | None) -> list[_Call]:
    """The calls with rows in ``batch``."""
    return list({id(call): call for call, _ in batch.rows}.values()) if batch else []


def _fail(calls: list[_Call], exc: BaseException) -> None:
    """Settle each of ``calls`` with ``exc`` (one already settled keeps its result)."""
    for call in calls:
        call.settle(exc)


def _joinable(cache: DynamicCache) -> bool:
    """Whether other rows can join this cache: plain per-layer keys and values only."""
    return all(type(layer) is DynamicLayer and layer.keys is not None for layer in cache.layers)


def _join(batch: _Batch | None, new: _Batch) -> _Batch:
    """One batch of both: rows left-padded to the wider one's width, then stacked."""
    if batch is None:
        return new
    width = max(batch.mask.shape[1], new.mask.shape[1])
    cache = DynamicCache()
    for index, (old_layer, new_layer) in enumerate(
        zip(batch.cache.layers, new.cache.layers, strict=True)
    ):
        (old_k, old_v), (new_k, new_v) = _kv(old_layer), _kv(new_layer)
        keys = torch.cat([_left_pad(old_k, width, dim=2), _left_pad(new_k, width, dim=2)])
        values = torch.cat([_left_pad(old_v, width, dim=2), _left_pad(new_v, width, dim=2)])
        cache.update(keys, values, index)
    mask = torch.cat([_left_pad(batch.mask, width, dim=1), _left_pad(new.mask, width, dim=1)])
    return _Batch(batch.rows + new.rows, cache, mask, torch.cat([batch.logits, new.logits]))


def _kv(layer: object) -> tuple[torch.Tensor, torch.Tensor]:
    """A plain cache layer's keys and values (``_joinable`` checked there are such)."""
    assert isinstance(layer, DynamicLayer) and layer.keys is not None
    assert layer.values is not None
    return layer.keys, layer.values


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Zeros before ``tensor`` along ``dim`` up to ``width`` (masked out, never attended)."""
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _trim(batch: _Batch) -> _Batch:
    """Drop leading columns no row attends to any more (left by rows that left the batch)."""
    live = batch.mask.any(dim=0)
    first = int(live.int().argmax())
    if first == 0 or not _joinable(batch.cache):
        return batch
    for layer in batch.cache.layers:
        keys, values = _kv(layer)
        layer.keys, layer.values = keys[:, :, first:], values[:, :, first:]  # type: ignore[union-attr]
    batch.mask = batch.mask[:, first:]
    return batch
