"""Reasoning-format profiles: how a model is asked to lay out its reasoning, and where the
answer begins in what it writes.

A profile is a system prompt and the answer markers that :mod:`search.answer` splits at:

* ``plain``: no system prompt; the answer follows ``<Output>`` or ``</think>``, whichever comes
  first, and without either the split's implicit rule applies (the last step is the answer).
* ``marco``: Marco-o1's own system prompt, which asks for ``<Thought>…</Thought>`` then
  ``<Output>…</Output>``; the answer follows ``<Output>``.
* ``think``: R1-style ``<think>…</think>``; a short system prompt asks for it unless the chat
  template is a thinking one (it opens the block itself); the answer follows ``</think>``.
* ``auto``: ``think`` for a thinking chat template, else :data:`AUTO_FALLBACK`.

A profile's system prompt is added only to a conversation without a system message of its own:
the client's wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

ReasoningFormat = Literal["auto", "plain", "marco", "think"]
ProfileName = Literal["plain", "marco", "think"]

THINK_OPEN = "<think>"

# The default system prompt of the released Marco-o1 checkpoint (AIDC-AI/Marco-o1 on Hugging
# Face, Apache-2.0).  Marco-o1's own code (github.com/AIDC-AI/Marco-o1,
# src/tools/infer/talk_with_model.py since commit b9e31c2, 2024-11-13) sends no system message
# and lets the checkpoint's chat template insert this one; the text, odd whitespace included, is
# as ms-swift (modelscope/ms-swift, swift/llm/template/template/qwen.py, MarcoO1TemplateMeta)
# and chatllm.cpp (foldl/chatllm.cpp, models/qwen.cpp, namespace marco_o1) reproduce that
# template.  In English: "You are a well-trained AI assistant named Marco-o1, created by AI
# Business of Alibaba International Digital Commerce.  Important: when you answer, think inside
# <Thought> and give your result inside <Output>.  <Thought> should be in English as far as
# possible, except quotations of the source text and mathematics (in markdown); <Output>
# follows the language of the user's input."
MARCO_O1_SYSTEM_PROMPT = (
    "\n你是一个经过良好训练的AI助手，你的名字是Marco-o1.由阿里国际数字商业集团的AI Business创造.\n"  # noqa: RUF001
    "        \n"
    "## 重要！！！！！\n"  # noqa: RUF001
    "当你回答问题时，你的思考应该在<Thought>内完成，<Output>内输出你的结果。\n"  # noqa: RUF001
    "<Thought>应该尽可能是英文，但是有2个特例，一个是对原文中的引用，另一个是是数学应该使用"  # noqa: RUF001
    "markdown格式，<Output>内的输出需要遵循用户输入的语言。\n"  # noqa: RUF001
    "        "
)

THINK_SYSTEM_PROMPT = (
    "First think the problem through step by step between <think> and </think>. "
    "Then, after </think>, give the final answer."
)


@dataclass(frozen=True, slots=True)
class Profile:
    """One reasoning format.

    :param name: the profile's name, as the response's ``search.reasoning_format`` reports it.
    :param system_prompt: put first in a conversation that has no system message; ``None``
        adds nothing.
    :param answer_markers: the answer is the text after the first of these.
    """

    name: ProfileName
    system_prompt: str | None
    answer_markers: tuple[str, ...]


PROFILES: Mapping[ProfileName, Profile] = {
    "plain": Profile("plain", None, ("<Output>", "</think>")),
    "marco": Profile("marco", MARCO_O1_SYSTEM_PROMPT, ("<Output>",)),
    "think": Profile("think", THINK_SYSTEM_PROMPT, ("</think>",)),
}

# What ``auto`` means for a model whose chat template does not think: to be set from the
# accuracy measurements of the profiles on plain instruct models (bench/eval).
AUTO_FALLBACK: ProfileName = "plain"


def is_thinking_template(chat_template: str) -> bool:
    """Whether a chat template's text is a thinking one (it writes ``<think>`` itself)."""
    return THINK_OPEN in chat_template


def choose(name: ReasoningFormat, chat_template: str) -> Profile:
    """The profile ``name`` means for a model with this chat template text: ``auto`` picks
    ``think`` for a thinking template, else :data:`AUTO_FALLBACK`; ``think`` on a thinking
    template adds no system prompt, as the template asks for the block itself."""
    thinking = is_thinking_template(chat_template)
    resolved: ProfileName = ("think" if thinking else AUTO_FALLBACK) if name == "auto" else name
    profile = PROFILES[resolved]
    if resolved == "think" and thinking:
        return replace(profile, system_prompt=None)
    return profile


def with_system_prompt(messages: list[dict[str, str]], profile: Profile) -> list[dict[str, str]]:
    """``messages`` with the profile's system prompt put first, unless the profile has none or
    the conversation already holds a system message (the client's wins)."""
    if profile.system_prompt is None or any(m["role"] == "system" for m in messages):
        return messages
    return [{"role": "system", "content": profile.system_prompt}, *messages]


def opens_reasoning(prompt_text: str) -> bool:
    """Whether a rendered prompt leaves the model inside an open ``<think>`` block (templates
    of R1-distilled models end the generation prompt with it): what the model writes is then
    reasoning until ``</think>``, with no opening tag of its own."""
    return prompt_text.rstrip().endswith(THINK_OPEN)
