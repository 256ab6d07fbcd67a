"""Schemathesis against ponder's own OpenAPI schema, over loopback: whatever a client sends,
valid or not, the server never answers 5xx.

Searches are kept cheap by server-side caps (two iterations, a few dozen tokens, two seconds),
so every generated request that is valid runs a real, bounded search.  The status codes seen
are written to ``test-artifacts/schemathesis.json``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode

from server.args import ServerArgs
from server.engines.base import ServingEngine
from tests.conftest import LiveServer

CAPPED = ServerArgs(
    max_iterations=2,
    max_branching=2,
    max_search_tokens=48,
    max_search_seconds=2,
    max_model_len=512,
)
EXAMPLES = {"/v1/chat/completions": 30}  # per mode; every other route gets 10
STATUSES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def capped_server(engine: ServingEngine) -> Iterator[LiveServer]:
    with LiveServer(engine, CAPPED) as live:
        yield live
    counts = {"requests": sum(STATUSES.values()), "by_status": dict(sorted(STATUSES.items()))}
    out = Path("test-artifacts")
    out.mkdir(exist_ok=True)
    (out / "schemathesis.json").write_text(json.dumps(counts, indent=2) + "\n")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_the_server_fail(capped_server: LiveServer, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{capped_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/models", "/health"}
    served = [card["id"] for card in httpx.get(f"{capped_server.url}/v1/models").json()["data"]]
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not operation.body:
            continue  # only a body can be malformed: a string path parameter is never invalid

        @given(case=operation.as_strategy(generation_mode=mode), model=st.sampled_from(served))
        @settings(
            max_examples=EXAMPLES.get(operation.path, 10),
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Case, model: str) -> None:
            if mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
                case.body["model"] = model  # a served name, so valid bodies reach a search
            response = case.call(timeout=30)
            STATUSES[f"{mode.value} {case.method} {case.path} {response.status_code}"] += 1
            assert response.status_code < 500, response.text

        call()
