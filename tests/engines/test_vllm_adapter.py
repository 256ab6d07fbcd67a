"""The vLLM adapter's own mapping, where vLLM is importable (a GPU is not needed): vLLM's real
``SamplingParams``, ``CompletionOutput`` and ``Logprob`` objects around a stand-in for
``AsyncLLM`` (only the engine core is replaced: a stand-in can fail one request of a batch on
cue, or die, which a real GPU engine cannot be made to do).  Skipped, with the reason, where
vLLM is not installed (CI); run by bench/gpu on the GPU machine.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from search.engine import SEED_BOUND, Constraint, EngineFault, GenerationRequest, RequestRejected
from server.engines.vllm_engine import VllmEngine
from server.model_source import resolve
from tests.conftest import TEST_MODEL

if importlib.util.find_spec("vllm") is None:
    pytest.skip(
        "vLLM adapter not tested: vllm is not installed (pip install 'ponder[vllm]')",
        allow_module_level=True,
    )

from vllm.logprobs import Logprob
from vllm.outputs import CompletionOutput
from vllm.sampling_params import SamplingParams
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineGenerateError

CONFIG_EOS = 4242  # an end-of-sequence id only the generation config names
Script = Callable[[list[int], SamplingParams], Awaitable[list[CompletionOutput]]]


def output(ids: list[int], finish: str = "length", stop: int | str | None = None) -> Any:
    """A finished ``CompletionOutput`` whose every token was the top choice."""
    return CompletionOutput(
        index=0,
        text="",
        token_ids=ids,
        cumulative_logprob=None,
        logprobs=[{t: Logprob(-0.5, rank=1), t + 1: Logprob(-1.5, rank=2)} for t in ids],
        finish_reason=finish,
        stop_reason=stop,
    )


class StandIn:
    """Answers ``generate`` from a script; records the params it was given and the requests
    that were abandoned before they finished (vLLM aborts those)."""

    def __init__(self) -> None:
        self.model_config = SimpleNamespace(
            max_model_len=256,
            try_get_generation_config=lambda: {"eos_token_id": [CONFIG_EOS]},
        )
        self.errored = False
        self.seen: list[SamplingParams] = []
        self.abandoned: list[str] = []
        self.script: Script = self.plain

    @staticmethod
    async def plain(prompt: list[int], params: SamplingParams) -> list[CompletionOutput]:
        return [output([11, 12, 13])] * params.n

    async def generate(
        self, prompt: dict[str, Any], params: SamplingParams, request_id: str
    ) -> AsyncIterator[Any]:
        self.seen.append(params)
        try:
            outputs = await self.script(prompt["prompt_token_ids"], params)
        except asyncio.CancelledError:
            self.abandoned.append(request_id)
            raise
        yield SimpleNamespace(outputs=outputs, num_cached_tokens=0)

    def shutdown(self) -> None:
        pass


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[VllmEngine, StandIn]]:
    fake = StandIn()
    monkeypatch.setattr(AsyncLLM, "from_engine_args", lambda *_, **__: fake)
    engine = VllmEngine(resolve(TEST_MODEL), {})
    yield engine, fake
    engine.close()


def call(engine: VllmEngine, *requests: GenerationRequest) -> Any:
    return asyncio.run(engine.generate(list(requests)))


def test_the_generation_configs_end_of_sequence_ids_are_the_searchs_too(
    stand_in: tuple[VllmEngine, StandIn],
) -> None:
    engine, _ = stand_in
    assert CONFIG_EOS in engine.tokenizer.eos_token_ids


def test_a_request_maps_to_sampling_params_and_back(stand_in: tuple[VllmEngine, StandIn]) -> None:
    engine, fake = stand_in
    request = GenerationRequest((1, 2, 3), max_tokens=3, n=2, seed=SEED_BOUND - 1, stop=("x",))
    [samples] = call(engine, request)
    [params] = fake.seen
    assert (params.n, params.seed, params.stop, params.logprobs) == (2, SEED_BOUND - 1, ["x"], 5)
    assert params.include_stop_str_in_output
    # vLLM gives sample i the seed seed + i and keeps it in an int64 array
    assert params.seed + params.n - 1 < 2**63
    assert [s.token_ids for s in samples] == [(11, 12, 13)] * 2
    assert samples[0].logprobs[0].top == ((11, -0.5), (12, -1.5))


def test_a_constraint_is_vllms_grammar_and_a_continued_path_is_refused(
    stand_in: tuple[VllmEngine, StandIn],
) -> None:
    """vLLM holds a call to its grammar from the first token: it cannot resume one."""
    engine, fake = stand_in
    grammar = 'start: "yes" | "no"'
    call(engine, GenerationRequest((1, 2), max_tokens=3, constraint=Constraint(grammar)))
    [params] = fake.seen
    assert params.structured_outputs.grammar == grammar
    continued = GenerationRequest((1, 2), max_tokens=3, constraint=Constraint(grammar, done=(2,)))
    with pytest.raises(RequestRejected) as refused:
        call(engine, continued)
    assert refused.value.param == "constraint" and len(fake.seen) == 1
    assert engine.health() is None


def test_greedy_asks_for_one_sample_and_repeats_it(stand_in: tuple[VllmEngine, StandIn]) -> None:
    engine, fake = stand_in
    [samples] = call(engine, GenerationRequest((1, 2), max_tokens=3, n=3, temperature=0))
    assert fake.seen[0].n == 1 and len(samples) == 3


def test_what_vllm_refuses_is_the_clients_doing_and_spares_health(
    stand_in: tuple[VllmEngine, StandIn],
) -> None:
    engine, fake = stand_in
    for _ in range(5):
        with pytest.raises(RequestRejected, match="empty"):
            call(engine, GenerationRequest((1, 2), max_tokens=3, stop=("",)))
        with pytest.raises(RequestRejected, match="context length") as too_long:
            call(engine, GenerationRequest((1,) * 250, max_tokens=10))
        assert too_long.value.param == "max_tokens"
    assert fake.seen == [] and engine.stats.requests_in_flight == 0
    assert engine.health() is None


def test_a_finish_reason_that_is_not_a_finished_sample_is_a_fault(
    stand_in: tuple[VllmEngine, StandIn],
) -> None:
    engine, fake = stand_in
    for reason in ("abort", "error", "repetition"):

        async def ended(prompt: list[int], params: SamplingParams, why: str = reason) -> Any:
            return [output([5, 6], finish=why)]

        fake.script = ended
        with pytest.raises(EngineFault, match=reason):
            call(engine, GenerationRequest((1, 2), max_tokens=3))


def test_one_failed_request_cancels_its_siblings(stand_in: tuple[VllmEngine, StandIn]) -> None:
    engine, fake = stand_in
    release = asyncio.Event()

    async def one_fails(prompt: list[int], params: SamplingParams) -> Any:
        if prompt[0] == 1:
            raise EngineGenerateError()
        await release.wait()  # never set: only cancellation ends it
        return [output([7])]

    fake.script = one_fails
    with pytest.raises(EngineFault):
        call(
            engine,
            GenerationRequest((1, 2), max_tokens=3),
            GenerationRequest((2, 2), max_tokens=3),
            GenerationRequest((3, 2), max_tokens=3),
        )
    assert len(fake.abandoned) == 2


def test_closing_fails_the_calls_still_waiting(stand_in: tuple[VllmEngine, StandIn]) -> None:
    engine, fake = stand_in

    async def endless(prompt: list[int], params: SamplingParams) -> Any:
        await asyncio.Event().wait()

    async def close_midway() -> None:
        waiting = asyncio.ensure_future(engine.generate([GenerationRequest((1,), max_tokens=3)]))
        while not fake.seen:  # the request has reached the engine core
            await asyncio.sleep(0.01)
        await asyncio.to_thread(engine.close)
        with pytest.raises(EngineFault, match="closed"):
            await asyncio.wait_for(waiting, timeout=60)

    fake.script = endless
    asyncio.run(close_midway())
    assert fake.abandoned and engine.health() == "the engine is closed"


def test_a_dead_engine_core_is_unhealthy(stand_in: tuple[VllmEngine, StandIn]) -> None:
    engine, fake = stand_in
    assert engine.health() is None
    fake.errored = True
    assert engine.health() == "vLLM's engine core has stopped"


def test_seeds_beyond_the_bound_never_reach_an_engine() -> None:
    with pytest.raises(ValueError, match="seed"):
        GenerationRequest((1,), max_tokens=1, seed=SEED_BOUND)
