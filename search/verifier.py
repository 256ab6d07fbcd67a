"""A verifier: P(True) (Kadavath et al. 2022, CISC's judge), a model's probability that an
answer is right, asked after the answer as a Yes/No question.

The judge is the model that answered (``self``) or a second one beside it (a server's
``--verifier``: a larger local model, or a fleet behind an OpenAI-compatible endpoint), so a
small policy can be judged by a stronger model.  Each answer costs the judge one forward pass
and one generated token, all answers in one engine call (their shared question is one prefix).
The score is the mass of "Yes" against "No" among that token's top logprobs.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from search.engine import Completion, Engine, EngineError, EngineFault, GenerationRequest, Tokenizer

if TYPE_CHECKING:
    from search.budget import Budget

JUDGE_QUESTION = "Is your answer above correct? Reply with only Yes or No."
JUDGE_LOGPROBS = 20  # "Yes" and "No" in several spellings are among them


class VerifierFault(EngineFault):
    """The verifier's engine failed to judge (or refused to): the server's fault, never the
    request's, and never a silently unjudged answer."""


@dataclass(frozen=True, slots=True)
class Verifier:
    """A judge of whole answers: ``prompt`` builds, on the judge's own tokenizer, the chat
    that asks whether one answer is right; ``name`` names the judge in errors."""

    engine: Engine
    prompt: Callable[[str], Sequence[int]]
    name: str

    @classmethod
    def in_chat(
        cls,
        engine: Engine,
        template: Callable[[list[dict[str, Any]]], Sequence[int]],
        messages: Sequence[dict[str, Any]],
    ) -> Verifier:
        """The judge on ``engine`` reading ``messages``, then each answer and the question
        (:func:`judge_chat`), through its chat ``template``."""
        return cls(engine, lambda answer: template(judge_chat(messages, answer)), engine.model_name)

    async def judge(
        self, answers: Sequence[str], budget: Budget | None = None
    ) -> list[float] | None:
        """P(True) of each answer, in order; ``None`` if the search's ``budget`` (a deadline,
        an interrupt) cut the call."""
        # a chat template over a long answer takes milliseconds each: off the event loop
        prompts = await asyncio.to_thread(lambda: [tuple(self.prompt(a)) for a in answers])
        requests = [
            GenerationRequest(prompt, 1, temperature=0.0, logprobs=JUDGE_LOGPROBS)
            for prompt in prompts
        ]
        outputs: list[list[Completion]] | None
        try:
            if budget is None:
                outputs = await self.engine.generate(requests)
            else:
                outputs = await budget.generate(self.engine, requests)
        except EngineError as exc:
            raise VerifierFault(f"the verifier ({self.name}) failed: {exc}") from exc
        if outputs is None:
            return None
        return [p_yes(completion, self.engine.tokenizer) for (completion,) in outputs]


def judge_chat(messages: Sequence[dict[str, Any]], answer: str) -> list[dict[str, Any]]:
    """The chat a judge reads: the question's messages, the answer as the assistant's turn,
    then the Yes/No question."""
    return [
        *messages,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": JUDGE_QUESTION},
    ]


def p_yes(completion: Completion, tokenizer: Tokenizer) -> float:
    """The probability of "Yes" against "No" in the first token's top logprobs (any case or
    spacing); 0.5 when neither is there."""
    mass = {"yes": 0.0, "no": 0.0}
    for token, logprob in completion.logprobs[0].top if completion.logprobs else ():
        word = tokenizer.decode([token]).strip().lower()
        if word in mass:
            mass[word] += math.exp(logprob)
    total = mass["yes"] + mass["no"]
    return mass["yes"] / total if total > 0 else 0.5
