"""The tool-calling tasks: each one's gold call is what its tools allow, and an answer is right
exactly when its calls are that one (however the arguments are spelled as JSON)."""

from __future__ import annotations

import json

import jsonschema

from bench.toolcalls import called, problems
from server.openai.protocol import FunctionCall, ToolCall


def test_every_gold_call_names_an_offered_function_with_arguments_its_schema_allows() -> None:
    tasks = problems(50, seed=1)
    assert len({t.id for t in tasks}) == 50 and tasks == problems(50, seed=1)
    for task in tasks:
        [gold] = json.loads(task.gold)
        schemas = {t["function"]["name"]: t["function"]["parameters"] for t in task.tools}
        jsonschema.validate(gold["arguments"], schemas[gold["name"]])
        assert all(str(v).lower() in task.prompt.lower() for v in gold["arguments"].values())


def test_an_answer_is_right_when_its_calls_are_the_gold_call() -> None:
    task = problems(2, seed=3)[1]  # a currency conversion: a number among the arguments
    [gold] = json.loads(task.gold)
    spelled = {**gold["arguments"], "amount": float(gold["arguments"]["amount"])}
    shuffled = json.dumps(dict(reversed(list(spelled.items()))))

    def call(arguments: str) -> ToolCall:
        return ToolCall(id="call_1", function=FunctionCall(name=gold["name"], arguments=arguments))

    assert called([call(shuffled)]) == task.gold
    assert called([call(shuffled), call(shuffled)]) != task.gold
    assert called([call("{not json")]) is None and called(None) is None
