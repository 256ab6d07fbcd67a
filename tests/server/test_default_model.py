"""The server's default model, Qwen2.5-Coder-0.5B-Instruct, as ``make serve`` runs it: fetched
through the catalogue (``make test`` pulls it first) and served by a real ``ponder serve`` with
no ``--model``.  A few short questions only: the rest of the suite runs the faster test model."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from server.catalogue import DEFAULT
from server.local import live_server
from server.model_source import resolve

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def default_client() -> Iterator[openai.OpenAI]:
    with (
        live_server(None) as base,
        openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0) as client,
    ):
        yield client


def test_the_default_is_qwen_served_under_its_catalogue_name(
    default_client: openai.OpenAI,
) -> None:
    assert DEFAULT == "qwen2.5-coder-0.5b-instruct"
    assert default_client.models.list().data[0].id == DEFAULT
    assert resolve(resolve(None).path).served_name == DEFAULT  # its file maps back to the name


def test_the_default_model_multiplies(default_client: openai.OpenAI) -> None:
    r = default_client.chat.completions.create(
        model=DEFAULT,
        messages=[{"role": "user", "content": "What is 7*8?"}],
        temperature=0,
        max_tokens=60,
        extra_body={"search": {"method": "none"}},
    )
    assert "56" in (r.choices[0].message.content or "")


def test_a_request_that_sets_nothing_votes_on_the_default_model(
    default_client: openai.OpenAI,
) -> None:
    # the server's default search (self-consistency of 4 at temperature 0.3), as a client
    # that knows nothing of ponder gets it; max_tokens bounds all four samples together
    r = default_client.chat.completions.create(
        model=DEFAULT,
        messages=[{"role": "user", "content": "What is 7*8?"}],
        max_tokens=240,
        seed=1,
    )
    search = (r.model_extra or {})["search"]
    assert (search["method"], search["iterations"]) == ("self_consistency", 4)
    assert "56" in (r.choices[0].message.content or "")
    assert r.usage is not None and r.usage.completion_tokens <= 240
