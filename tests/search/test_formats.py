from search.formats import (
    AUTO_FALLBACK,
    MARCO_O1_SYSTEM_PROMPT,
    PROFILES,
    THINK_SYSTEM_PROMPT,
    choose,
    opens_reasoning,
    with_system_prompt,
)
from search.params import SearchParams

PLAIN_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}{% endfor %}"
THINKING_TEMPLATE = (
    PLAIN_TEMPLATE + "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n"
)
USER = [{"role": "user", "content": "What is 2+2?"}]


def test_auto_is_think_for_a_thinking_template_and_the_fallback_otherwise() -> None:
    assert choose("auto", THINKING_TEMPLATE).name == "think"
    assert choose("auto", PLAIN_TEMPLATE).name == AUTO_FALLBACK


def test_think_asks_for_the_block_only_where_the_template_does_not() -> None:
    assert choose("think", PLAIN_TEMPLATE).system_prompt == THINK_SYSTEM_PROMPT
    assert choose("think", THINKING_TEMPLATE).system_prompt is None
    assert choose("think", THINKING_TEMPLATE).answer_markers == ("</think>",)


def test_named_profiles_ignore_the_template() -> None:
    for template in (PLAIN_TEMPLATE, THINKING_TEMPLATE):
        assert choose("marco", template) == PROFILES["marco"]
        assert choose("plain", template) == PROFILES["plain"]


def test_marco_splits_at_output_with_marco_o1s_system_prompt() -> None:
    marco = PROFILES["marco"]
    assert marco.answer_markers == ("<Output>",)
    assert marco.system_prompt == MARCO_O1_SYSTEM_PROMPT
    assert "<Thought>" in MARCO_O1_SYSTEM_PROMPT and "Marco-o1" in MARCO_O1_SYSTEM_PROMPT


def test_plain_is_the_search_default() -> None:
    assert PROFILES["plain"].system_prompt is None
    assert SearchParams(prompt_token_ids=(1,)).answer_markers == PROFILES["plain"].answer_markers


def test_the_system_prompt_goes_first_unless_the_client_sent_one() -> None:
    marco = PROFILES["marco"]
    assert with_system_prompt(USER, marco) == [
        {"role": "system", "content": MARCO_O1_SYSTEM_PROMPT},
        *USER,
    ]
    own = [{"role": "system", "content": "Answer in French."}, *USER]
    assert with_system_prompt(own, marco) == own
    assert with_system_prompt(USER, PROFILES["plain"]) == USER


def test_a_prompt_ending_in_an_open_think_block_opens_reasoning() -> None:
    assert opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert not opens_reasoning("<|im_start|>assistant\n")
    assert not opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n")
