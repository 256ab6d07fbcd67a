"""A chat answer's ``logprobs``, in OpenAI's shape: for every token of the chosen path's
answer (its content, after any reasoning), the model's raw logprob and the ``top_logprobs``
most likely tokens at that position.

They are the engine's own numbers from the call that generated each token (raw log-softmax,
before temperature; under a constraint, before the grammar's mask), so for a searched answer
they describe the path the search kept, whichever branch it came from.  Tokens the model did
not generate are left out: an end-of-sequence token (it has no text) and a reflection prompt
the search wrote.  A token that holds part of a character shows U+FFFD as its text; its
``bytes`` are those of that text.
"""

from __future__ import annotations

from search import SearchResult
from search.engine import Tokenizer, TokenLogprob
from server.openai.protocol import ChoiceLogprobs, TokenLogprobs, TopLogprob


def choice_logprobs(result: SearchResult, tokenizer: Tokenizer, top: int) -> ChoiceLogprobs:
    """The answer's tokens of ``result`` with ``top`` alternatives each."""
    answer = result.logprobs[result.path_reasoning_tokens :]
    content = [
        _token(scored, tokenizer, top)
        for scored in answer
        if scored is not None and scored.token_id not in tokenizer.eos_token_ids
    ]
    return ChoiceLogprobs(content=content)


def _token(scored: TokenLogprob, tokenizer: Tokenizer, top: int) -> TokenLogprobs:
    alternatives = [_top(token, logprob, tokenizer) for token, logprob in scored.top[:top]]
    chosen = _top(scored.token_id, scored.logprob, tokenizer)
    return TokenLogprobs(**chosen.model_dump(), top_logprobs=alternatives)


def _top(token: int, logprob: float, tokenizer: Tokenizer) -> TopLogprob:
    text = tokenizer.decode([token])
    return TopLogprob(token=text, logprob=logprob, bytes=list(text.encode()))
