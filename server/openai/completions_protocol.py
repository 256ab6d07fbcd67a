"""OpenAI's legacy ``/v1/completions`` wire models, with the vLLM extensions ponder's upstream
engine sends: plain generation with no search, so one ponder can serve as another's upstream."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import ConfigDict, Field

from search.params import MAX_SAMPLES
from server.openai.protocol import OpenAIBaseModel, StreamOptions, Usage


class StructuredOutputs(OpenAIBaseModel):
    """vLLM's ``structured_outputs``, of which ponder takes the ``grammar``: an llguidance
    grammar (Lark, ``%json {...}`` for a JSON schema), what ponder's upstream engine sends."""

    model_config = ConfigDict(extra="forbid")

    grammar: str = Field(min_length=1)


class CompletionRequest(OpenAIBaseModel):
    """``POST /v1/completions`` body (OpenAI's legacy completions, with vLLM's extensions):
    plain generation with no search, so one ponder can serve as another's upstream."""

    model: str
    prompt: str | list[str] | list[int] | list[list[int]] = Field(min_length=1)
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=MAX_SAMPLES)
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # vLLM's extensions, which ponder's upstream engine sends
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    return_tokens_as_token_ids: bool = False
    structured_outputs: StructuredOutputs | None = None
    # ponder's own: the prompt's last tokens the grammar has read already (a search that
    # continues a constrained path), so the generated text goes on from there
    constraint_done: int = Field(0, ge=0)


class CompletionLogprobs(OpenAIBaseModel):
    """OpenAI's per-token ``logprobs`` of one completion choice."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(OpenAIBaseModel):
    """One generated text."""

    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"]
    stop_reason: str | int | None = None


class CompletionResponse(OpenAIBaseModel):
    """``POST /v1/completions`` response."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class CompletionChunkChoice(CompletionChoice):
    """What one choice adds in a chunk of a streamed completion: its new text and tokens, and
    at its end how it finished."""

    finish_reason: Literal["stop", "length"] | None = None  # type: ignore[assignment]


class CompletionChunk(OpenAIBaseModel):
    """One ``data:`` frame of a streamed ``/v1/completions`` (the last, with
    ``stream_options.include_usage``, carries the usage and no choices)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChunkChoice]
    usage: Usage | None = None
