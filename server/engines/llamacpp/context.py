"""llama.cpp's C objects (model, context, batch) and the calls ponder makes on them.

Whoever runs ``llama_decode`` must be the one to :meth:`LlamaContext.free` them, after its
last decode: freed from another thread, they could go while a decode still runs on them.
"""

from __future__ import annotations

import logging
from typing import Any

import llama_cpp
import numpy as np

from server.args import FlashAttention, KvCacheDtype
from server.engines.llamacpp.threads import default_threads

logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's load chatter

_FLASH_ATTN_TYPES = {
    "auto": llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO,
    "on": llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    "off": llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}
_KV_TYPES = {"auto": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0}
BATCH_TOKENS = 512  # tokens per decode step (running samples first, then prompt chunks)


class LlamaContext:
    """A GGUF model with one context whose KV cache is unified over ``max_sequences``
    sequences (forked samples share their prompt's cells), and one batch of
    :data:`BATCH_TOKENS` tokens."""

    def __init__(
        self,
        path: str,
        *,
        kv_cache_tokens: int,
        max_sequences: int,
        threads: int | None,
        threads_batch: int | None,
        flash_attn: FlashAttention = "auto",
        kv_cache_dtype: KvCacheDtype = "auto",
    ) -> None:
        llama_cpp.llama_backend_init()
        self._model = llama_cpp.llama_model_load_from_file(
            path.encode(), llama_cpp.llama_model_default_params()
        )
        if not self._model:
            raise ValueError(f"llama.cpp could not load {path}")
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = kv_cache_tokens
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = max_sequences
        params.kv_unified = True
        params.flash_attn_type = _FLASH_ATTN_TYPES[flash_attn]
        params.type_k = params.type_v = _KV_TYPES[kv_cache_dtype]
        params.n_threads = threads or default_threads()
        params.n_threads_batch = threads_batch or params.n_threads
        self.threads, self.threads_batch = params.n_threads, params.n_threads_batch
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise ValueError("llama.cpp could not create a context")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(vocab)
        self.eos_token_ids = [
            i for i in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)
        ]
        self.n_ctx_train: int = llama_cpp.llama_model_n_ctx_train(self._model)
        self.max_sequences = max_sequences

    @property
    def model(self) -> Any:
        """llama.cpp's model handle (another context can be made on the same weights)."""
        return self._model

    @property
    def cells(self) -> int:
        """The KV cache's size in cells (tokens of all sequences together)."""
        return int(llama_cpp.llama_n_ctx(self._ctx))

    def put(self, i: int, token: int, pos: int, seq: int, *, logits: bool) -> None:
        """Set the batch's row ``i``: ``token`` at ``pos`` of sequence ``seq``."""
        batch = self._batch
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits

    def decode(self, rows: int) -> int:
        """``llama_decode`` of the batch's first ``rows`` rows: 0 done, 1 no KV cells for
        them, anything else a failure."""
        self._batch.n_tokens = rows
        return int(llama_cpp.llama_decode(self._ctx, self._batch))

    def logits(self, rows: int) -> np.ndarray[Any, Any]:
        """The last decode's logits, one float32 row per batch row that asked for them
        (a view into llama.cpp's buffer: read it before the next decode)."""
        return np.ctypeslib.as_array(
            llama_cpp.llama_get_logits(self._ctx), shape=(rows, self.n_vocab)
        )

    def share_prefix(self, source: int, target: int, length: int) -> None:
        """Make ``target`` share the cells of ``source``'s first ``length`` positions."""
        llama_cpp.llama_memory_seq_cp(self._memory, source, target, 0, length)

    def fork(self, source: int, target: int) -> None:
        """Make ``target`` share every cell of ``source``."""
        llama_cpp.llama_memory_seq_cp(self._memory, source, target, -1, -1)

    def remove(self, seq: int) -> None:
        """Drop every cell of sequence ``seq``."""
        llama_cpp.llama_memory_seq_rm(self._memory, seq, -1, -1)

    def clear(self) -> None:
        """Empty the KV cache."""
        llama_cpp.llama_memory_clear(self._memory, True)

    def free(self) -> None:
        """Free the batch, the context and the model (from the decoding thread, after its last
        decode)."""
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)
        llama_cpp.llama_model_free(self._model)
