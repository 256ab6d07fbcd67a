"""Accuracy of search configurations on math word problems, paired, with the tokens and seconds
each spends, against one ponder server (started here, or any at ``--url``).

A configuration is ``LABEL=METHOD[,field=value...]`` (``--config``, repeatable): the method and
the ``search`` fields it changes from the server's defaults, plus ``temperature``,
``max_tokens`` and ``reasoning_format`` (``marco=none,temperature=0,reasoning_format=marco``).
Every configuration answers the same problems with the same seed, so two of them are compared
problem by problem (exact McNemar) rather than by two noisy totals.

Problems (:mod:`bench.problems`): GSM8K test problems per language (``--gsm eng,zho``) and
reasoning-gym tasks (``--gym chain_sum``).  ``--concurrency`` requests run at once: they share the
engine's batch, as users' requests do, so seconds per problem are those of a server under that
load.  Results go to ``bench/results/<name>.{md,json,png}`` after every answer, and a rerun with
the same name resumes where the last one stopped.  ``--calibration`` asks instead whether the
rewards know right from wrong (:mod:`bench.studies.calibration`), ``--choices N`` whether
``n`` answers cost less as one search's best paths than as ``n`` searches
(:mod:`bench.studies.choices`), and
``--open NAME`` how well each configuration does where no answer is right or wrong
(:mod:`bench.openended`: translations scored by chrF).  ``--tools N`` adds N tool-calling tasks
with one right call each (:mod:`bench.toolcalls`); a config may set ``tool_choice``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import openai

from bench.problems import Problem, load_problems
from bench.toolcalls import called
from search.extract import extract_answer
from search.params import SearchParams
from server.local import live_server

logger = logging.getLogger("bench.eval")
RESULTS = Path(__file__).parent / "results"
CORE = (
    "greedy=none,temperature=0",
    "sc4=self_consistency,samples=4",
    "mcts=mcts,granularity=step,iterations=2,branching=2",
)
TOP_LEVEL = ("temperature", "max_tokens", "reasoning_format", "tool_choice")  # the rest: search
EXTENSIONS = ("reasoning_format",)  # top-level fields of ponder's, sent in extra_body
DEFAULT_SAMPLES = SearchParams.__dataclass_fields__["samples"].default


@dataclass(frozen=True, slots=True)
class Config:
    """One way of asking: a label and what it changes from the defaults (the method too)."""

    label: str
    spec: str
    search: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> Config:
        """``LABEL=METHOD[,key=value...]``; values are JSON where they parse, else strings."""
        label, _, rest = spec.partition("=")
        method, *pairs = rest.split(",")
        if not label or not method:
            raise argparse.ArgumentTypeError(f"{spec!r}: expected LABEL=METHOD[,key=value...]")
        search: dict[str, Any] = {"method": method}
        request: dict[str, Any] = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            if not sep:
                raise argparse.ArgumentTypeError(f"{spec!r}: {pair!r} is not key=value")
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            (request if key in TOP_LEVEL else search)[key] = value
        return cls(label, spec, search, request)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One configuration's attempt at one problem."""

    problem: str
    config: str
    predicted: str | None
    gold: str
    correct: bool
    generated_tokens: int
    completion_tokens: int
    seconds: float
    reward: float
    stop_reason: str  # the response's search.ended_by (the stored field keeps its old name)
    content: str


def answer_budget(config: Config, max_tokens: int) -> dict[str, Any]:
    """``config``'s search with ``--max-tokens`` as the tokens of one answer.  A request's
    ``max_tokens`` bounds the whole search (OpenAI's meaning for reasoning models), so the
    budget goes into ``search.max_search_tokens``: one answer's worth for ``none``, one per
    sample for ``best_of_n`` and ``self_consistency`` (each sample gets its share); MCTS and
    beam keep the server's search budget, their rollouts bounded by ``rollout_tokens``.  A
    config that sets ``max_search_tokens`` or a top-level ``max_tokens`` keeps its own."""
    search = dict(config.search)
    if "max_search_tokens" in search or "max_tokens" in config.request:
        return search
    if search["method"] == "none":
        search["max_search_tokens"] = max_tokens
    elif search["method"] in ("best_of_n", "self_consistency"):
        search["max_search_tokens"] = search.get("samples", DEFAULT_SAMPLES) * max_tokens
    return search


