"""A transformers tokenizer behind the search's ``Tokenizer`` interface, with the chat template.

Every engine speaks in the same token ids as the HF tokenizer of its model, so prompts,
stop checks and logprobs mean the same whichever engine runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from jinja2 import TemplateError


class HFTokenizer:
    """Adapts a transformers tokenizer to the search's ``Tokenizer`` and adds the chat template."""

    def __init__(self, tokenizer: Any, eos_token_ids: frozenset[int]) -> None:
        self._tokenizer = tokenizer
        self._eos = eos_token_ids

    @classmethod
    def load(
        cls, folder: str, eos_token_ids: int | Iterable[int | None] | None = ()
    ) -> HFTokenizer:
        """The tokenizer in ``folder``; its own end-of-sequence id joins ``eos_token_ids`` (a
        generation config's ``eos_token_id`` as it comes: one id, a list, or none)."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        extra = (
            [eos_token_ids]
            if eos_token_ids is None or isinstance(eos_token_ids, int)
            else eos_token_ids
        )
        ids = (tokenizer.eos_token_id, *extra)
        return cls(tokenizer, frozenset(int(t) for t in ids if t is not None))

    @property
    def hf(self) -> Any:
        """The transformers tokenizer itself, for libraries that read one (llguidance)."""
        return self._tokenizer

    @property
    def pad_token_id(self) -> int:
        """The id that pads a batch: the tokenizer's, else an end-of-sequence id."""
        pad = self._tokenizer.pad_token_id
        return int(pad) if pad is not None else min(self._eos)

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Ids that end a sequence (the tokenizer's and the generation config's)."""
        return self._eos

    @property
    def vocab_size(self) -> int:
        """How many token ids there are (special tokens included)."""
        return len(self._tokenizer)

    @property
    def chat_template(self) -> str:
        """The chat template's source text (all of them where a tokenizer names several; ``""``
        where it has none)."""
        template = self._tokenizer.chat_template
        if isinstance(template, dict):
            return "\n".join(str(text) for text in template.values())
        return str(template or "")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens; ``ValueError`` if it is not Unicode
        text."""
        return list(self._tokenizer.encode(_unicode(text), add_special_tokens=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids`` without special tokens."""
        return str(self._tokenizer.decode(list(token_ids), skip_special_tokens=True))

    def apply_chat_template(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> list[int]:
        """Prompt ids for a chat (and the ``tools`` it may call, for a template that renders
        them), generation prompt added; ``ValueError`` if a message is not Unicode text or the
        template rejects the conversation (an unsupported role, say)."""
        for message in messages:
            _unicode(message.get("content") or "")
        try:
            ids = self._tokenizer.apply_chat_template(
                messages,
                tools=tools,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
            )
        except TemplateError as exc:
            raise ValueError(f"the chat template rejected the messages: {exc}") from exc
        return list(ids)


def _unicode(text: str) -> str:
    """``text``, checked to be Unicode text: JSON's ``\\u`` escapes can spell a lone surrogate,
    which the Rust tokenizer refuses with a ``TypeError`` and UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"the text holds a lone surrogate ({text[exc.start]!r} at character {exc.start}), "
            "which is not Unicode text"
        ) from None
    return text
