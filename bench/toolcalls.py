"""Tool-calling tasks with one known right call: ``python -m bench.eval --tools N``.

Each task is a request that one of five functions answers (weather, currency, alarm, e-mail,
table booking), its argument values drawn from a seed and stated in the request, so exactly one
call is right.  Every task offers all five functions, as an agent offers its toolbox.  An answer
is right when its calls are exactly that one call: the function's name and its arguments equal
as JSON data (keys in any order; ``3`` and ``3.0`` equal).  The runner, ledger, intervals and
paired comparisons are the accuracy eval's (:mod:`bench.eval`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from bench.problems import Problem

CITIES = ["Lisbon", "Nairobi", "Osaka", "Toronto", "Quito", "Tallinn", "Perth", "Cairo"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF"]
PEOPLE = ["ana@example.com", "li.wei@example.org", "sam@example.net", "omar@example.com"]
SUBJECTS = ["Quarterly report", "Lunch on Friday", "Invoice 2291", "Trip plans"]
RESTAURANTS = ["Blue Fig", "Casa Lola", "The Old Mill", "Sakura House"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _function(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
            },
        },
    }


TOOLS = (
    _function(
        "get_weather",
        "Get the current weather in a city",
        {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    ),
    _function(
        "convert_currency",
        "Convert an amount of money from one currency to another",
        {
            "amount": {"type": "number"},
            "source": {"enum": CURRENCIES},
            "target": {"enum": CURRENCIES},
        },
    ),
    _function(
        "set_alarm",
        "Set an alarm at a time of day (24-hour clock)",
        {
            "hour": {"type": "integer", "minimum": 0, "maximum": 23},
            "minute": {"type": "integer", "minimum": 0, "maximum": 59},
        },
    ),
    _function(
        "send_email",
        "Send an e-mail",
        {"to": {"type": "string"}, "subject": {"type": "string"}},
    ),
    _function(
        "book_table",
        "Book a table at a restaurant",
        {
            "restaurant": {"type": "string"},
            "people": {"type": "integer", "minimum": 1},
            "day": {"enum": DAYS},
        },
    ),
)

Task = tuple[str, str, dict[str, Any]]  # request, function, arguments


def _weather(rng: random.Random) -> Task:
    city, unit = rng.choice(CITIES), rng.choice(["celsius", "fahrenheit"])
    return (
        f"What's the weather in {city} right now? Give it in {unit}.",
        "get_weather",
        {
            "city": city,
            "unit": unit,
        },
    )


def _currency(rng: random.Random) -> Task:
    source, target = rng.sample(CURRENCIES, 2)
    amount = rng.choice([20, 75, 120, 350, 1000, 2500])
    return (
        f"How much is {amount} {source} in {target}?",
        "convert_currency",
        {
            "amount": amount,
            "source": source,
            "target": target,
        },
    )


def _alarm(rng: random.Random) -> Task:
    hour, minute = rng.randrange(24), rng.choice([0, 5, 15, 30, 45, 50])
    return (
        f"Set an alarm for {hour:02d}:{minute:02d}.",
        "set_alarm",
        {
            "hour": hour,
            "minute": minute,
        },
    )


def _email(rng: random.Random) -> Task:
    to, subject = rng.choice(PEOPLE), rng.choice(SUBJECTS)
    return (
        f'Send an e-mail to {to} with the subject "{subject}".',
        "send_email",
        {
            "to": to,
            "subject": subject,
        },
    )


def _booking(rng: random.Random) -> Task:
    restaurant, people, day = rng.choice(RESTAURANTS), rng.randint(2, 8), rng.choice(DAYS)
    request = f"Book a table for {people} at {restaurant} on {day.capitalize()}."
    return request, "book_table", {"restaurant": restaurant, "people": people, "day": day}


KINDS: tuple[Callable[[random.Random], Task], ...] = (
    _weather,
    _currency,
    _alarm,
    _email,
    _booking,
)


def call_text(name: str, arguments: Any) -> str:
    """One call as canonical text: what a right answer's calls must equal."""
    return json.dumps([{"name": name, "arguments": _plain(arguments)}], sort_keys=True)


def _plain(value: Any) -> Any:
    """``value`` with whole floats as ints (``3.0`` is the call ``3`` is)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def problems(count: int, seed: int) -> list[Problem]:
    """``count`` tasks, the kinds in turn, their values drawn from ``seed``."""
    rng = random.Random(seed)
    tasks = [KINDS[i % len(KINDS)](rng) for i in range(count)]
    return [
        Problem(f"tools-{i:03d}", request, call_text(name, arguments), TOOLS)
        for i, (request, name, arguments) in enumerate(tasks)
    ]


def called(tool_calls: list[Any] | None) -> str | None:
    """The calls an answer made (``message.tool_calls``) as canonical text; ``None`` when it
    made none (or one whose arguments are not JSON)."""
    if not tool_calls:
        return None
    try:
        calls = [
            {"name": c.function.name, "arguments": _plain(json.loads(c.function.arguments))}
            for c in tool_calls
        ]
    except ValueError:
        return None
    return json.dumps(calls, sort_keys=True)
