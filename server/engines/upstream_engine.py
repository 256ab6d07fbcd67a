"""The upstream engine: a fleet of OpenAI-compatible servers (``vllm serve``, or another ponder)
behind the engine interface, through their ``POST /v1/completions``.

Prompts go as token ids from the local tokenizer (``--tokenizer``), so ids match the fleet's;
logprobs come back as ``token_id:N`` strings (vLLM's ``return_tokens_as_token_ids``) and stop
strings stay in the output (``include_stop_str_in_output``), as the engine interface wants.
A constraint goes as vLLM's ``structured_outputs.grammar`` (llguidance's Lark, which vLLM's
guidance backend reads); only another ponder also resumes one inside a constrained path.
Each call goes to the replica that rendezvous hashing of the prompt's leading tokens ranks
first, so a search keeps hitting the replica whose prefix cache holds its prompt; a replica
that refuses connections or answers 5xx (or 429) is retried with backoff on the next one, and
left alone for a while.  A 400, 413 or 422 refuses the call itself (the client's doing, not
retried); any other 4xx refuses ponder's own setup (its key or model name): a fault.  Each
replica takes at most ``max_concurrency`` calls at once.  The connection pool and those
limits live on the engine's own event loop (they are bound to the loop they are used on),
which every caller's loop hands its calls to; closing the engine closes the pool.  A thread
probes every replica's ``/health``: one that fails is passed over until it answers again, one
that answers takes calls at once, and the engine (so ponder's own ``/health``) is down while
no replica answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from search.engine import Completion, GenerationRequest
from server.args import ServerArgs
from server.engines.base import BaseEngine
from server.engines.constraints import from_the_start
from server.engines.event_loop import EngineLoop
from server.engines.foreign import foreign_completion
from server.engines.hf_tokenizer import HFTokenizer
from server.engines.upstream_stream import UpstreamError, positions, read_stream, refused
from server.model_source import ModelSource, resolve

logger = logging.getLogger(__name__)

PREFIX_TOKENS = 64  # leading prompt tokens that pick the replica
DOWN_SECONDS = 5.0  # how long a failed replica is passed over
RETRIES = 3  # rounds over the replicas before a call fails
REFUSALS = (400, 413, 422)  # the call itself was refused


@dataclass(eq=False)
class Replica:
    """One upstream server: its URL, its concurrency limit (awaited on the engine's loop only,
    so bound to it), until when calls pass it over, and whether its last health probe answered."""

    url: str
    slots: asyncio.Semaphore
    down_until: float = 0.0
    healthy: bool = True

    def probe(self, client: httpx.Client) -> None:
        """``GET /health``: a replica that answers 200 takes calls again at once (even while
        resting after a failed call); one that does not is passed over until it does."""
        try:
            self.healthy = client.get(f"{self.url}/health").status_code == 200
        except httpx.HTTPError:
            self.healthy = False
        self.down_until = 0.0 if self.healthy else math.inf

    def weight(self, key: bytes) -> int:
        """Rendezvous (highest random weight) score of this replica for ``key``."""
        digest = hashlib.blake2b(key + self.url.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")


class UpstreamEngine(BaseEngine):
    """``search.engine.Engine`` over ``POST {url}/v1/completions`` of a set of replicas."""

    def __init__(
        self,
        urls: Sequence[str],
        tokenizer: HFTokenizer,
        *,
        served_name: str | None = None,
        max_concurrency: int = 32,
        timeout: float = 600.0,
        probe_seconds: float = 5.0,
    ) -> None:
        if not urls:
            raise ValueError("the upstream engine needs at least one --upstream URL")
        self._replicas = [
            Replica(url.rstrip("/"), asyncio.Semaphore(max_concurrency)) for url in urls
        ]
        self._model, self.max_model_len, owner = self._discover()
        # another ponder resumes a grammar inside a constrained path (``constraint_done``);
        # a vLLM fleet holds a call to it from the call's first token only
        self._resumes = owner == "ponder"
        super().__init__(served_name or self._model, tokenizer)
        self._loop = EngineLoop("ponder-upstream")
        self._client = self._loop.call(
            _open(
                httpx.Timeout(timeout, connect=5.0),
                httpx.Limits(max_keepalive_connections=max_concurrency),
            )
        )
        self._stop_probing = threading.Event()
        self._prober = threading.Thread(
            target=self._probe, args=(probe_seconds,), name="ponder-upstream-health", daemon=True
        )
        self._prober.start()

    @classmethod
    def from_args(cls, args: ServerArgs, source: ModelSource) -> UpstreamEngine:
        """The fleet ``--upstream`` lists, read with ``--tokenizer`` (default: the model's)."""
        fleet_tokenizer = resolve(args.tokenizer) if args.tokenizer else source
        return cls(
            args.upstreams,
            HFTokenizer.load(fleet_tokenizer.tokenizer_folder()),
            served_name=args.served_model_name,
            probe_seconds=args.upstream_probe_seconds,
        )

    def _probe(self, every: float) -> None:
        """Every ``every`` seconds, probe each replica's ``/health``."""
        with httpx.Client(timeout=min(every, 5.0)) as client:
            while not self._stop_probing.wait(every):
                for replica in self._replicas:
                    replica.probe(client)

    def _discover(self) -> tuple[str, int, str]:
        """The fleet's model name, context length and owner (``ponder`` for another ponder),
        from the first replica that answers."""
        for replica in self._replicas:
            try:
                card = httpx.get(f"{replica.url}/v1/models", timeout=10).json()["data"][0]
            except (httpx.HTTPError, KeyError, IndexError, ValueError):
                continue
            model_len = int(card.get("max_model_len") or 2048)
            return str(card["id"]), model_len, str(card.get("owned_by", ""))
        raise UpstreamError(
            f"no upstream answered GET /v1/models: {[r.url for r in self._replicas]}"
        )

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Every request of the call, concurrently, each on its prompt's replica; a constraint
        goes as vLLM's ``structured_outputs.grammar`` (what a ponder fleet takes too)."""
        if not self._resumes:
            for request in requests:
                from_the_start(request, "a vLLM fleet")
        with self._calling():
            return await self._loop.run(self._generate_all(requests))

    def health(self) -> str | None:
        """Down when closed, after failed calls in a row, or when no replica passes its probe."""
        problem = super().health()
        if problem is None and not any(r.healthy for r in self._replicas):
            return "no upstream replica answers GET /health"
        return problem

    def close(self) -> None:
        """Stop probing, fail the calls still running, close the connection pool and stop the
        engine's loop (once: a second close finds nothing to do)."""
        if self._health.closed:
            return
        self._health.closed = True
        self._stop_probing.set()
        self._prober.join(timeout=10)
        self._loop.cancel_all()
        self._loop.call(self._client.aclose())
        self._loop.stop()

    def ranked(self, prompt: Sequence[int]) -> list[Replica]:
        """Replicas in rendezvous order for ``prompt``; the ones resting after a failure last."""
        key = ",".join(map(str, prompt[:PREFIX_TOKENS])).encode()
        order = sorted(self._replicas, key=lambda r: r.weight(key), reverse=True)
        now = time.monotonic()
        return [r for r in order if r.down_until <= now] + [r for r in order if r.down_until > now]

    async def _generate_all(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """On the engine's loop: the call's requests, concurrently."""
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, request: GenerationRequest) -> list[Completion]:
        """One request's samples: one call, or, where a halt may stop a sample, one streamed
        call per sample (seed ``seed + i``, as sample ``i`` of one call has), so that closing
        a halted sample's stream stops it alone."""
        if request.halt is None or request.n == 1 or request.greedy:
            return await self._call(request, 0, request.n, request.seed)
        seeds = [None if request.seed is None else request.seed + i for i in range(request.n)]
        calls = (self._call(request, i, 1, seed) for i, seed in enumerate(seeds))
        return [sample for samples in await asyncio.gather(*calls) for sample in samples]

    async def _call(
        self, request: GenerationRequest, first: int, n: int, seed: int | None
    ) -> list[Completion]:
        """Samples ``first`` to ``first + n`` of ``request`` from the fleet, retried on the next
        replica while none has answered; streamed where the request is watched or halted."""
        stream = request.watch is not None or request.halt is not None
        body = self._body(request, n, seed, stream)
        errors: list[str] = []
        for attempt in range(RETRIES):
            for replica in self.ranked(request.prompt_token_ids):
                url = f"{replica.url}/v1/completions"
                try:
                    async with (
                        replica.slots,
                        self._client.stream("POST", url, json=body) as response,
                    ):
                        if response.status_code >= 500 or response.status_code == 429:  # busy
                            errors.append(f"{replica.url}: {response.status_code}")
                            replica.down_until = time.monotonic() + DOWN_SECONDS
                            continue
                        if response.status_code >= 400:
                            await response.aread()
                            if response.status_code in REFUSALS:
                                raise refused(_json_or_none(response), response.text)
                            raise UpstreamError(f"{replica.url} answered {response.status_code}")
                        if stream:
                            completions = await read_stream(
                                response, request, first, n, self._tokenizer
                            )
                        else:
                            completions = self._completions(
                                json.loads(await response.aread()), request
                            )
                except httpx.TransportError as exc:  # before any answer (read_stream turns a
                    errors.append(f"{replica.url}: {exc!r}")  # broken stream into a fault)
                    replica.down_until = time.monotonic() + DOWN_SECONDS
                    continue
                self._stats.generated_tokens += sum(len(c.token_ids) for c in completions)
                return completions
            await asyncio.sleep(0.2 * 2**attempt)
        raise UpstreamError("every upstream failed: " + "; ".join(errors[-3:]))

    def _body(
        self, request: GenerationRequest, n: int, seed: int | None, stream: bool
    ) -> dict[str, Any]:
        """The ``/v1/completions`` body of ``n`` of the request's samples from ``seed``."""
        return {
            "model": self._model,
            "prompt": list(request.prompt_token_ids),
            "max_tokens": request.max_tokens,
            "n": n,
            "stream": stream,
            "temperature": request.temperature,
            "top_p": request.top_p,
            # neutral values said outright: `vllm serve` fills missing ones from the model's
            # generation_config.json, so the fleet would sample unlike every other engine
            "top_k": 0,
            "min_p": 0.0,
            "repetition_penalty": 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "seed": seed,
            "stop": list(request.stop),
            "stop_token_ids": list(request.stop_token_ids),
            "logprobs": max(request.logprobs, 1),
            "include_stop_str_in_output": True,
            "return_tokens_as_token_ids": True,
            **_constrained(request),
        }

    def _completions(self, payload: dict[str, Any], request: GenerationRequest) -> list[Completion]:
        """Map OpenAI's ``choices[].logprobs`` back to the engine interface."""
        return [
            foreign_completion(
                positions(choice["logprobs"]),
                choice["finish_reason"],
                choice.get("stop_reason"),
                request.logprobs,
                self._tokenizer,
            )
            for choice in sorted(payload["choices"], key=lambda c: c["index"])
        ]


async def _open(timeout: httpx.Timeout, limits: httpx.Limits) -> httpx.AsyncClient:
    """The keep-alive pool, made on the engine's loop (a pool cannot cross loops)."""
    return httpx.AsyncClient(timeout=timeout, limits=limits)


def _constrained(request: GenerationRequest) -> dict[str, Any]:
    """The body's fields for a request's constraint: its grammar, and (only ever sent to
    another ponder) how many of the prompt's last tokens the grammar has read already."""
    if request.constraint is None:
        return {}
    fields: dict[str, Any] = {"structured_outputs": {"grammar": request.constraint.grammar}}
    if request.constraint.done:
        fields["constraint_done"] = len(request.constraint.done)
    return fields


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
