"""Tool calls: the request's tools as the chat template renders them, and the model's tool-call
syntax parsed back into OpenAI ``tool_calls``.

A parser reads one model family's syntax (:data:`TOOL_PARSERS`, as vLLM's
``--tool-call-parser`` names them).  Today one family is known: Hermes-style
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks, which the Qwen2.5 templates
ask for.  A template without a tools section gets :data:`FALLBACK_PROMPT` as a
system message, which asks for the same blocks, so the Hermes parser reads every model.

A small model often drops the tags and writes the call's object alone (Qwen2.5-Coder-0.5B did,
asked for the weather with one tool offered), at times followed by more JSON of its own: an
answer that opens with such objects (or lists of them, or in a fenced code block) naming the
request's tools makes those calls, and nothing else (what follows them is dropped).  Anything
else stays text: a call is never invented from prose.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from server.errors import InvalidRequest
from server.openai.protocol import FunctionCall, ToolCall

_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)

FALLBACK_PROMPT = """You can call these functions, given as JSON schemas:
{tools}

To call one, reply with only a JSON object naming the function and its arguments, inside \
<tool_call></tool_call> tags, one block per call:
<tool_call>
{{"name": "<function name>", "arguments": {{<arguments as a JSON object>}}}}
</tool_call>"""


@dataclass(frozen=True, slots=True)
class Call:
    """One parsed call: its function's name and its arguments as canonical JSON text."""

    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Parsed:
    """An answer split into its text (``None`` when nothing else was written) and its calls."""

    content: str | None
    calls: tuple[Call, ...]


def call_id() -> str:
    """A fresh tool call id, in OpenAI's shape."""
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_hermes(
    text: str, names: frozenset[str], answered: frozenset[Call] = frozenset()
) -> Parsed:
    """The calls in ``text`` to functions named in ``names``, and the text around them.  A
    bare call that repeats one ``answered`` earlier in the conversation is an echo, not a call:
    the 0.5B, handed a tool's result, writes its call again and then the result."""
    calls = [call for block in _BLOCK.findall(text) for call in _block_calls(block, names)]
    if calls:
        rest = _BLOCK.sub("", text).strip()
        return Parsed(rest or None, tuple(calls))
    bare = text.strip()
    fenced = _FENCE.match(bare)
    body = fenced.group(1) if fenced else bare
    calls, end = _leading_calls(body, names)
    new = [c for c in calls if c not in answered]
    if new:
        return Parsed(None, tuple(new))
    return Parsed(body[end:].strip() or None, ()) if calls else Parsed(text, ())


def _leading_calls(text: str, names: frozenset[str]) -> tuple[list[Call], int]:
    """The calls that ``text`` opens with, one JSON value after another (an object, or a list
    of objects, each a call), and where they end.  What follows new calls is dropped: the 0.5B
    follows its call object with more JSON of its own at times, which sent back as the turn's
    content would teach it to write more of the same."""
    decoder, calls, end = json.JSONDecoder(), [], 0
    while (start := len(text) - len(text[end:].lstrip())) < len(text):
        try:
            value, after = decoder.raw_decode(text, start)
        except ValueError:
            break
        found = _calls(value, names)
        if not found:
            break
        calls += found
        end = after
    return calls, end


def check_tool_results(messages: Sequence[dict[str, Any]]) -> None:
    """A 400 naming ``messages`` for a ``tool`` message that answers no call an earlier
    assistant turn made (as OpenAI refuses one): without its call, the template would render
    a result of nothing."""
    made: set[str] = set()
    for i, message in enumerate(messages):
        made |= {call["id"] for call in message.get("tool_calls", ())}
        if message["role"] == "tool" and message.get("tool_call_id") not in made:
            raise InvalidRequest(
                f"messages[{i}] has role 'tool' but answers no earlier assistant tool call "
                f"(tool_call_id {message.get('tool_call_id')!r})",
                param="messages",
            )


