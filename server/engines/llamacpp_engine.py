"""The CPU default engine: llama.cpp through llama-cpp-python's low-level API.

One scheduler thread owns the llama context and batches continuously: every decode step
carries the next token of each running sample of every call in flight, plus chunks of prompts
being prefilled; new calls join at the next step, finished or cancelled samples leave at once.
A prompt is decoded once and forked into its ``n`` samples with ``llama_memory_seq_cp`` (the KV
cache is unified, so forks share the prompt's cells).  A finished sample's sequence stays
resident in a bounded LRU prefix cache; a new prompt starts from the longest cached prefix, so a
search re-reading its tree's paths only computes what is new.

Logprobs are the raw log-softmax of llama.cpp's logits (before temperature); the top-k come
from one ``argpartition`` per step over all rows.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np

from search.engine import Completion, EngineFault, GenerationRequest, RequestRejected
from server.engines.base import BaseEngine
from server.engines.calls import Call, CallQueue, check_prompts
from server.engines.hf_tokenizer import HFTokenizer
from server.engines.prefix_cache import PrefixCache
from server.engines.samples import Sample
from server.model_source import ModelSource

logger = logging.getLogger(__name__)
logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's load chatter

BATCH_TOKENS = 512  # tokens per decode step (running samples first, then prompt chunks)
CLOSE_WAIT_SECONDS = 60.0  # how long close waits for the decode step in progress to end


@dataclass(eq=False)
class _Call(Call):
    """A call and how far it has got: its groups (one per request), and how many are not done."""

    groups: list[_Group] = field(default_factory=list)
    unfinished: int = 0
    number: int = 0  # arrival order: the newest call is the one preempted

    def restart(self) -> list[_Group]:
        """Fresh groups, one per request (at arrival, and again after a preemption)."""
        self.groups = [_Group(self, i, r) for i, r in enumerate(self.requests)]
        self.unfinished = len(self.groups)
        return self.groups


@dataclass(eq=False)
class _Group:
    """One request of a call: its prompt (prefilled once, on ``seq``), then its samples."""

    call: _Call
    request: int
    spec: GenerationRequest
    seq: int = -1
    spare: list[int] = field(default_factory=list)  # reserved for samples 1..n-1
    fed: int = 0  # prompt tokens already in the KV cache
    samples: list[_Running] = field(default_factory=list)


@dataclass(eq=False)
class _Running:
    """A sample being decoded: its sequence id, and the token to feed it next at ``pos``."""

    group: _Group
    sample: Sample
    seq: int
    pos: int  # until the first token is sampled: the prompt's last position
    next_token: int = -1


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
    ) -> None:
        llama_cpp.llama_backend_init()
        self._model = llama_cpp.llama_model_load_from_file(
            source.path.encode(), llama_cpp.llama_model_default_params()
        )
        if not self._model:
            raise ValueError(f"llama.cpp could not load {source.path}")
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = kv_cache_tokens
        params.n_batch = params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = max_sequences
        params.kv_unified = True  # forked samples share their prompt's cells
        params.n_threads = params.n_threads_batch = threads or os.cpu_count() or 1
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not self._ctx:
            raise ValueError("llama.cpp could not create a context")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, 1)
        vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        eos = [i for i in range(self._n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)]
        super().__init__(source.served_name, HFTokenizer.load(source.tokenizer_folder(), eos))
        self.max_model_len = min(llama_cpp.llama_model_n_ctx_train(self._model), kv_cache_tokens)
        self._max_sequences = max_sequences
        self._free = list(range(max_sequences))
        self._cache: PrefixCache[int] = PrefixCache(prefix_cache_tokens)
        self._queue: CallQueue[_Call] = CallQueue()
        self._arrivals = itertools.count()
        self._admission_paused = False
        self._resets: list[threading.Event] = []
        self._waiting: list[_Group] = []  # not yet given sequences
        self._prefilling: list[_Group] = []
        self._running: list[_Running] = []
        self._thread = threading.Thread(target=self._run, name="ponder-llamacpp", daemon=True)
        self._thread.start()
        logger.info("loaded %s with llama.cpp (%d threads)", source.path, params.n_threads)

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
        with self._calling():
            return await self._queue.submit(_Call.start(requests))

    def reset_prefix_cache(self) -> None:
        """Forget every cached prefix (as vLLM's ``reset_prefix_cache``); when nothing runs, the
        KV cache is emptied too, so the next call runs exactly as on a fresh engine."""
        done = threading.Event()
        self._queue.notify(lambda: self._resets.append(done))
        done.wait()

    def close(self) -> None:
        """Stop the scheduler, which frees llama.cpp's context and model as it exits: freed
        from here, they could go while a ``llama_decode`` still runs on them."""
        self._health.closed = True
        self._queue.close()
        self._thread.join(timeout=CLOSE_WAIT_SECONDS)
        if self._thread.is_alive():
            logger.error(
                "llama.cpp's scheduler is still in a decode step after %.0f s; its context is "
                "freed only once that step ends",
                CLOSE_WAIT_SECONDS,
            )

    # --- the scheduler thread -------------------------------------------------------------

    def _run(self) -> None:
        """The scheduler thread owns llama.cpp's context, so it alone frees it, when it stops."""
        try:
            self._loop()
        finally:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            llama_cpp.llama_model_free(self._model)

    def _loop(self) -> None:
        while True:
            queue = self._queue
            with queue.wake:
                while not (
                    queue.incoming
                    or self._prefilling
                    or self._running
                    or self._resets
                    or self._waiting  # preempted calls, free to start again
                    or queue.closing
                ):
                    queue.wake.wait()
                if queue.closing:
                    closed = RuntimeError("the engine is closed")
                    for call in queue.incoming:
                        call.settle(closed)
                    self._fail_all(closed)
                    return
                incoming, queue.incoming = queue.incoming, []
                resets, self._resets = self._resets, []
            if resets:
                self._clear_cache()
                for done in resets:
                    done.set()
            for call in incoming:
                call.number = next(self._arrivals)
                self._waiting += call.restart()
            try:
                self._drop_cancelled()
                self._admit()
                if self._prefilling or self._running:
                    started = time.perf_counter()
                    self._step()
                    self._stats.busy_seconds += time.perf_counter() - started
            except _KvCacheFull:
                self._preempt()
            except Exception as exc:  # an engine fault: fail every call it touched
                logger.exception("llama.cpp step failed")
                self._fail_all(exc)

    def _calls(self) -> list[_Call]:
        """Calls with work in the engine, oldest first."""
        groups = [*self._waiting, *self._prefilling, *(r.group for r in self._running)]
        return list({id(g.call): g.call for g in groups}.values())

    def _drop_cancelled(self) -> None:
        for call in self._calls():
            if call.cancelled.is_set():
                self._release(call)

    def _release(self, call: _Call, error: BaseException | None = None) -> None:
        """Take ``call`` out of the engine, freeing its sequences; fail it with ``error``."""
        for group in call.groups:
            if group in self._waiting:
                self._waiting.remove(group)
            if group in self._prefilling:
                self._prefilling.remove(group)
                self._free_seq(group.seq)
                self._free += group.spare
            for running in group.samples:
                if running in self._running:
                    self._running.remove(running)
                    self._free_seq(running.seq)
        if error is not None:
            call.settle(error)
        self._admission_paused = False  # cells were freed

    def _preempt(self) -> None:
        """The KV cache cannot hold every call in flight: the newest call gives its cells back
        and starts again from its prompt (as vLLM preempts by recomputation) once an older call
        has finished; admission waits until then.  A call that does not fit alone fails."""
        holding = [c for c in self._calls() if any(g not in self._waiting for g in c.groups)]
        victim = max(holding, key=lambda c: c.number)
        if len(holding) == 1:
            too_big = _too_big(llama_cpp.llama_n_ctx(self._ctx))
            self._release(victim, RequestRejected(too_big, param="max_tokens"))
            return
        logger.info("KV cache full: preempting the newest call (%d calls hold cells)", len(holding))
        self._stats.preemptions += 1
        self._release(victim)
        self._waiting += victim.restart()
        self._admission_paused = True

    def _fail_all(self, exc: BaseException) -> None:
        for call in self._calls():
            self._release(call, exc)
        self._free = list(range(self._max_sequences))
        self._cache = PrefixCache(self._cache.max_tokens)
        llama_cpp.llama_memory_clear(self._memory, True)

    def _clear_cache(self) -> None:
        while (seq := self._cache.pop_oldest()) is not None:
            self._free_seq(seq)
        if not (self._waiting or self._prefilling or self._running):
            llama_cpp.llama_memory_clear(self._memory, True)

    def _free_seq(self, seq: int) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, seq, -1, -1)
        self._free.append(seq)

    def _admit(self) -> None:
        """Give waiting groups ``n`` sequences each, starting from the longest cached prefix
        (unless the KV cache filled up: then only once a call has finished)."""
        while self._waiting and not self._admission_paused:
            group = self._waiting[0]
            prompt, n = group.spec.prompt_token_ids, group.spec.n
            source, reuse = self._cache.longest_prefix(prompt)
            while len(self._free) < n:
                evicted = self._cache.pop_oldest(keep=source)
                if evicted is None:
                    evicted = self._cache.pop_oldest()
                    source, reuse = None, 0
                if evicted is None:
                    return  # every sequence is running: wait for some to finish
                self._free_seq(evicted)
            self._waiting.pop(0)
            group.seq, group.spare = self._free.pop(), [self._free.pop() for _ in range(n - 1)]
            reuse = min(reuse, len(prompt) - 1)
            if source is not None and reuse > 0:
                llama_cpp.llama_memory_seq_cp(self._memory, source, group.seq, 0, reuse)
            group.fed = reuse
            self._stats.prompt_tokens_cached += reuse + len(prompt) * (n - 1)
            self._stats.prompt_tokens_computed += len(prompt) - reuse
            self._prefilling.append(group)

    def _step(self) -> None:
        """One decode: a token for every running sample, then prompt chunks; sample from it."""
        batch, room = self._batch, BATCH_TOKENS
        outputs: list[_Running | _Group] = []
        rows = 0
        for running in self._running:
            self._put(rows, running.next_token, running.pos, running.seq, logits=True)
            outputs.append(running)
            rows += 1
        room -= rows
        fed: list[tuple[_Group, int]] = []
        for group in self._prefilling:
            if room <= 0:
                break
            prompt = group.spec.prompt_token_ids
            chunk = prompt[group.fed : group.fed + room]
            ends = group.fed + len(chunk) == len(prompt)
            for j, token in enumerate(chunk):
                last = ends and j == len(chunk) - 1
                self._put(rows, token, group.fed + j, group.seq, logits=last)
                rows += 1
            room -= len(chunk)
            fed.append((group, len(chunk)))
            if ends:
                outputs.append(group)
        batch.n_tokens = rows
        self._decode()
        for group, count in fed:
            group.fed += count
        self._stats.record_step(len(outputs))
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits(self._ctx), shape=(len(outputs), self._n_vocab)
        )
        samples: list[_Running] = []
        row_of: list[int] = []
        for row, item in enumerate(outputs):
            if isinstance(item, _Group):
                self._prefilling.remove(item)
                forked = self._fork(item)
                samples += forked
                row_of += [row] * len(forked)
            else:
                samples.append(item)
                row_of.append(row)
        self._advance(samples, logits[row_of])

    def _put(self, i: int, token: int, pos: int, seq: int, *, logits: bool) -> None:
        batch = self._batch
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, logits

    def _decode(self) -> None:
        """``llama_decode``, making room in the KV cache from the prefix cache if it is full."""
        while (status := llama_cpp.llama_decode(self._ctx, self._batch)) == 1:
            evicted = self._cache.pop_oldest()
            if evicted is None:
                raise _KvCacheFull
            self._free_seq(evicted)
        if status != 0:
            raise EngineFault(f"llama_decode failed with status {status}")

    def _fork(self, group: _Group) -> list[_Running]:
        """The prompt is in the cache: give each of the ``n`` samples its own sequence."""
        spec, length = group.spec, len(group.spec.prompt_token_ids)
        seqs, group.spare = [group.seq, *group.spare], []
        for seq in seqs[1:]:
            llama_cpp.llama_memory_seq_cp(self._memory, group.seq, seq, -1, -1)
        group.samples = [
            _Running(group, Sample(group.request, i, spec, _rng(spec, i)), seq, length - 1)
            for i, seq in enumerate(seqs)
        ]
        self._running += group.samples
        return group.samples

    def _advance(self, samples: list[_Running], logits: np.ndarray[Any, Any]) -> None:
        """Choose each sample's next token, record its logprobs, and retire finished ones."""
        peak = logits.max(axis=1, keepdims=True)
        shifted = logits - peak
        logprobs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        k = max(r.sample.spec.logprobs for r in samples)
        top = np.argpartition(-logprobs, k, axis=1)[:, :k] if k else None
        for row, running in enumerate(samples):
            call = running.group.call
            if call.settled:
                continue  # failed by an earlier row of this step
            try:
                self._take(running, logprobs[row], None if top is None else top[row])
            except Exception as exc:  # a fault in one call fails that call alone
                logger.exception("generation failed for one call")
                self._release(call, exc)
        self._stats.generated_tokens += len(samples)

    def _take(
        self, running: _Running, logprobs: np.ndarray[Any, Any], top: np.ndarray[Any, Any] | None
    ) -> None:
        sample, spec = running.sample, running.sample.spec
        token = _choose(sample, logprobs)
        ranked: tuple[tuple[int, float], ...] = ()
        if top is not None and spec.logprobs:
            ids = sorted(top.tolist(), key=lambda t: -logprobs[t])[: spec.logprobs]
            ranked = tuple((t, float(logprobs[t])) for t in ids)
        sample.add(token, float(logprobs[token]), ranked, self._tokenizer)
        if sample.finish is None:
            running.next_token, running.pos = token, running.pos + 1
            return
        self._retire(running)

    def _retire(self, running: _Running) -> None:
        """A finished sample: keep its sequence as a cached prefix; settle its call if done."""
        self._running.remove(running)
        group, sample = running.group, running.sample
        held = group.spec.prompt_token_ids + tuple(sample.token_ids[:-1])
        for evicted in self._cache.add(held, running.seq):
            self._free_seq(evicted)
        if all(r.sample.finish is not None for r in group.samples):
            call = group.call
            call.unfinished -= 1
            if call.unfinished == 0:
                call.settle([[_finished(r) for r in g.samples] for g in call.groups])
                self._admission_paused = False


