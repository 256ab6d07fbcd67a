"""The search options a request may set, read off SearchParams: choices from the registries,
defaults and descriptions from the dataclass."""

import dataclasses
from typing import get_args

from search.methods import METHODS
from search.options import OPTIONS, param_docs
from search.params import Granularity, SearchParams
from search.reward import REWARDS


def test_choices_are_the_registries() -> None:
    choices = {option.name: option.choices for option in OPTIONS}
    assert choices["method"] == tuple(METHODS)
    assert choices["reward"] == tuple(REWARDS)
    assert choices["granularity"] == get_args(Granularity)


def test_every_option_has_the_fields_default_and_a_description() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(SearchParams)}
    for option in OPTIONS:
        assert option.default == defaults[option.name], option.name
        assert len(option.description) > 10, option.name
    names = {option.name for option in OPTIONS}
    assert {"method", "iterations", "max_seconds", "consensus"} <= names
    assert not names & {"prompt_token_ids", "temperature", "seed", "stop", "max_tokens"}


def test_param_docs_join_lines_and_drop_sphinx_roles() -> None:
    doc = """Summary.

    :param a: first line,
        second line with :data:`search.reward.REWARDS`.
    :param b: one line.

    Trailing prose.
    """
    assert param_docs(doc) == {"a": "first line, second line with `REWARDS`.", "b": "one line."}
