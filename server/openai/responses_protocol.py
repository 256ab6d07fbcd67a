"""Wire models of OpenAI's Responses API (``POST /v1/responses``), stateless: the request,
the ``response`` object with its ``reasoning`` and ``message`` items, and the stream events.

Shapes follow openai-python's ``types/responses``; fields ponder never sets are left out, and
the events that share a shape share a class (``type`` tells them apart, as on the wire).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag

from search.formats import ReasoningFormat
from search.presets import Effort
from server.openai.protocol import OpenAIBaseModel, SearchInfo, ToolChoiceOption
from server.openai.search_options import SearchOptions

ResponseStatus = Literal["completed", "incomplete", "in_progress", "failed"]


class InputText(OpenAIBaseModel):
    """A text part of an input message: the client's text, or an earlier answer sent back."""

    type: Literal["input_text", "output_text"]
    text: str


def _listed(key: str, **fixed: str) -> Any:
    """A validator that reads a string as a list of one item, ``{**fixed, key: string}``, so
    the field has one type and an error names its place (``input.0``), not a union member."""

    def listed(value: Any) -> Any:
        return [{**fixed, key: value}] if isinstance(value, str) else value

    return BeforeValidator(listed)


class InputMessage(OpenAIBaseModel):
    """An input message item (``type`` may be left out, as the SDK's easy input message)."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: Annotated[list[InputText], _listed("text", type="input_text")]

    def text(self) -> str:
        """The message's content as one string."""
        return "".join(part.text for part in self.content)


class InputReasoning(OpenAIBaseModel):
    """An earlier ``reasoning`` item sent back: accepted, and its text left out of the prompt
    (as vLLM and DeepSeek advise for reasoning models)."""

    type: Literal["reasoning"]


class InputFunctionCall(OpenAIBaseModel):
    """An earlier ``function_call`` item sent back: a call the assistant made."""

    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


class InputFunctionCallOutput(OpenAIBaseModel):
    """A ``function_call_output`` item: what the client's function returned for a call."""

    type: Literal["function_call_output"]
    call_id: str
    output: Annotated[list[InputText], _listed("text", type="input_text")]

    def text(self) -> str:
        """The output as one string."""
        return "".join(part.text for part in self.output)


def _item_kind(item: Any) -> str:
    """The input item's ``type``; a message may leave it out."""
    kind = item.get("type", "message") if isinstance(item, dict) else getattr(item, "type", "")
    return str(kind)


InputItem = Annotated[
    Annotated[InputMessage, Tag("message")]
    | Annotated[InputReasoning, Tag("reasoning")]
    | Annotated[InputFunctionCall, Tag("function_call")]
    | Annotated[InputFunctionCallOutput, Tag("function_call_output")],
    Discriminator(
        _item_kind,
        custom_error_type="unsupported_input_item",
        custom_error_message=(
            "input items may be messages, reasoning items, function calls and their outputs"
        ),
    ),
]


class ReasoningConfig(OpenAIBaseModel):
    """``reasoning``: how hard to think, and whether to summarise the reasoning."""

    effort: Effort | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class TextConfig(OpenAIBaseModel):
    """``text``: the output's format (text, ``json_object`` or ``json_schema``)."""

    format: dict[str, Any] | None = None


class ResponsesRequest(OpenAIBaseModel):
    """``POST /v1/responses`` body."""

    background: bool | None = None
    conversation: str | dict[str, Any] | None = None
    include: list[str] | None = None
    input: Annotated[list[InputItem], _listed("content", role="user")]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    metadata: dict[str, str] | None = None
    model: str
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    prompt: dict[str, Any] | None = None
    reasoning: ReasoningConfig | None = None
    store: bool | None = None
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    text: TextConfig | None = None
    tool_choice: ToolChoiceOption | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)  # OpenAI's limit
    top_logprobs: int | None = Field(None, ge=0, le=20)
    top_p: float | None = Field(None, gt=0, le=1)
    user: str | None = None
    # ponder extensions, as on chat completions
    search: SearchOptions | None = None
    reasoning_format: ReasoningFormat | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)


