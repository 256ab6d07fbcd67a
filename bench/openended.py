"""Open-ended questions, where no answer is right or wrong: how close each method's translation
of colloquial Chinese comes to two human references, by chrF.  ``python -m bench.eval --open
zho-eng --config ...``.

Marco-o1's showcase is such a task (translating colloquial Chinese into natural English), and it
is where a vote over extracted final answers means nothing.  The items (``bench/open/*.tsv``:
source, two references) were written for ponder.  Every configuration answers every item with
the same seed, through the same runner and resumable ledger as the accuracy eval, and is scored
by corpus chrF (sacrebleu, both references) with a 95% paired-bootstrap interval and its p-value
against the first configuration, by the mean of per-item chrF, and by its length against the
references' (chrF punishes a short answer's missed n-grams and a padded one's extra ones
differently, so a method that changes length is read with that in mind).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sacrebleu.metrics.chrf import CHRF
from sacrebleu.significance import PairedTest

from bench.eval import Ledger, Outcome, answer_all
from bench.problems import Problem

SETS = Path(__file__).parent / "open"
INSTRUCTION = (
    "Translate this Chinese sentence into natural, idiomatic English. Reply with the English "
    "sentence only.\n\n{source}"
)
RESAMPLES = 1000


@dataclass(frozen=True, slots=True)
class Item:
    """One sentence to translate and its references."""

    id: str
    source: str
    references: tuple[str, str]


def load_items(name: str, limit: int | None) -> list[Item]:
    """The items of ``bench/open/NAME.tsv`` (``#`` lines are comments), the first ``limit``."""
    rows = [
        line.split("\t")
        for line in (SETS / f"{name}.tsv").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    items = [Item(f"open-{name}-{i:03d}", s, (a, b)) for i, (s, a, b) in enumerate(rows)]
    return items[:limit]


def evaluate(args: argparse.Namespace) -> None:
    """Answer every item under every configuration (resuming ``NAME.json``), then report."""
    items = load_items(args.open, args.limit)
    problems = [Problem(i.id, INSTRUCTION.format(source=i.source), "") for i in items]
    path = args.results / f"{args.name}.json"
    if args.report:
        saved = json.loads(path.read_text())
        ledger = Ledger(path, {k: saved[k] for k in ("model", "args", "configs")}, fresh=False)
    else:
        ledger = answer_all(problems, args, path)
    text, numbers = report(ledger, items)
    print(text)
    ledger.save(numbers)
    (args.results / f"{args.name}.md").write_text(text + "\n")


def words(text: str) -> int:
    """Whitespace-separated words: the length a reader sees."""
    return len(text.split())


def report(ledger: Ledger, items: list[Item]) -> tuple[str, dict[str, Any]]:
    """Per configuration, on the items every configuration answered: corpus chrF with its
    bootstrap interval and p-value against the first, mean item chrF, length, tokens, seconds."""
    labels = list(ledger.meta["configs"])
    answered = [i for i in items if all((i.id, label) in ledger.outcomes for label in labels)]
    if not answered:
        return "no item has been answered by every configuration yet", {}
    references = [[i.references[0] for i in answered], [i.references[1] for i in answered]]
    by_label: dict[str, list[Outcome]] = {
        label: [ledger.outcomes[(i.id, label)] for i in answered] for label in labels
    }
    systems = [(label, [o.content.strip() for o in by_label[label]]) for label in labels]
    sentence = CHRF()
    reference_words = sum(words(r) for i in answered for r in i.references) / (2 * len(answered))
    rows = []
    for (label, hypotheses), score in zip(systems, paired_chrf(systems, references), strict=True):
        per_item = [
            sentence.sentence_score(h, [i.references[0], i.references[1]]).score
            for h, i in zip(hypotheses, answered, strict=True)
        ]
        outcomes = by_label[label]
        rows.append(
            {
                "config": label,
                "items": len(answered),
                **score,
                "item_chrf": sum(per_item) / len(per_item),
                "words": sum(words(h) for h in hypotheses) / len(hypotheses),
                "generated_tokens": sum(o.generated_tokens for o in outcomes) / len(outcomes),
                "seconds": sum(o.seconds for o in outcomes) / len(outcomes),
                "per_item": per_item,
            }
        )
    run = ledger.meta["args"]
    lines = [
        f"{ledger.meta['model']}, {args_note(run)}; {len(answered)} items of `{run['open']}`, "
        f"references {reference_words:.1f} words on average. Configs: "
        + "; ".join(f"`{spec}`" for spec in ledger.meta["configs"].values()),
        "",
        f"| config | corpus chrF (95% CI) | p vs {labels[0]} | mean item chrF | words | "
        "tokens / item | seconds / item |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['config']} | {r['chrf']:.1f} (±{r['ci']:.1f}) | "
        f"{_p(r['p'])} | {r['item_chrf']:.1f} | "
        f"{r['words']:.1f} | {r['generated_tokens']:.0f} | {r['seconds']:.1f} |"
        for r in rows
    ]
    return "\n".join(lines), {"summary": rows}


def paired_chrf(
    systems: list[tuple[str, list[str]]], references: list[list[str]]
) -> list[dict[str, Any]]:
    """Each system's corpus chrF, its 95% bootstrap interval's half-width and the paired
    bootstrap's p against the first system (``None`` for it): sacrebleu's paired test."""
    _, scores = PairedTest(
        systems, {"chrF": CHRF()}, references, test_type="bs", n_samples=RESAMPLES
    )()
    scores.pop("System")  # the rest is one entry: the metric's scores, system by system
    (chrf,) = scores.values()
    return [
        {
            "chrf": float(score.score),
            "ci": float(score.ci),
            "p": None if score.p_value is None else float(score.p_value),
        }
        for score in chrf
    ]


def pooled(runs: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    """``labels``' corpus chrF over several runs of one task (other seeds) taken as one corpus
    of their items, paired against ``labels[0]``, on the items every run's labels answered."""
    items = {i.id: i for i in load_items(runs[0]["args"]["open"], None)}
    answers: dict[str, dict[tuple[int, str], str]] = {label: {} for label in labels}
    for number, run in enumerate(runs):
        for o in run["outcomes"]:
            if o["config"] in answers:
                answers[o["config"]][(number, o["problem"])] = o["content"].strip()
    keys = sorted(set.intersection(*(set(a) for a in answers.values())))
    references = [[items[k[1]].references[j] for k in keys] for j in (0, 1)]
    systems = [(label, [answers[label][k] for k in keys]) for label in labels]
    scores = paired_chrf(systems, references)
    return [
        {"config": label, "items": len(keys), **s} for label, s in zip(labels, scores, strict=True)
    ]


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def args_note(run: dict[str, Any]) -> str:
    """The run's sampling, as the tables say it."""
    return (
        f"seed {run['seed']}, temperature {run['temperature']} (unless a config sets it), "
        f"{run['concurrency']} requests at once"
    )
