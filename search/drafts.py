"""A sample shown while it decodes: the tokens an engine reports for it
(``GenerationRequest.watch``, on the engine's thread) become text on the search's event loop,
as the sample grows.

The text is the decoding of every token so far, sent as what it adds to what was sent: held back
while it ends inside a character (a byte-level token can split one) or would rewrite text already
sent (a tokenizer may tidy earlier text once more tokens follow).  Decoding the whole sample each
time costs a few milliseconds at thousands of tokens, and the updates of several tokens that
arrive between two turns of the loop are decoded once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from search.engine import Tokenizer, TokenLogprob

INCOMPLETE = "\ufffd"  # what a decoder writes for the bytes of a character not yet complete


class Draft:
    """One sample (index ``sample`` of its request) followed as the engine generates it."""

    def __init__(self, tokenizer: Tokenizer, sample: int = 0) -> None:
        self._tokenizer = tokenizer
        self._sample = sample
        self._loop = asyncio.get_running_loop()
        self._tokens: tuple[int, ...] = ()
        self._grew = asyncio.Event()
        self.sent = ""

    def watch(self, index: int, tokens: Sequence[TokenLogprob]) -> None:
        """``GenerationRequest.watch``: hand the followed sample's tokens to the loop."""
        if index == self._sample:
            self._loop.call_soon_threadsafe(self._update, tuple(t.token_id for t in tokens))

    def _update(self, tokens: tuple[int, ...]) -> None:
        self._tokens = tokens
        self._grew.set()

    async def texts(self, call: asyncio.Future[Any]) -> AsyncIterator[str]:
        """The text the sample adds, as it grows, until ``call`` (the engine call) is done."""
        while not call.done():
            grew = asyncio.ensure_future(self._grew.wait())
            await asyncio.wait({call, grew}, return_when=asyncio.FIRST_COMPLETED)
            grew.cancel()
            self._grew.clear()
            if text := self.add(self._tokenizer.decode(self._tokens)):
                yield text

    def add(self, text: str) -> str:
        """What ``text``, the sample's text now, adds to what was sent, now sent ("" when it
        ends inside a character or does not extend what was sent)."""
        if text.endswith(INCOMPLETE) or not text.startswith(self.sent):
            return ""
        new, self.sent = text[len(self.sent) :], text
        return new