class ReasoningText(OpenAIBaseModel):
    """The full reasoning text of a ``reasoning`` item."""

    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class SummaryText(OpenAIBaseModel):
    """One part of a reasoning summary."""

    type: Literal["summary_text"] = "summary_text"
    text: str


class ResponseReasoningItem(OpenAIBaseModel):
    """The path's reasoning.  ``summary`` is always a list: ponder writes no summary, the
    whole reasoning is in ``content``."""

    id: str
    type: Literal["reasoning"] = "reasoning"
    summary: list[SummaryText] = Field(default_factory=list)
    content: list[ReasoningText]
    status: ResponseStatus


class OutputText(OpenAIBaseModel):
    """The answer's text."""

    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class ResponseOutputMessage(OpenAIBaseModel):
    """The assistant's answer."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: ResponseStatus
    content: list[OutputText]


class ResponseFunctionCall(OpenAIBaseModel):
    """A call the answer makes to one of the request's functions."""

    id: str
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str
    status: ResponseStatus


OutputItem = ResponseReasoningItem | ResponseOutputMessage | ResponseFunctionCall


class InputTokensDetails(OpenAIBaseModel):
    """Prompt tokens the engine reused from its prefix cache; none are billed as written to a
    cache (OpenAI's ``cache_write_tokens``, which its client requires by 3.63)."""

    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(OpenAIBaseModel):
    """Output tokens that are reasoning, not the answer."""

    reasoning_tokens: int = 0


class ResponseUsage(OpenAIBaseModel):
    """Token counts, with chat's meaning under the Responses API's names."""

    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(OpenAIBaseModel):
    """Why a response is ``incomplete``: a budget cut the search (``search.ended_by``
    says which)."""

    reason: Literal["max_output_tokens"] = "max_output_tokens"


class Response(OpenAIBaseModel):
    """A ``response`` object, whole or (in lifecycle events) as far as it has come."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: ResponseStatus
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    reasoning: ReasoningConfig | None = None
    store: bool = False
    temperature: float | None = None
    text: TextConfig | None = None
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[Any] = Field(default_factory=list)
    top_p: float | None = None
    usage: ResponseUsage | None = None
    # ponder extensions
    search: SearchInfo | None = None


class ResponseStreamEvent(OpenAIBaseModel):
    """What every stream event carries: its ``type`` and its place in the stream."""

    type: str
    sequence_number: int


LifecycleType = Literal[
    "response.created", "response.in_progress", "response.completed", "response.incomplete"
]
TextEventType = Literal[
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
    "response.output_text.delta",
    "response.output_text.done",
]


class ResponseLifecycleEvent(ResponseStreamEvent):
    """``response.created``, ``.in_progress``, ``.completed`` or ``.incomplete``."""

    type: LifecycleType
    response: Response


class ResponseOutputItemEvent(ResponseStreamEvent):
    """``response.output_item.added`` or ``.done``."""

    type: Literal["response.output_item.added", "response.output_item.done"]
    output_index: int
    item: OutputItem


class ResponseContentPartEvent(ResponseStreamEvent):
    """``response.content_part.added`` or ``.done``."""

    type: Literal["response.content_part.added", "response.content_part.done"]
    item_id: str
    output_index: int
    content_index: int = 0
    part: ReasoningText | OutputText


class ResponseTextEvent(ResponseStreamEvent):
    """A text delta, or the whole text once done, of the reasoning or of the answer (whose
    events carry ``logprobs``, always empty)."""

    type: TextEventType
    item_id: str
    output_index: int
    content_index: int = 0
    delta: str | None = None
    text: str | None = None
    logprobs: list[Any] | None = None


class ResponseArgumentsEvent(ResponseStreamEvent):
    """A call's arguments: ``response.function_call_arguments.delta`` (ponder sends them
    whole, as one delta), then ``.done``."""

    type: Literal["response.function_call_arguments.delta", "response.function_call_arguments.done"]
    item_id: str
    output_index: int
    delta: str | None = None
    arguments: str | None = None


class ResponseErrorEvent(ResponseStreamEvent):
    """``error``: the search failed after the stream began."""

    type: Literal["error"] = "error"
    code: str | None = None
    message: str
    param: str | None = None