def answered_calls(messages: Sequence[dict[str, Any]]) -> frozenset[Call]:
    """The calls of the conversation's assistant turns that a ``tool`` message answered."""
    answered_ids = {m.get("tool_call_id") for m in messages if m["role"] == "tool"}
    calls = set()
    for message in messages:
        for call in message.get("tool_calls", ()):
            if call["id"] in answered_ids:
                function = call["function"]
                found = _call(function, frozenset({function["name"]}))
                calls |= {found} if found else set()
    return frozenset(calls)


def _calls(value: Any, names: frozenset[str]) -> list[Call]:
    """The calls one JSON value spells (an object, or a list of objects), all or none."""
    items = value if isinstance(value, list) else [value]
    calls = [c for c in (_call(item, names) for item in items) if c is not None]
    return calls if len(calls) == len(items) else []


def _block_calls(block: str, names: frozenset[str]) -> list[Call]:
    try:
        return _calls(json.loads(block.strip()), names)
    except ValueError:
        return []


def _call(item: Any, names: frozenset[str]) -> Call | None:
    if not isinstance(item, dict) or item.get("name") not in names:
        return None
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return Call(str(item["name"]), json.dumps(arguments, ensure_ascii=False, sort_keys=True))


TOOL_PARSERS: dict[str, Callable[[str, frozenset[str], frozenset[Call]], Parsed]] = {
    "hermes": parse_hermes
}


def renders_tools(chat_template: str) -> bool:
    """Whether a chat template has a tools section of its own (it reads ``tools``)."""
    return re.search(r"\btools\b", chat_template) is not None


def fallback_system_prompt(tools: list[dict[str, Any]]) -> str:
    """The system message that offers ``tools`` to a model whose template cannot."""
    return FALLBACK_PROMPT.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))


def offered(
    tools: Sequence[dict[str, Any]], choice: str | None, function: str | None
) -> list[dict[str, Any]]:
    """The tools the model is offered (none under ``tool_choice: none``; a call that
    ``tool_choice``, or the ``function`` it names, forces is held to them: :mod:`.structured`)."""
    if (function is not None or choice not in (None, "none")) and not tools:
        raise InvalidRequest("tool_choice needs tools", param="tool_choice")
    return [] if choice == "none" else list(tools)


def template_message(
    role: str,
    content: str,
    calls: Sequence[tuple[str, str, str]] = (),
    call_id: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """One message as chat templates read it: the ``calls`` an assistant made (id, function,
    arguments), their arguments as objects (templates write them with ``tojson``), and the id
    of the call a tool result answers."""
    role = "system" if role == "developer" else role
    rendered: dict[str, Any] = {"role": role, "content": content}
    if calls:
        rendered["tool_calls"] = [
            {
                "id": made,
                "type": "function",
                "function": {"name": function, "arguments": _object(made, arguments)},
            }
            for made, function, arguments in calls
        ]
    if call_id is not None:
        rendered["tool_call_id"] = call_id
    if name is not None and role == "tool":
        rendered["name"] = name
    return rendered


def _object(made: str, arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        raise InvalidRequest(
            f"tool call {made}: arguments are not JSON: {arguments[:80]!r}",
            param="messages",
        ) from None


def with_tools(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], chat_template: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The messages and the ``tools`` argument of the chat template: the tools themselves
    where the template renders them, else :data:`FALLBACK_PROMPT` in the system message."""
    if not tools or renders_tools(chat_template):
        return messages, tools or None
    prompt = fallback_system_prompt(tools)
    if messages and messages[0]["role"] == "system":
        first = {**messages[0], "content": f"{messages[0]['content']}\n\n{prompt}"}
        return [first, *messages[1:]], None
    return [{"role": "system", "content": prompt}, *messages], None


def answer_calls(
    text: str, names: frozenset[str], parallel: bool, answered: frozenset[Call] = frozenset()
) -> tuple[str | None, list[ToolCall] | None]:
    """An answer's text and its tool calls (``None`` when it made none; echoes of ``answered``
    calls are none); only the first call when ``parallel_tool_calls`` is false."""
    parsed = TOOL_PARSERS["hermes"](text, names, answered)
    if not parsed.calls:
        return parsed.content, None
    calls = parsed.calls if parallel else parsed.calls[:1]
    return parsed.content, [
        ToolCall(id=call_id(), function=FunctionCall(name=c.name, arguments=c.arguments))
        for c in calls
    ]
