"""The search options a request may set, read off :class:`SearchParams`: its :func:`option`
fields, each with its type, its choices, its default, its bounds and the docstring's text.

A server builds its request schema from :data:`OPTIONS`, so a knob, a method or a reward is
declared once, in ``search``: the ``method`` choices are :data:`search.methods.METHODS`, the
``reward`` choices :data:`search.reward.REWARDS`, and a ``Literal`` field's choices its values.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal, get_args, get_origin, get_type_hints

from search.methods import METHODS
from search.params import SearchParams
from search.reward import REWARDS

# the fields whose values name an entry of a registry
REGISTRIES: dict[str, Collection[str]] = {"method": METHODS, "reward": REWARDS}


@dataclass(frozen=True, slots=True)
class Option:
    """One field of :class:`SearchParams` a request may set."""

    name: str
    annotation: object  # the field's type; a ``str`` field with choices takes one of them
    choices: tuple[str, ...]  # the values allowed, in order; empty when any is
    default: object
    bounds: Mapping[str, float]  # pydantic's ge, gt, le, min_length
    description: str


def param_docs(doc: str) -> dict[str, str]:
    """``{name: text}`` of a docstring's ``:param name: text`` entries, each text on one line
    and its Sphinx roles (``:data:`a.b.C```) reduced to their target's name."""
    entries = re.findall(r":param (\w+): (.*?)(?=\n\s*:param |\n\s*\n|\Z)", doc, flags=re.S)
    return {
        name: re.sub(r":\w+:`(?:[\w.]+\.)?(\w+)`", r"`\1`", " ".join(text.split()))
        for name, text in entries
    }


def _options() -> tuple[Option, ...]:
    hints = get_type_hints(SearchParams)
    docs = param_docs(SearchParams.__doc__ or "")
    options = []
    for field in dataclasses.fields(SearchParams):
        if "bounds" not in field.metadata:
            continue
        annotation = hints[field.name]
        literal = get_origin(annotation) is Literal
        choices = get_args(annotation) if literal else tuple(REGISTRIES.get(field.name, ()))
        options.append(
            Option(
                name=field.name,
                annotation=annotation,
                choices=choices,
                default=field.default,
                bounds=field.metadata["bounds"],
                description=docs[field.name],
            )
        )
    return tuple(options)


OPTIONS = _options()
