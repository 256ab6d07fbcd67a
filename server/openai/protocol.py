"""OpenAI wire models: the shared base, errors, usage, the model list, chat completions (with
ponder's ``search`` object); completions' are in completions_protocol.py.

Request fields follow the order of OpenAI's docs; unknown OpenAI fields are tolerated (as vLLM
does), while the ``search`` extension is strict so a typo is a 400 that names the field.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from search.engine import FinishReason
from search.formats import ReasoningFormat
from search.presets import Effort
from search.trace import TraceNode
from server.openai.search_options import SearchOptions


class OpenAIBaseModel(BaseModel):
    """Base of every wire model: extra fields are kept, not rejected."""

    model_config = ConfigDict(extra="allow")

    def wire(self) -> str:
        """This object as JSON on the wire, alike in a JSON body and in a stream chunk: a
        ``None`` field of a wire model is left out (a tree node's own fields are kept)."""
        return to_json(_pruned(self), inf_nan_mode="null").decode()


def _pruned(value: Any) -> Any:
    """``value`` with the ``None`` fields of every wire model in it left out."""
    if isinstance(value, BaseModel):
        return {name: _pruned(v) for name, v in value if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def stop_strings(stop: str | list[str] | None) -> tuple[str, ...]:
    """A request's ``stop`` (one string, a list, or none) as the strings it names."""
    return (stop,) if isinstance(stop, str) else tuple(stop or ())


class TextPart(OpenAIBaseModel):
    """A text content part of a message."""

    type: Literal["text"]
    text: str


class FunctionCall(OpenAIBaseModel):
    """A called function: its name and its arguments as JSON text."""

    name: str
    arguments: str


class ToolCall(OpenAIBaseModel):
    """One tool call of an assistant message."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionDefinition(OpenAIBaseModel):
    """A function the model may call: its name, what it does, its parameters' JSON schema."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(OpenAIBaseModel):
    """One entry of ``tools``."""

    type: Literal["function"]
    function: FunctionDefinition


ToolChoiceOption = Literal["none", "auto", "required"]


class NamedToolChoice(OpenAIBaseModel):
    """``tool_choice`` naming one function."""

    type: Literal["function"]
    function: dict[str, str]


class ChatMessage(OpenAIBaseModel):
    """One input message; content may be a string or text parts.  An assistant message may
    carry the ``tool_calls`` it made, and a ``tool`` message answers one by ``tool_call_id``."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's content as one string."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(OpenAIBaseModel):
    """``stream_options``: whether a final chunk carries the usage."""

    include_usage: bool = False


class ChatCompletionRequest(OpenAIBaseModel):
    """``POST /v1/chat/completions`` body."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    n: int = Field(
        1,
        ge=1,
        description="choices to generate: for method none n samples of one engine call, "
        "else n searches at once (capped by the server's --max-n)",
    )
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    reasoning_effort: Effort | None = Field(
        None,
        description="how hard to think: a search preset (search/presets.py, README "
        "'reasoning_effort'); the model alias's method and the request's search fields "
        "override it; unset: the server's defaults",
    )
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    user: str | None = None
    response_format: dict[str, Any] | None = None
    tool_choice: ToolChoiceOption | NamedToolChoice | None = None
    tools: list[Tool] | None = Field(None, max_length=128)  # OpenAI's limit
    parallel_tool_calls: bool | None = None
    # ponder extensions
    search: SearchOptions | None = None
    reasoning_format: ReasoningFormat | None = Field(
        None,
        description="how the model is asked to lay out its reasoning, and where its answer "
        "begins (default: the server's --reasoning-format)",
    )
    timeout: float | None = Field(
        None,
        gt=0,
        le=86_400,
        description="deadline in seconds; the best answer so far is "
        "returned when it passes (finish_reason 'length', search.ended_by 'max_seconds')",
    )


class SearchInfo(OpenAIBaseModel):
    """ponder's ``search`` object: what the search did and what the answer scored."""

    method: str
    reasoning_format: str
    parallel: int  # MCTS leaves expanded together (``--adaptive-parallel`` may widen it)
    iterations: int
    nodes: int
    generated_tokens: int
    reward: float
    ended_by: str  # why the search ended: completed, consensus, a budget, interrupted
    # how a sampling method (or MCTS among whole answers) chose: vote, consensus, reward or
    # verifier
    chosen_by: str | None = None
    tree: list[TraceNode] | None = None


class SearchProgress(OpenAIBaseModel):
    """How far a streaming search has come (sent when ``search.progress`` is set)."""

    round: int
    iterations: int
    nodes: int
    best_reward: float


class CompletionTokensDetails(OpenAIBaseModel):
    """Breakdown of completion tokens."""

    reasoning_tokens: int = 0


class PromptTokensDetails(OpenAIBaseModel):
    """Breakdown of prompt tokens."""

    cached_tokens: int = 0


class Usage(OpenAIBaseModel):
    """Token counts of one response: ``completion_tokens`` is every token generated for it."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)
    completion_tokens_details: CompletionTokensDetails = Field(
        default_factory=CompletionTokensDetails
    )


class ResponseMessage(OpenAIBaseModel):
    """The assistant's message; reasoning under both vLLM's and DeepSeek's names."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None


# OpenAI's finish reasons that ponder gives: how the text ended, or that it called tools
WireFinishReason = FinishReason | Literal["tool_calls"]


class TopLogprob(OpenAIBaseModel):
    """One likely token at a position of the answer: its text, logprob and UTF-8 bytes."""

    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobs(TopLogprob):
    """One token of the answer, and the most likely tokens at its position."""

    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(OpenAIBaseModel):
    """A choice's ``logprobs``: its content tokens'."""

    content: list[TokenLogprobs] | None
    refusal: list[TokenLogprobs] | None = None


class Choice(OpenAIBaseModel):
    """One choice of a non-streaming response."""

    index: int = 0
    message: ResponseMessage
    finish_reason: WireFinishReason | None
    logprobs: ChoiceLogprobs | None = None
    # ponder extensions
    search: SearchInfo | None = Field(
        None, description="this choice's own search, when the request asked for n > 1"
    )


class ChatCompletionResponse(OpenAIBaseModel):
    """A ``chat.completion`` object."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    # ponder extensions
    search: SearchInfo


class DeltaToolCall(ToolCall):
    """A tool call in a stream chunk, placed by its ``index`` among the choice's calls (each
    is sent whole, in one chunk)."""

    index: int


class DeltaMessage(OpenAIBaseModel):
    """The increment a stream chunk carries."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChunkChoice(OpenAIBaseModel):
    """One choice of a stream chunk."""

    index: int = 0
    delta: DeltaMessage
    finish_reason: WireFinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(OpenAIBaseModel):
    """A ``chat.completion.chunk`` object."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    # ponder extensions
    search: SearchInfo | None = None
    search_progress: SearchProgress | None = None


class ModelCard(OpenAIBaseModel):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "ponder"
    root: str
    max_model_len: int


class ModelList(OpenAIBaseModel):
    """``GET /v1/models`` body."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorInfo(OpenAIBaseModel):
    """The inside of an OpenAI error body."""

    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(OpenAIBaseModel):
    """``{"error": {...}}``, the one error shape."""

    error: ErrorInfo

    @classmethod
    def of(cls, message: str, type_: str, param: str | None, code: Any = None) -> ErrorResponse:
        """Build an error body."""
        return cls(error=ErrorInfo(message=message, type=type_, param=param, code=code))