class _KvCacheFull(Exception):
    """``llama_decode`` found no KV cells for the step, with no cached prefix left to evict."""


def _too_big(cells: int) -> str:
    return (
        f"the call needs more than the KV cache's {cells} cells "
        "(ask for fewer samples or max_tokens, or start the server with a larger "
        "--kv-cache-tokens)"
    )


def _finished(running: _Running) -> Completion:
    assert running.sample.finish is not None
    return running.sample.finish


def _rng(spec: GenerationRequest, index: int) -> np.random.Generator | None:
    """Sample ``index``'s random stream (``seed + index``); ``None`` when greedy."""
    if spec.greedy:
        return None
    return np.random.default_rng(None if spec.seed is None else spec.seed + index)


def _choose(sample: Sample, logprobs: np.ndarray[Any, Any]) -> int:
    """Greedy, or a draw at the request's temperature within its top-p nucleus."""
    spec = sample.spec
    if sample.rng is None:
        return int(logprobs.argmax())
    weights = np.exp((logprobs - logprobs.max()) / spec.temperature)
    if spec.top_p < 1.0:
        order = np.argsort(-weights)
        kept = weights[order]
        cumulative = np.cumsum(kept)
        keep = cumulative - kept <= spec.top_p * cumulative[-1]
        weights = np.zeros_like(weights)
        weights[order[keep]] = kept[keep]
    cumulative = np.cumsum(weights, dtype=np.float64)
    return int(np.searchsorted(cumulative, sample.rng.random() * cumulative[-1], side="right"))
