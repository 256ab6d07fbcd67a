"""``LlamaCppEngine``: a GGUF model in llama.cpp, every call batched by one scheduler thread.

Logprobs are the raw log-softmax of llama.cpp's logits (before temperature); sampling follows
:mod:`server.engines.sampling`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from search.engine import Completion, GenerationRequest, RequestRejected
from server.args import FlashAttention, KvCacheDtype, ServerArgs
from server.engines.base import BaseEngine
from server.engines.calls import check_prompts
from server.engines.hf_tokenizer import HFTokenizer
from server.engines.llamacpp.context import LlamaContext
from server.engines.llamacpp.scheduler import LlamaCall, Scheduler
from server.model_source import ModelSource

logger = logging.getLogger(__name__)

CLOSE_WAIT_SECONDS = 60.0  # how long close waits for the decode step in progress to end


class LlamaCppEngine(BaseEngine):
    """``search.engine.Engine`` over a GGUF model in llama.cpp, batching every call together."""

    def __init__(
        self,
        source: ModelSource,
        *,
        kv_cache_tokens: int = 8192,
        prefix_cache_tokens: int = 4096,
        max_sequences: int = 64,
        threads: int | None = None,
        threads_batch: int | None = None,
        flash_attn: FlashAttention = "auto",
        kv_cache_dtype: KvCacheDtype = "auto",
    ) -> None:
        context = LlamaContext(
            source.path,
            kv_cache_tokens=kv_cache_tokens,
            max_sequences=max_sequences,
            threads=threads,
            threads_batch=threads_batch,
            flash_attn=flash_attn,
            kv_cache_dtype=kv_cache_dtype,
        )
        tokenizer = HFTokenizer.load(source.tokenizer_folder(), context.eos_token_ids)
        super().__init__(source.served_name, tokenizer)
        self.max_model_len = min(context.n_ctx_train, kv_cache_tokens)
        self._max_sequences = max_sequences
        self._n_vocab = context.n_vocab
        self.threads, self.threads_batch = context.threads, context.threads_batch
        self._scheduler = Scheduler(context, tokenizer, self._stats, prefix_cache_tokens)
        logger.info(
            "loaded %s with llama.cpp (%d threads, %d for batches)",
            source.path,
            self.threads,
            self.threads_batch,
        )

    @classmethod
    def from_args(cls, args: ServerArgs, source: ModelSource) -> LlamaCppEngine:
        """The engine with the KV cache, prefix cache and threads ``args`` ask for."""
        return cls(
            source,
            kv_cache_tokens=args.kv_cache_tokens,
            prefix_cache_tokens=args.prefix_cache_tokens,
            threads=args.threads,
            threads_batch=args.threads_batch,
            flash_attn=args.flash_attn,
            kv_cache_dtype=args.kv_cache_dtype,
        )

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Queue the call for the scheduler and wait; cancelling it frees its sequences."""
        too_many = [r for r in requests if r.n > self._max_sequences]
        if too_many:
            raise RequestRejected(
                f"n={too_many[0].n} is above the {self._max_sequences} sequences this engine "
                "runs at once",
                param="n",
            )
        if not requests:
            return []
        check_prompts(requests, self._n_vocab)
        guides = await self._guides(requests)
        with self._calling():
            return await self._scheduler.queue.submit(LlamaCall.start(requests, guides))

    def reset_prefix_cache(self) -> None:
        """Forget every cached prefix (as vLLM's ``reset_prefix_cache``); when nothing runs, the
        KV cache is emptied too, so the next call runs exactly as on a fresh engine."""
        self._scheduler.reset_prefix_cache()

    def close(self) -> None:
        """Stop the scheduler, which frees llama.cpp's context and model as it exits: freed
        from here, they could go while a ``llama_decode`` still runs on them."""
        self._health.closed = True
        self._scheduler.queue.close()
        thread = self._scheduler.thread
        thread.join(timeout=CLOSE_WAIT_SECONDS)
        if thread.is_alive():
            logger.error(
                "llama.cpp's scheduler is still in a decode step after %.0f s; its context is "
                "freed only once that step ends",
                CLOSE_WAIT_SECONDS,
            )
