"""What a chat request may ask that ponder refuses rather than ignores, and the top-k
logprobs its engine calls then ask for."""

from __future__ import annotations

from search.params import REWARD_TOP_K
from server.errors import InvalidRequest
from server.openai.protocol import ChatCompletionRequest
from server.openai.search_options import SearchOptions


def refuse_unsupported(request: ChatCompletionRequest) -> None:
    """A 400 naming each field ponder cannot honour, rather than an answer that ignored it."""
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequest("top_logprobs needs logprobs: true", param="top_logprobs")
    extra = request.model_extra or {}
    for name, why in _CHANGES_THE_ANSWER.items():
        if extra.get(name) not in (None, 0, {}, [], ["text"]):
            raise InvalidRequest(f"{name} is not supported: {why}", param=name)


# OpenAI fields that would change the answer if honoured, refused when set to anything but
# their neutral value; other unknown fields (metadata, store, service_tier...) are ignored
_CHANGES_THE_ANSWER = {
    "frequency_penalty": "the search samples without penalties",
    "presence_penalty": "the search samples without penalties",
    "logit_bias": "the search samples without biases",
    "modalities": "ponder answers in text",
    "audio": "ponder answers in text",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "ponder has no web search",
}


def engine_logprobs(request: ChatCompletionRequest, options: SearchOptions) -> int:
    """The top-k logprobs every engine call asks for: the rewards' (a search's rewards read
    that many alternatives, so a search keeps them), or more for plain sampling when the
    client asks for more ``top_logprobs``."""
    asked = request.top_logprobs or 0
    if asked <= REWARD_TOP_K:
        return REWARD_TOP_K
    if options.method != "none":
        raise InvalidRequest(
            f"top_logprobs above {REWARD_TOP_K} needs method none: a search's rewards read the "
            f"top {REWARD_TOP_K} alternatives of each token",
            param="top_logprobs",
        )
    return asked
