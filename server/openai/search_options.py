"""The request's ``search`` object (``extra_body={"search": {...}}``): every knob a client may
set, written out with its type, default, bounds and description, and mapped explicitly to the
:class:`~search.params.SearchParams` a search runs with (:func:`search_params`).

The search declares its own defaults and bounds (``search/params.py``'s ``option`` fields,
checked there for callers that are not HTTP clients); tests/server/test_search_options.py holds
the two to the same fields, defaults, bounds and registry names.  The object is strict, so a
typo is a 400 that names the field; unset fields take the server's defaults.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from search.engine import Constraint
from search.params import MAX_SAMPLES, Granularity, SearchParams, Voting
from search.verifier import Verifier

Method = Literal["mcts", "none", "best_of_n", "self_consistency", "beam"]
Reward = Literal["confidence", "min_step", "deepconf", "lowest_group", "bottom_groups", "tail"]


class SearchOptions(BaseModel):
    """Per-request search knobs (``extra_body={"search": {...}}``); unset fields take the
    server's defaults (``--search-defaults``).  Bounds reject absurd values; server caps come
    on top."""

    model_config = ConfigDict(extra="forbid")

    method: Method = Field(
        "self_consistency",
        description="the search method: `mcts` is Marco-o1's tree search, `self_consistency` "
        "(the default: the best per token measured on the default model) the majority of "
        "`samples` whole answers, `none` plain sampling with no search.",
    )
    granularity: Granularity = Field(
        "step",
        description="an action is a `step` (up to `step_separator`), a `mini_step` of "
        "`step_tokens` tokens, or a single `token`.",
    )
    step_tokens: int = Field(
        64,
        ge=1,
        le=4096,
        description="mini-step size; in `step` granularity the cap on one step's length; for "
        "method `none`, the tokens of one engine call.",
    )
    step_separator: str = Field(
        "\n\n", min_length=1, description="the text that ends a step in `step` granularity."
    )
    iterations: int = Field(4, ge=1, le=10_000, description="MCTS simulations per committed step.")
    branching: int = Field(
        2,
        ge=1,
        le=MAX_SAMPLES,
        description="children per expansion (the `n` of one engine call).",
    )
    exploration: float = Field(math.sqrt(2), ge=0, le=100, description="the UCT constant `c`.")
    max_depth: int = Field(32, ge=1, le=10_000, description="most steps on the answer path.")
    rollout_tokens: int = Field(
        256,
        ge=1,
        le=1_000_000,
        description="most tokens one simulation generates from its leaf.",
    )
    max_search_tokens: int = Field(
        16384,
        ge=1,
        le=100_000_000,
        description="most tokens the whole search may generate.",
    )
    max_seconds: float | None = Field(
        None, gt=0, le=86_400, description="wall-time budget of the search; none if unset."
    )
    reflection: bool = Field(
        False,
        description="give a weak finished answer a sibling that asks the model to rethink it "
        "(Marco-o1's reflection prompt after the whole answer).",
    )
    reflection_threshold: float = Field(
        0.6,
        ge=0,
        le=1,
        description="an answer that ends with a reward below this gets the reflection prompt "
        "appended, and the rethinking competes with the unreflected one.",
    )
    max_reflections: int = Field(1, ge=0, le=16, description="reflections on one path.")
    reward: Reward = Field(
        "confidence",
        description="the path score: `confidence` is Marco-o1's mean token confidence, "
        "`min_step` the weakest step's; `deepconf`, `lowest_group`, `bottom_groups` and `tail` "
        "are DeepConf's (Fu et al. 2025) mean, lowest window, lowest tenth of windows and last "
        "window of its token confidence (`reward`).",
    )
    window: int = Field(
        32,
        ge=1,
        le=1_000_000,
        description="tokens in one window of the `lowest_group`, `bottom_groups` and `tail` "
        "rewards.",
    )
    samples: int = Field(
        4,
        ge=1,
        le=MAX_SAMPLES,
        description="full answers `best_of_n` and `self_consistency` sample.",
    )
    voting: Voting = Field(
        "majority",
        description="how `self_consistency` counts its samples' final answers: `majority` one "
        "vote each; `weighted` each sample's `reward` as its vote; `filtered` only the `keep` "
        "most rewarded samples vote, weighted.",
    )
    keep: float = Field(
        0.5,
        gt=0,
        le=1,
        description="the share of samples a `filtered` vote keeps (at least one).",
    )
    halt_keep: float | None = Field(
        None,
        gt=0,
        le=1,
        description="`best_of_n` and `self_consistency` stop a sample mid-answer, as DeepConf "
        "online does, once its last `window` tokens are less confident than the lowest window "
        "of this share of the `warmup` samples (drawn whole first); a stopped sample votes only "
        "when none ended; unset finishes every sample.",
    )
    warmup: int = Field(
        2,
        ge=1,
        le=MAX_SAMPLES,
        description="with `halt_keep`, the samples drawn whole first, which set the bar.",
    )
    beam_width: int = Field(
        2, ge=1, le=64, description="partial paths `beam` keeps after each step."
    )
    parallel: int = Field(
        1,
        ge=1,
        le=64,
        description="MCTS leaves selected together (with virtual loss) and expanded in one "
        "engine call; 1 is the sequential algorithm.",
    )
    vote: bool = Field(
        False,
        description="MCTS commits the child whose finished rollouts carry the most reward for "
        "the leading final answer (the reward-weighted vote of every finished rollout below "
        "the root), and a search cut short answers with that answer's best rollout; otherwise "
        "it commits the most visited child, as Marco-o1 does.",
    )
    consensus: float | None = Field(
        None,
        gt=0,
        le=1,
        description="MCTS stops once one final answer holds this share of the vote's reward "
        "among at least one round's worth of finished rollouts, and answers with its best "
        "rollout; unset never stops early.",
    )
    verifier: Literal["self", "judge"] | None = Field(
        None,
        description="best_of_n and self_consistency: score each whole answer by a judge's "
        "P(True) instead of `reward`: `self` asks the model that answered, `judge` the server's "
        "--verifier model (default: no verifier)",
    )
    # how the server answers, not how it searches
    answer_markers: list[str] | None = Field(
        None,
        description="text after the first marker is the answer (default: the reasoning format's)",
    )
    return_tree: bool = Field(False, description="include the whole search tree in the response")
    progress: bool = Field(
        False, description="streaming: send search_progress chunks as the search expands"
    )

    def search_params(
        self,
        *,
        prompt_token_ids: tuple[int, ...],
        max_tokens: int,
        max_search_tokens: int,
        answer_markers: tuple[str, ...],
        starts_in_reasoning: bool,
        drafts: bool,
        temperature: float,
        top_p: float,
        seed: int | None,
        stop: tuple[str, ...],
        logprobs: int,
        constraint: Constraint | None,
        verifier: Verifier | None,
    ) -> SearchParams:
        """The search these options ask for, with what the rest of the request decided (the
        budgets after the server's and the client's bounds, the resolved markers, the judge).
        ``SearchConfigError`` names a knob whose value contradicts another."""
        return SearchParams(
            prompt_token_ids=prompt_token_ids,
            method=self.method,
            granularity=self.granularity,
            step_tokens=self.step_tokens,
            step_separator=self.step_separator,
            iterations=self.iterations,
            branching=self.branching,
            exploration=self.exploration,
            max_depth=self.max_depth,
            rollout_tokens=self.rollout_tokens,
            max_tokens=max_tokens,
            max_search_tokens=max_search_tokens,
            max_seconds=self.max_seconds,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=stop,
            logprobs=logprobs,
            reflection=self.reflection,
            reflection_threshold=self.reflection_threshold,
            max_reflections=self.max_reflections,
            answer_markers=answer_markers,
            starts_in_reasoning=starts_in_reasoning,
            drafts=drafts,
            reward=self.reward,
            window=self.window,
            samples=self.samples,
            voting=self.voting,
            keep=self.keep,
            halt_keep=self.halt_keep,
            warmup=self.warmup,
            beam_width=self.beam_width,
            parallel=self.parallel,
            vote=self.vote,
            consensus=self.consensus,
            constraint=constraint,
            verifier=verifier,
        )
