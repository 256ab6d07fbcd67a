"""llama.cpp's attention is a server setting: ``--flash-attn off`` runs the other kernel and
``--kv-cache-dtype q8_0`` keeps the cache in 8 bits. Each is really that (not the default under
another name) and answers as the default does, within the rounding llama.cpp's attention allows
anyway; a quantised cache without flash attention is refused before anything loads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from search.engine import GenerationRequest
from server.args import ServerArgs
from server.engines import load_engine
from server.engines.llamacpp.engine import LlamaCppEngine
from tests.conftest import TEST_MODEL, TEST_THREADS
from tests.engines.test_contract import (
    TOLERANCE,
    assert_same_greedy,
    empty_cache,
    generate,
    prompt,
)


@pytest.fixture(scope="module", params=[{"flash_attn": "off"}, {"kv_cache_dtype": "q8_0"}])
def other(request: pytest.FixtureRequest) -> Iterator[LlamaCppEngine]:
    setting: dict[str, Any] = request.param
    engine = load_engine(
        ServerArgs(engine="llamacpp", model=TEST_MODEL, threads=TEST_THREADS, **setting)
    )
    assert isinstance(engine, LlamaCppEngine)
    yield engine
    engine.close()


def test_greedy_answers_agree_with_the_default(
    engine: LlamaCppEngine, other: LlamaCppEngine
) -> None:
    request = GenerationRequest(
        prompt(engine, "Name three rivers of Europe."), max_tokens=24, temperature=0
    )
    empty_cache(engine)
    [[default]] = generate(engine, request)
    [[changed]] = generate(other, request)
    assert len(default.token_ids) > 8
    assert_same_greedy(default, changed, TOLERANCE["llamacpp"])
    # other arithmetic: its logprobs are not bit for bit the default's
    assert [t.logprob for t in default.logprobs] != [t.logprob for t in changed.logprobs]


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="flash_attn"):
        ServerArgs(flash_attn="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kv_cache_dtype"):
        ServerArgs(kv_cache_dtype="q4_0")  # type: ignore[arg-type]


def test_a_quantised_cache_without_flash_attention_is_refused() -> None:
    with pytest.raises(ValueError, match="kv_cache_dtype q8_0 needs flash attention"):
        ServerArgs(kv_cache_dtype="q8_0", flash_attn="off")
    assert ServerArgs(kv_cache_dtype="q8_0", flash_attn="on").kv_cache_dtype == "q8_0"