def attempt(
    client: openai.OpenAI, model: str, problem: Problem, config: Config, args: argparse.Namespace
) -> Outcome:
    """Ask once; extract the answer from the reasoning and the content together."""
    request: dict[str, Any] = {"temperature": args.temperature, **config.request}
    extensions = {key: request.pop(key) for key in EXTENSIONS if key in request}
    started = time.monotonic()
    if problem.tools:
        request["tools"] = list(problem.tools)
    r = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": problem.prompt}],
        seed=args.seed,
        extra_body={"search": answer_budget(config, args.max_tokens), **extensions},
        **request,
    )
    seconds = time.monotonic() - started
    message = r.choices[0].message
    reasoning = (message.model_extra or {}).get("reasoning_content") or ""
    predicted = (
        called(message.tool_calls)
        if problem.tools
        else extract_answer(reasoning + (message.content or ""))
    )
    info = (r.model_extra or {})["search"]
    return Outcome(
        problem.id,
        config.label,
        predicted,
        problem.gold,
        predicted == problem.gold,
        info["generated_tokens"],
        r.usage.completion_tokens if r.usage else 0,
        seconds,
        info["reward"],
        info["ended_by"],
        message.content or "",
    )


class Ledger:
    """Every outcome so far, on disk after each one: a run that stops resumes from here."""

    def __init__(self, path: Path, meta: dict[str, Any], fresh: bool) -> None:
        self.path = path
        self.meta = meta
        self.outcomes: dict[tuple[str, str], Outcome] = {}
        self._lock = threading.Lock()
        if path.exists() and not fresh:
            self._resume(json.loads(path.read_text()))

    def _resume(self, saved: dict[str, Any]) -> None:
        for key in ("seed", "temperature", "max_tokens"):
            if saved["args"][key] != self.meta["args"][key]:
                raise SystemExit(f"{self.path}: --{key} differs from the run it resumes (--fresh?)")
        for label, spec in saved["configs"].items():
            if self.meta["configs"].get(label, spec) != spec:
                raise SystemExit(f"{self.path}: config {label!r} changed (another label?)")
        self.meta["configs"] = {**saved["configs"], **self.meta["configs"]}
        for item in saved["outcomes"]:
            outcome = Outcome(**item)
            self.outcomes[(outcome.problem, outcome.config)] = outcome
        logger.info("resuming %s: %d answers already there", self.path, len(self.outcomes))

    def add(self, outcome: Outcome) -> None:
        """Record one answer and rewrite the file (atomically: a kill leaves the last one)."""
        with self._lock:
            self.outcomes[(outcome.problem, outcome.config)] = outcome
            self.save()

    def save(self, extra: dict[str, Any] | None = None) -> None:
        outcomes = [asdict(o) for o in self.outcomes.values()]
        document = {**self.meta, **(extra or {}), "outcomes": outcomes}
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(document, indent=1, ensure_ascii=False))
        os.replace(partial, self.path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running ponder server (default: start one)")
    parser.add_argument("--name", default="eval", help="results go to RESULTS/NAME.*")
    parser.add_argument("--results", type=Path, default=RESULTS, help="(default: bench/results)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    parser.add_argument("--model", help="model for the started server (default: ponder's)")
    parser.add_argument("--engine", default="auto", help="engine for the started server")
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        help="an OpenAI-compatible server (vllm serve) the started ponder generates on; "
        "repeatable (a fleet); --model or --tokenizer then names the fleet's tokenizer",
    )
    parser.add_argument("--tokenizer", help="the fleet's tokenizer, if not --model's")
    parser.add_argument(
        "--serve-arg", action="append", default=[], help="more `ponder serve` flags (repeatable)"
    )
    parser.add_argument("--gsm", default="eng", help="GSM8K languages, comma-separated ('' none)")
    parser.add_argument("--gym", default="", help="reasoning-gym tasks, comma-separated")
    parser.add_argument("--gym-size", type=int, default=50, help="problems per reasoning-gym task")
    parser.add_argument("--gym-seed", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="problems per source at most")
    parser.add_argument(
        "--tools", type=int, default=0, help="N tool-calling tasks too (bench.toolcalls)"
    )
    parser.add_argument(
        "--config",
        action="append",
        type=Config.parse,
        help="LABEL=METHOD[,field=value...], repeatable (default: " + "; ".join(CORE) + ")",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="requests at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument(
        "--report",
        action="store_true",
        help="only summarise NAME.json (--calibration: NAME.records.json) of a stopped run",
    )
    parser.add_argument(
        "--calibration",
        action="store_true",
        help="score the rewards instead (bench.studies.calibration)",
    )
    parser.add_argument("--samples", type=int, default=8, help="--calibration: answers per problem")
    parser.add_argument(
        "--judge", help="--calibration: MODEL also judges every stored answer (reward `judge`)"
    )
    parser.add_argument(
        "--open", help="NAME: the open-ended task bench/open/NAME.tsv instead (bench.openended)"
    )
    parser.add_argument(
        "--choices",
        type=int,
        default=0,
        help="N: compare N searches with one search's N best paths (bench.studies.choices)",
    )
    return parser


def main() -> None:
    """Parse flags, answer every problem under every configuration, write the results."""
    args = build_parser().parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.calibration:
        from bench.studies.calibration import calibrate

        calibrate(asked_problems(vars(args)), args)
        return
    if args.open:
        from bench.openended import evaluate

        evaluate(args)
        return
    if args.choices:
        from bench.studies.choices import compare

        compare(asked_problems(vars(args)), args, args.config or [Config.parse(CORE[-1])])
        return
    from bench.eval_report import report

    path = args.results / f"{args.name}.json"
    if args.report:  # the problems the run asked, whatever this command line names
        saved = json.loads(path.read_text())
        ledger = Ledger(path, {k: saved[k] for k in ("model", "args", "configs")}, fresh=False)
        problems = asked_problems(saved["args"])
    else:
        problems = asked_problems(vars(args))
        ledger = answer_all(problems, args, path)
    report(ledger, problems, args.results / args.name)


def asked_problems(flags: dict[str, Any]) -> list[Problem]:
    """The problems that flags (this command line's, or a saved run's ``args``) name."""
    return load_problems(
        flags["gsm"],
        flags["gym"],
        flags["gym_size"],
        flags["gym_seed"],
        flags["limit"],
        flags.get("tools", 0),
    )


def answer_all(problems: list[Problem], args: argparse.Namespace, path: Path) -> Ledger:
    """Every configuration's answer to every problem not yet in the ledger at ``path``."""
    configs: list[Config] = args.config or [Config.parse(spec) for spec in CORE]
    serve_args = [*(["--model", args.model] if args.model else []), "--engine", args.engine]
    for url in args.upstream:
        serve_args += ["--upstream", url]
    serve_args += [*(["--tokenizer", args.tokenizer] if args.tokenizer else []), *args.serve_arg]
    path.parent.mkdir(parents=True, exist_ok=True)
    with live_server(args.url, serve_args) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", timeout=7200, max_retries=0)
        model = client.models.list().data[0].id
        meta = {
            "model": model,
            "args": {k: v for k, v in vars(args).items() if k not in ("config", "results")},
            "configs": {c.label: c.spec for c in configs},
        }
        ledger = Ledger(path, meta, args.fresh)
        # problem by problem: a run stopped early still compares every config on the same ones
        jobs = [(p, c) for p in problems for c in configs if (p.id, c.label) not in ledger.outcomes]
        done = 0

        def run(problem: Problem, config: Config) -> None:
            nonlocal done
            outcome = attempt(client, model, problem, config, args)
            ledger.add(outcome)
            done += 1
            logger.info(
                "%d/%d %s %s: %s (gold %s) %d tokens %.1fs",
                done,
                len(jobs),
                problem.id,
                config.label,
                outcome.predicted,
                problem.gold,
                outcome.generated_tokens,
                outcome.seconds,
            )

        with ThreadPoolExecutor(args.concurrency) as pool:
            for future in [pool.submit(run, p, c) for p, c in jobs]:
                future.result()
    return ledger


if __name__ == "__main__":
    main()
