"""``GET /v1/models``: the served model and its ``<name>:<method>`` aliases."""

from __future__ import annotations

from search import METHODS
from server.engines.base import ServingEngine
from server.openai.protocol import ModelCard, ModelList

# a chat request for ``<model>:<method>`` searches with that method
ALIASES: tuple[str, ...] = tuple(METHODS)


def model_list(engine: ServingEngine) -> ModelList:
    """The served model, then one alias per search method, each with the context length."""
    name, limit = engine.model_name, engine.max_model_len
    ids = [name, *(f"{name}:{m}" for m in ALIASES)]
    return ModelList(data=[ModelCard(id=i, root=name, max_model_len=limit) for i in ids])
