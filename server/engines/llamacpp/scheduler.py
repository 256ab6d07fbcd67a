"""The llama.cpp scheduler thread, which batches continuously.

Every decode step carries the next token of each running sample of every call in flight, plus
chunks of prompts being prefilled; new calls join at the next step, finished or cancelled
samples leave at once.  A prompt is decoded once and forked into its ``n`` samples (the KV cache
is unified, so forks share the prompt's cells).  A finished sample's sequence stays resident in
a bounded LRU prefix cache; a new prompt starts from the longest cached prefix, so a search
re-reading its tree's paths only computes what is new.  When the KV cache is full, the newest
call gives its cells back and starts again later (as vLLM preempts by recomputation).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.engine import Completion, EngineFault, GenerationRequest, RequestRejected
from server.engines import sampling
from server.engines.calls import Call, CallQueue
from server.engines.hf_tokenizer import HFTokenizer
from server.engines.llamacpp.context import BATCH_TOKENS, LlamaContext
from server.engines.prefix_cache import PrefixCache
from server.engines.samples import Sample
from server.engines.stats import EngineStats

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class LlamaCall(Call):
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

    call: LlamaCall
    request: int
    spec: GenerationRequest
    seq: int = -1
    spare: list[int] = field(default_factory=list)  # reserved for samples 1..n-1
    fed: int = 0  # prompt tokens already in the KV cache
    cached: int = 0  # of them, those taken from the prefix cache
    samples: list[_Running] = field(default_factory=list)


@dataclass(eq=False)
class _Running:
    """A sample being decoded: its sequence id, and the token to feed it next at ``pos``."""

    group: _Group
    sample: Sample
    seq: int
    pos: int  # until the first token is sampled: the prompt's last position
    next_token: int = -1


class Scheduler:
    """The thread that owns a :class:`LlamaContext`: it alone decodes on it, and frees it when
    it stops."""

    def __init__(
        self,
        context: LlamaContext,
        tokenizer: HFTokenizer,
        stats: EngineStats,
        prefix_cache_tokens: int,
    ) -> None:
        self.queue: CallQueue[LlamaCall] = CallQueue()
        self._context = context
        self._tokenizer = tokenizer
        self._stats = stats
        self._free = list(range(context.max_sequences))
        self._cache: PrefixCache[int] = PrefixCache(prefix_cache_tokens)
        self._arrivals = itertools.count()
        self._admission_paused = False
        self._resets: list[threading.Event] = []
        self._waiting: list[_Group] = []  # not yet given sequences
        self._prefilling: list[_Group] = []
        self._running: list[_Running] = []
        self.thread = threading.Thread(target=self._run, name="ponder-llamacpp", daemon=True)
        self.thread.start()

    def reset_prefix_cache(self) -> None:
        """Forget every cached prefix; when nothing runs, empty the KV cache too (waits)."""
        done = threading.Event()
        self.queue.notify(lambda: self._resets.append(done))
        done.wait()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._context.free()

    def _loop(self) -> None:
        while True:
            queue = self.queue
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

    def _calls(self) -> list[LlamaCall]:
        """Calls with work in the engine, oldest first."""
        groups = [*self._waiting, *self._prefilling, *(r.group for r in self._running)]
        return list({id(g.call): g.call for g in groups}.values())

    def _drop_cancelled(self) -> None:
        for call in self._calls():
            if call.cancelled.is_set():
                self._release(call)

    def _release(self, call: LlamaCall, error: BaseException | None = None) -> None:
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
        and starts again from its prompt once an older call has finished; admission waits
        until then.  A call that does not fit alone is refused."""
        holding = [c for c in self._calls() if any(g not in self._waiting for g in c.groups)]
        victim = max(holding, key=lambda c: c.number)
        if len(holding) == 1:
            self._release(victim, RequestRejected(_too_big(self._context.cells), "max_tokens"))
            return
        logger.info("KV cache full: preempting the newest call (%d calls hold cells)", len(holding))
        self._stats.preemptions += 1
        self._release(victim)
        self._waiting += victim.restart()
        self._admission_paused = True

    def _fail_all(self, exc: BaseException) -> None:
        for call in self._calls():
            self._release(call, exc)
        self._free = list(range(self._context.max_sequences))
        self._cache = PrefixCache(self._cache.max_tokens)
        self._context.clear()

    def _clear_cache(self) -> None:
        while (seq := self._cache.pop_oldest()) is not None:
            self._free_seq(seq)
        if not (self._waiting or self._prefilling or self._running):
            self._context.clear()

    def _free_seq(self, seq: int) -> None:
        self._context.remove(seq)
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
                self._context.share_prefix(source, group.seq, reuse)
            group.fed = group.cached = reuse
            self._stats.prompt_tokens_cached += reuse + len(prompt) * (n - 1)
            self._stats.prompt_tokens_computed += len(prompt) - reuse
            self._prefilling.append(group)

    def _step(self) -> None:
        """One decode: a token for every running sample, then prompt chunks; sample from it."""
        room = BATCH_TOKENS
        outputs: list[_Running | _Group] = []
        rows = 0
        for running in self._running:
            self._context.put(rows, running.next_token, running.pos, running.seq, logits=True)
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
                self._context.put(rows, token, group.fed + j, group.seq, logits=last)
                rows += 1
            room -= len(chunk)
            fed.append((group, len(chunk)))
            if ends:
                outputs.append(group)
        self._decode(rows)
        for group, count in fed:
            group.fed += count
        self._stats.record_step(len(outputs))
        logits = self._context.logits(len(outputs))
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
        if samples:  # none when the step fed only the middle of a long prompt
            self._advance(samples, logits[row_of])

    def _decode(self, rows: int) -> None:
        """``llama_decode``, making room in the KV cache from the prefix cache if it is full."""
        while (status := self._context.decode(rows)) == 1:
            evicted = self._cache.pop_oldest()
            if evicted is None:
                raise _KvCacheFull
            self._free_seq(evicted)
        if status != 0:
            raise EngineFault(f"llama_decode failed with status {status}")

    def _fork(self, group: _Group) -> list[_Running]:
        """The prompt is in the cache: give each of the ``n`` samples its own sequence."""
        length = len(group.spec.prompt_token_ids)
        seqs, group.spare = [group.seq, *group.spare], []
        for seq in seqs[1:]:
            self._context.fork(group.seq, seq)
        group.samples = [
            _Running(group, self._sample(group, i), seq, length - 1) for i, seq in enumerate(seqs)
        ]
        self._running += group.samples
        return group.samples

    @staticmethod
    def _sample(group: _Group, index: int) -> Sample:
        """Sample ``index`` of ``group``, which knows how much of its prompt was cached."""
        spec = group.spec
        sample = Sample(group.request, index, spec, sampling.generator(spec, index))
        sample.cached_tokens = group.cached
        sample.guide = group.call.guide(group.request)
        return sample

    def _advance(self, samples: list[_Running], logits: np.ndarray[Any, Any]) -> None:
        """Choose each sample's next token, record its logprobs, and retire finished ones."""
        logprobs = sampling.log_softmax(logits)
        top = sampling.top_candidates(logprobs, max(r.sample.spec.logprobs for r in samples))
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
        sample = running.sample
        token = sample.advance(logprobs, top, self._tokenizer)
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
