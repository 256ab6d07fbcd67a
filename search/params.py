"""The frozen parameters of one search: every knob, its default, its bounds and its check.

The fields a request may set are declared with :func:`option`, with the bounds every search
checks, whoever builds it (a server's request schema states the same, and its tests hold the
two together).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Literal, TypeVar

from search.engine import Constraint, GenerationRequest, Halt, Watch
from search.formats import PROFILES
from search.reward import REWARDS
from search.verifier import Verifier

T = TypeVar("T")

Granularity = Literal["step", "mini_step", "token"]
Voting = Literal["majority", "weighted", "filtered"]

REFLECTION_TEXT = "Wait! Maybe I made some mistakes! I need to rethink from scratch."

# The most samples one engine request may ask for (``samples``, ``branching``, a completion's
# ``n``): the fewest any engine runs at once (llama.cpp's 64 sequences), so that what a request
# may ask for no engine refuses.
MAX_SAMPLES = 64
JUDGED_METHODS = ("best_of_n", "self_consistency")  # the methods a verifier scores
REWARD_TOP_K = 5  # the top-k logprobs a search asks for each token: the rewards read them


# an option's bound -> whether a value breaks it, and how the refusal says it
_BOUNDS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "ge": (operator.lt, "at least {}"),
    "gt": (operator.le, "above {}"),
    "le": (operator.gt, "at most {}"),
    "min_length": (operator.lt, "at least {} characters long"),
}


def _check_bounds(name: str, value: object, bounds: Mapping[str, float]) -> None:
    """Refuse ``value`` outside an :func:`option`'s ``bounds`` (an unset optional knob keeps
    any), naming the knob."""
    if value is None or not bounds:
        return
    size = len(value) if isinstance(value, str) else value
    assert isinstance(size, int | float)
    for bound, limit in bounds.items():
        broken, says = _BOUNDS[bound]
        if broken(size, limit):
            raise SearchConfigError(
                name, f"{name} must be {says.format(f'{limit:g}')}, got {value!r}"
            )


def option(default: T, **bounds: float) -> T:
    """A field a request may set, with the bounds a request's value must keep (pydantic's
    ``ge``, ``gt``, ``le``, ``min_length``): they reject absurd values before any search."""
    return field(default=default, metadata={"bounds": bounds})


class SearchConfigError(ValueError):
    """A search parameter is out of range; ``param`` names the offending field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class SearchParams:
    """Everything one search needs, fixed for its lifetime (never shared between requests).
    The ``:param:`` text of an :func:`option` field is its description in the API schema.

    :param prompt_token_ids: the chat prompt, template applied, generation prompt added.
    :param method: the search method: `mcts` is Marco-o1's tree search, `self_consistency`
        (the default: the best per token measured on the default model) the majority of
        `samples` whole answers, `none` plain sampling with no search.
    :param granularity: an action is a `step` (up to `step_separator`), a `mini_step` of
        `step_tokens` tokens, or a single `token`.
    :param step_tokens: mini-step size; in `step` granularity the cap on one step's length;
        for method `none`, the tokens of one engine call.
    :param step_separator: the text that ends a step in `step` granularity.
    :param iterations: MCTS simulations per committed step.
    :param branching: children per expansion (the `n` of one engine call).
    :param exploration: the UCT constant `c`.
    :param max_depth: most steps on the answer path.
    :param rollout_tokens: most tokens one simulation generates from its leaf.
    :param max_tokens: most tokens on the answer path (OpenAI's `max_tokens`).
    :param max_search_tokens: most tokens the whole search may generate.
    :param max_seconds: wall-time budget of the search; none if unset.
    :param reflection: give a weak finished answer a sibling that asks the model to rethink
        it (Marco-o1's reflection prompt after the whole answer).
    :param reflection_threshold: an answer that ends with a reward below this gets the
        reflection prompt appended, and the rethinking competes with the unreflected one.
    :param max_reflections: reflections on one path.
    :param answer_markers: the answer is the text after the first of these (default: the
        `plain` reasoning format's, :data:`search.formats.PROFILES`).
    :param starts_in_reasoning: the prompt leaves the model inside an open reasoning block (a
        thinking template's trailing `<think>`), so the text is reasoning until a marker.
    :param drafts: a sampling method shows a sample while it decodes (a streamed request: the
        server sets it), as ``DraftDelta`` events.
    :param reward: the path score: `confidence` is Marco-o1's mean token confidence,
        `min_step` the weakest step's; `deepconf`, `lowest_group`, `bottom_groups` and `tail`
        are DeepConf's (Fu et al. 2025) mean, lowest window, lowest tenth of windows and last
        window of its token confidence (:mod:`search.reward`).
    :param window: tokens in one window of the `lowest_group`, `bottom_groups` and `tail`
        rewards.
    :param samples: full answers `best_of_n` and `self_consistency` sample.
    :param voting: how `self_consistency` counts its samples' final answers: `majority` one
        vote each; `weighted` each sample's `reward` as its vote; `filtered` only the `keep`
        most rewarded samples vote, weighted.
    :param keep: the share of samples a `filtered` vote keeps (at least one).
    :param halt_keep: `best_of_n` and `self_consistency` stop a sample mid-answer, as DeepConf
        online does, once its last `window` tokens are less confident than the lowest window
        of this share of the `warmup` samples (drawn whole first); a stopped sample votes only
        when none ended; unset finishes every sample.
    :param warmup: with `halt_keep`, the samples drawn whole first, which set the bar.
    :param beam_width: partial paths `beam` keeps after each step.
    :param parallel: MCTS leaves selected together (with virtual loss) and expanded in one
        engine call; 1 is the sequential algorithm.
    :param vote: MCTS commits the child whose finished rollouts carry the most reward for the
        leading final answer (the reward-weighted vote of every finished rollout below the
        root), and a search cut short answers with that answer's best rollout; otherwise it
        commits the most visited child, as Marco-o1 does.
    :param consensus: MCTS stops once one final answer holds this share of the vote's reward
        among at least one round's worth of finished rollouts, and answers with its best
        rollout; unset never stops early.
    :param verifier: the judge whose P(True) scores each whole answer of `best_of_n` and
        `self_consistency` in place of `reward` (:mod:`search.verifier`).
    :param constraint: what the answer must be (structured outputs, a forced tool call): every
        engine call continues the path within it, and the whole path is the answer.
    """

    prompt_token_ids: tuple[int, ...]
    method: str = option("self_consistency")
    granularity: Granularity = option("step")  # noqa: RUF009 - option() is field()
    step_tokens: int = option(64, ge=1, le=4096)
    step_separator: str = option("\n\n", min_length=1)
    iterations: int = option(4, ge=1, le=10_000)
    branching: int = option(2, ge=1, le=MAX_SAMPLES)
    exploration: float = option(math.sqrt(2), ge=0, le=100)
    max_depth: int = option(32, ge=1, le=10_000)
    rollout_tokens: int = option(256, ge=1, le=1_000_000)
    max_tokens: int = 512
    max_search_tokens: int = option(16384, ge=1, le=100_000_000)
    max_seconds: float | None = option(None, gt=0, le=86_400)
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int = REWARD_TOP_K
    reflection: bool = option(False)
    reflection_threshold: float = option(0.6, ge=0, le=1)
    reflection_text: str = REFLECTION_TEXT
    max_reflections: int = option(1, ge=0, le=16)
    answer_markers: tuple[str, ...] = PROFILES["plain"].answer_markers
    starts_in_reasoning: bool = False
    drafts: bool = False
    reward: str = option("confidence")
    window: int = option(32, ge=1, le=1_000_000)
    samples: int = option(4, ge=1, le=MAX_SAMPLES)
    voting: Voting = option("majority")  # noqa: RUF009 - option() is field()
    keep: float = option(0.5, gt=0, le=1)
    halt_keep: float | None = option(None, gt=0, le=1)
    warmup: int = option(2, ge=1, le=MAX_SAMPLES)
    beam_width: int = option(2, ge=1, le=64)
    parallel: int = option(1, ge=1, le=64)
    vote: bool = option(False)
    consensus: float | None = option(None, gt=0, le=1)
    constraint: Constraint | None = None
    verifier: Verifier | None = None

    def __post_init__(self) -> None:
        for knob in fields(self):
            _check_bounds(knob.name, getattr(self, knob.name), knob.metadata.get("bounds", {}))
        if self.max_tokens < 1:
            raise SearchConfigError(
                "max_tokens", f"max_tokens must be at least 1, got {self.max_tokens}"
            )
        if self.reward not in REWARDS:
            raise SearchConfigError("reward", f"unknown reward {self.reward!r}")
        if not self.prompt_token_ids:
            raise SearchConfigError("messages", "the prompt is empty")
        if not 0 < self.top_p <= 1:
            raise SearchConfigError("top_p", "top_p must be in (0, 1]")
        if self.temperature < 0:
            raise SearchConfigError("temperature", "temperature must be non-negative")
        if self.constraint is not None and self.reflection:
            raise SearchConfigError(
                "reflection",
                "reflection writes its prompt into the answer, which a constrained answer "
                "cannot hold",
            )
        if self.verifier is not None and self.method not in JUDGED_METHODS:
            raise SearchConfigError(
                "verifier",
                f"a verifier judges whole answers of {' and '.join(JUDGED_METHODS)}, "
                f"not method {self.method!r}",
            )
        if self.rollout_tokens < self.action_tokens:
            raise SearchConfigError(
                "rollout_tokens",
                f"rollout_tokens ({self.rollout_tokens}) must cover one action "
                f"({self.action_tokens} tokens)",
            )

    @property
    def action_tokens(self) -> int:
        """Most tokens in one action."""
        return 1 if self.granularity == "token" else self.step_tokens

    def generation(
        self,
        path: Sequence[int],
        max_tokens: int,
        seed: int,
        n: int = 1,
        watch: Watch | None = None,
        halt: Halt | None = None,
    ) -> GenerationRequest:
        """An engine request continuing the prompt plus ``path`` with this search's sampling
        (``watch``, ``halt``: see ``GenerationRequest``)."""
        return GenerationRequest(
            prompt_token_ids=(*self.prompt_token_ids, *path),
            max_tokens=max_tokens,
            n=n,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=seed,
            stop=self.stop,
            logprobs=self.logprobs,
            watch=watch,
            halt=halt,
            constraint=(
                None if self.constraint is None else replace(self.constraint, done=tuple(path))
            ),
        )
