"""llama.cpp's attention kernel is a server setting (``--flash-attn``): ``off`` runs the other
kernel, not the same one under another name, and answers as the default does, within the
rounding llama.cpp's attention allows anyway."""

from __future__ import annotations

from collections.abc import Iterator

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


@pytest.fixture(scope="module")
def without_flash() -> Iterator[LlamaCppEngine]:
    engine = load_engine(
        ServerArgs(engine="llamacpp", model=TEST_MODEL, threads=TEST_THREADS, flash_attn="off")
    )
    assert isinstance(engine, LlamaCppEngine)
    yield engine
    engine.close()


def test_without_flash_attention_greedy_answers_agree_with_the_default(
    engine: LlamaCppEngine, without_flash: LlamaCppEngine
) -> None:
    request = GenerationRequest(
        prompt(engine, "Name three rivers of Europe."), max_tokens=24, temperature=0
    )
    empty_cache(engine)
    [[default]] = generate(engine, request)
    [[other]] = generate(without_flash, request)
    assert len(default.token_ids) > 8
    assert_same_greedy(default, other, TOLERANCE["llamacpp"])
    # the other kernel sums in another order: its logprobs are not bit for bit the default's
    assert [t.logprob for t in default.logprobs] != [t.logprob for t in other.logprobs]


def test_an_unknown_flash_attention_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="flash_attn"):
        ServerArgs(flash_attn="sometimes")  # type: ignore[arg-type]
