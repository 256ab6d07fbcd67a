"""What a request asks of its search, in neither surface's shape, and the search it becomes.

Chat completions and the Responses API each turn their request into an :class:`Ask`; the
service (:mod:`server.openai.service`) checks it against the model and prepares one
:class:`PreparedSearch`, which every consumer of the search's events reads.  An error names
the :class:`Ask` field it is about (``messages``, ``max_tokens``, ``format.schema``,
``tools[0].function.parameters``, ``search.samples``...); each surface renames those to its own
fields with its own table (:func:`named_by`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from search import SearchParams
from search.formats import ReasoningFormat
from search.presets import Effort
from server.errors import PonderError
from server.openai.protocol import ToolChoiceOption
from server.openai.tool_calls import Call


@dataclass(frozen=True, slots=True)
class Ask:
    """One request of either surface, as the search it asks for.

    ``messages`` and ``tools`` are as chat templates read them (:func:`template_message`);
    ``format`` is the answer's format with its fields beside its ``type`` (``text``,
    ``json_object``, or ``json_schema`` with ``name``, ``schema``, ``strict``)."""

    model: str
    messages: tuple[dict[str, Any], ...]
    search: Mapping[str, Any] = field(default_factory=dict)  # the search options it set
    n: int = 1
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    timeout: float | None = None
    reasoning_format: ReasoningFormat | None = None
    reasoning_effort: Effort | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: ToolChoiceOption | None = None
    function: str | None = None  # the function tool_choice names (then no tool_choice)
    parallel_tool_calls: bool | None = None
    format: Mapping[str, Any] | None = None
    top_logprobs: int | None = None  # the answer's logprobs, with this many alternatives
    streamed: bool = False  # a streamed answer shows drafts as the search makes them
    include_usage: bool = False  # a stream ends with a usage chunk


@dataclass(frozen=True, slots=True)
class PreparedSearch:
    """A validated request, ready to search: what every consumer of its events reads."""

    request_id: str
    created: int
    model: str
    params: SearchParams
    reasoning_format: str
    include_usage: bool
    return_tree: bool
    progress: bool
    question: str
    widens: bool = False  # --adaptive-parallel may widen it, if it runs alone once admitted
    n: int = 1  # answers (choices) to run
    tools: frozenset[str] = frozenset()  # the functions offered: answers are read for calls
    answered: frozenset[Call] = frozenset()  # calls the conversation made and has results of
    parallel_tool_calls: bool = True
    top_logprobs: int | None = None  # the answer's logprobs, with this many alternatives


def renamed(error: PonderError, names: Mapping[str, str], pattern: str = "") -> PonderError:
    """``error`` naming the surface's field where it named the :class:`Ask`'s: ``names``
    maps whole names, else ``pattern`` (a regex) drops the part of a name it matches."""
    param = error.param
    if param is not None:
        param = names.get(param) or (re.sub(pattern, "", param) if pattern else param)
    if param == error.param:
        return error
    return type(error)(error.message, param=param, code=error.code)


@contextlib.contextmanager
def named_by(names: Mapping[str, str], pattern: str = "") -> Iterator[None]:
    """Re-raise the service's errors with a surface's field names (see :func:`renamed`)."""
    try:
        yield
    except PonderError as exc:
        error = renamed(exc, names, pattern)
        if error is exc:
            raise
        raise error from exc
