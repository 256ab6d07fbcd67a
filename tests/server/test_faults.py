"""Fault injection on the real engine: a failing generation fails its own request alone."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from server.engines.llamacpp.engine import LlamaCppEngine
from tests.conftest import TINY_SEARCH, LiveServer


@pytest.fixture()
def poisoned(engine: LlamaCppEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generation raises, inside the engine's scheduler, for any prompt that mentions POISON;
    the others, batched in the same decode steps, run as usual."""
    real = engine._scheduler._take

    def faulty(running: Any, logprobs: Any, top: Any) -> None:
        if "POISON" in engine.tokenizer.decode(running.group.spec.prompt_token_ids):
            raise RuntimeError("injected engine fault")
        real(running, logprobs, top)

    monkeypatch.setattr(engine._scheduler, "_take", faulty)


def body(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 12,
        "seed": 1,
        "search": TINY_SEARCH,
        **extra,
    }


@pytest.mark.usefixtures("poisoned")
def test_a_fault_fails_its_request_and_spares_the_neighbour(
    server: LiveServer, model_name: str
) -> None:
    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as c:
            return list(
                await asyncio.gather(
                    c.post("/v1/chat/completions", json=body(model_name, "POISON: what is 2+2?")),
                    c.post("/v1/chat/completions", json=body(model_name, "What is 2+2?")),
                )
            )

    bad, good = asyncio.run(both())
    assert bad.status_code == 500
    assert bad.json()["error"]["type"] == "internal_error"
    assert good.status_code == 200 and good.json()["choices"][0]["message"]["content"]


@pytest.mark.usefixtures("poisoned")
def test_a_fault_mid_stream_ends_it_with_an_error_frame(
    server: LiveServer, model_name: str
) -> None:
    with httpx.stream(
        "POST",
        f"{server.url}/v1/chat/completions",
        timeout=120,
        json=body(model_name, "POISON", stream=True),
    ) as r:
        frames = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert r.status_code == 200
    assert frames[-1] == "[DONE]"
    assert json.loads(frames[-2])["error"]["type"] == "internal_error"


@pytest.mark.usefixtures("poisoned")
def test_a_fault_mid_response_stream_ends_it_with_an_error_event(
    server: LiveServer, model_name: str
) -> None:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0) as client:
        stream = client.responses.create(
            model=model_name,
            input="POISON",
            stream=True,
            max_output_tokens=12,
            extra_body={"seed": 1, "search": TINY_SEARCH},
        )
        events = list(stream)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    error = events[-1]
    assert error.type == "error" and error.code == "internal_error"
    assert error.message == "Internal error: RuntimeError"
    assert not any(e.type == "response.completed" for e in events)


@pytest.mark.usefixtures("poisoned")
def test_health_reports_an_engine_that_keeps_failing(server: LiveServer, model_name: str) -> None:
    for _ in range(3):
        httpx.post(
            f"{server.url}/v1/chat/completions", json=body(model_name, "POISON"), timeout=120
        )
    down = httpx.get(f"{server.url}/health")
    assert down.status_code == 503 and "injected engine fault" in down.json()["reason"]
    ok = httpx.post(f"{server.url}/v1/chat/completions", json=body(model_name, "Hi"), timeout=120)
    assert ok.status_code == 200
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
