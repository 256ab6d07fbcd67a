"""Structured outputs and forced tool calls: what a request asks its answer to be, as the
grammar every engine call of its search decodes by (:class:`search.engine.Constraint`).

* a ``json_object`` format (chat's ``response_format``, the Responses API's ``text.format``):
  any JSON object.
* a ``json_schema`` format (``name``, ``schema``, ``strict``): JSON the schema allows.
  ``strict: true`` refuses a schema keyword the grammar cannot enforce (a 400 naming it);
  otherwise such a keyword is ignored and the rest still holds.
* ``tool_choice: "required"`` or a named function: one call (several only where the request
  sets ``parallel_tool_calls: true`` itself: allowed more, Qwen2.5-Coder-0.5B went on writing
  calls, seven for one conversion asked) in the model's tool-call syntax, naming an offered
  function with arguments its ``parameters`` schema allows.  With ``auto`` and a JSON
  format, the answer is either calls or that JSON.

JSON is written on one line with Python's separators (``{"a": 1, "b": [2, 3]}``): free
whitespace would let a small model pad an answer with newlines until its token bound.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import llguidance

from search.engine import Constraint, Tokenizer
from server.errors import InvalidRequest
from server.openai.ask import Ask

# llguidance's JSON options: one line, Python's separators
_STYLE = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # OpenAI's pattern for a schema's name
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"  # the Hermes syntax (tool_calls.py)


def output_constraint(
    ask: Ask, tools: list[dict[str, Any]], tokenizer: Tokenizer
) -> Constraint | None:
    """The constraint ``ask`` puts on its answer (``None``: free text), given the ``tools``
    it offers; a 400 naming the field whose schema cannot be a grammar."""
    answer = answer_schema(ask.format or {"type": "text"})
    calls = _forced(ask, tools, json_answer=answer is not None)
    if calls is None and answer is None:
        return None
    rules: list[str] = []
    if calls is not None:
        rules.append(_call_rules(calls, ask.parallel_tool_calls is True, tokenizer))
    if answer is not None and (calls is None or ask.tool_choice in (None, "auto")):
        rules.append(f"answer: %json {json.dumps(answer, ensure_ascii=False)}")
    heads = [rule.split(":", 1)[0] for rule in rules]
    return Constraint("\n".join([f"start: {' | '.join(heads)}", *rules]))


def answer_schema(answer_format: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON schema an answer ``format`` asks for (:class:`Ask`'s, its fields beside its
    type); ``None`` for text."""
    kind = answer_format.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return _styled({"type": "object"})
    if kind != "json_schema":
        raise InvalidRequest(
            f"format type {kind!r} is not one of text, json_object, json_schema",
            param="format.type",
        )
    name = answer_format.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(
            "a json_schema format needs a name of letters, digits, _ and - (at most 64)",
            param="format.name",
        )
    schema = answer_format.get("schema", {})
    if not isinstance(schema, dict):
        raise InvalidRequest(
            "the json_schema's schema must be a JSON object", param="format.schema"
        )
    styled = _styled(schema, lenient=answer_format.get("strict") is not True)
    _check(styled, "format.schema")
    return styled


def _forced(ask: Ask, tools: list[dict[str, Any]], json_answer: bool) -> list[Any] | None:
    """The functions a call must name (``None`` where no call is forced, or none can be
    one: ``auto`` with a JSON answer allows calls too)."""
    if not tools or ask.tool_choice == "none":
        return None
    functions = [tool["function"] for tool in tools]
    if ask.function is not None:
        named = [f for f in functions if f["name"] == ask.function]
        if not named:
            raise InvalidRequest(
                f"tool_choice names {ask.function!r}, which is not among the tools",
                param="tool_choice",
            )
        return named
    if ask.tool_choice == "required" or json_answer:
        return functions
    return None


def _call_rules(functions: list[Any], parallel: bool, tokenizer: Tokenizer) -> str:
    """The ``calls`` rule: Hermes blocks, each one object naming a function and giving
    arguments its schema allows."""
    options = []
    for i, function in enumerate(functions):
        # arguments are an object whatever the schema leaves open (OpenAI's are)
        parameters = {"type": "object", **(function.get("parameters") or {})}
        param = f"tools[{i}].function.parameters"
        if parameters["type"] != "object":
            raise InvalidRequest(f"{param} must describe an object (the arguments)", param=param)
        _check(_styled(parameters), param)
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    schema = json.dumps(_styled({"anyOf": options}), ensure_ascii=False)
    opening, closing = (_literal(tokenizer, tag) for tag in (CALL_OPEN, CALL_CLOSE))
    more = ' ("\\n" call)*' if parallel else ""
    return f'calls: call{more}\ncall: {opening} "\\n" %json {schema} "\\n" {closing}'


def _literal(tokenizer: Tokenizer, tag: str) -> str:
    """``tag`` in the grammar: its special token where the tokenizer has one (Qwen2.5's
    ``<tool_call>``), else its text."""
    return tag if len(tokenizer.encode(tag)) == 1 else json.dumps(tag)


def _styled(schema: dict[str, Any], lenient: bool = False) -> dict[str, Any]:
    """``schema`` with ponder's JSON style (and, ``lenient``, unenforceable keywords ignored)
    as llguidance's options: a client's own ``x-guidance`` is not taken."""
    options = {**_STYLE, "lenient": True} if lenient else _STYLE
    return {**{k: v for k, v in schema.items() if k != "x-guidance"}, "x-guidance": options}


def _check(schema: dict[str, Any], param: str) -> None:
    """A 400 naming ``param`` when ``schema`` (styled) cannot become a grammar."""
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"{param} is not a JSON schema: {exc}", param=param) from None
    problem = llguidance.LLMatcher.validate_grammar(grammar)
    if problem:
        raise InvalidRequest(
            f"{param} cannot be enforced: {problem.strip().splitlines()[0]}", param=param
        )
