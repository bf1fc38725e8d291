"""One report, written the same way by `tokclf evaluate --report DIR` and at the end of training:
the numbers (report.json), the figures (figures/*.svg, curves also .png) and index.html.

Everything the page shows is computed here from the gold and predicted tags of one split and the
metrics `evaluate_split` returned for them, so the report cannot disagree with the printed scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from tokclf.errors import DataError
from tokclf.inference.report import errors, figures
from tokclf.inference.report.page import render_page
from tokclf.inference.scoring import entity_confusion
from tokclf.runtime.outdir import OutputDir

# colour per type, displaCy-like pastel shades, given in order of the sorted types
PALETTE = ["#aa9cfc", "#feca74", "#7aecec", "#bfeeb7", "#ff9561", "#c887fb", "#9cc9cc", "#ffeb80", "#e4e7d2",
           "#ff8197", "#bfe1d9", "#f0d0ff", "#d9fe74", "#ddd6a8", "#c5d7ff", "#ffd8b0"]
CONFUSED_WORDS = 30  # rows of "most confused word forms"
HIDDEN_OPTIONS = {"hub_token"}  # never shown, even in a local page


@dataclass
class ReportInput:
    """One labelled split with its predictions. `scheme` is the label set's: "iob" (entity spans) or
    "none" (plain tags: POS, chunk tags without spans)."""

    words: Sequence[Sequence[str]]
    gold: Sequence[Sequence[str]]
    predicted: Sequence[Sequence[str]]
    metrics: dict
    scheme: str
    source: str
    title: str = "tokclf error analysis"
    decoding: Optional[str] = None
    run_dir: Optional[Path] = None  # a training output folder: its logs draw the curves, args.json the options
    extra: dict = field(default_factory=dict)  # more facts for report.json


def write_report(folder, report: ReportInput) -> Path:
    """Write the report into folder (made if needed) and return the path of its index.html."""
    if not len(report.gold):
        raise DataError(f"{report.source}: no sentences, so nothing to report on. Give a split with "
                        f"labelled sentences.")
    folder = Path(folder)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    numbers, sentences = analyse(report)
    context = draw(folder / "figures", report, numbers)
    (folder / "report.json").write_text(json.dumps(numbers, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    kinds = sorted({m[0] for s in sentences for m in (*s["g"], *s["p"])})
    data = {"sentences": sentences, "colours": dict(zip(kinds, PALETTE * (len(kinds) // len(PALETTE) + 1)))}
    error_kinds = errors.ERRORS if report.scheme == "iob" else ("tag",)
    context.update(title=report.title, source=report.source, n_sentences=len(report.gold), decoding=report.decoding,
                   headline=[(k, report.metrics[k]) for k in headline_metrics(report.scheme)],
                   kinds=kinds, error_kinds=error_kinds, n_error_sentences=len(sentences),
                   category_names=errors.CATEGORIES, options=run_options(report.run_dir))
    return render_page(folder / "index.html", context, data)


def headline_metrics(scheme: str) -> tuple[str, ...]:
    # plain tags: precision, recall and F1 all equal token accuracy (tokclf.inference.scoring.score_tags)
    return ("precision", "recall", "f1", "accuracy") if scheme == "iob" else ("accuracy",)


def analyse(report: ReportInput) -> tuple[dict, list[dict]]:
    """(the numbers of report.json, the sentences with errors, worst first)."""
    numbers = {**report.extra, "source": report.source, "sentences": len(report.gold), "metrics": report.metrics,
               "per_type": per_type_rows(report.metrics)}
    if report.scheme == "iob":
        marks = errors.sentence_marks(report.gold, report.predicted)
        numbers["confusion"] = entity_confusion(report.gold, report.predicted)
        numbers["categories"] = errors.count(m for sentence in marks for m in sentence)
        numbers["schemes"] = errors.schemes(numbers["categories"]["ALL"])
        sentences = [span_record(i, w, m) for i, (w, m) in enumerate(zip(report.words, marks))]
    else:
        table, confused = errors.token_confusion(report.gold, report.predicted, report.words)
        numbers["token_confusion"] = table
        ranked = sorted(confused.items(), key=lambda item: (-item[1], item[0]))[:CONFUSED_WORDS]
        numbers["confused_words"] = [[*key, n] for key, n in ranked]
        sentences = [tag_record(i, w, g, p) for i, (w, g, p) in
                     enumerate(zip(report.words, report.gold, report.predicted))]
    sentences = sorted((s for s in sentences if s["n"]), key=lambda s: (-s["n"], s["i"]))
    return numbers, sentences


def per_type_rows(metrics: dict) -> list[dict]:
    kinds = sorted(k[: -len("_number")] for k in metrics if k.endswith("_number"))
    return [{"type": kind, "precision": metrics[f"{kind}_precision"], "recall": metrics[f"{kind}_recall"],
             "f1": metrics[f"{kind}_f1"], "support": metrics[f"{kind}_number"]} for kind in kinds]


def span_record(index: int, words, marks: list[errors.Mark]) -> dict:
    """A sentence for the page: its words, and [type, start, end, category] per gold and predicted span."""
    gold = [[m.gold.kind, m.gold.start, m.gold.end, m.category] for m in marks if m.gold]
    predicted = [[m.predicted.kind, m.predicted.start, m.predicted.end, m.category] for m in marks if m.predicted]
    n = sum(m.category != errors.EXACT for m in marks)
    return {"i": index, "w": list(words), "g": sorted(gold, key=lambda m: m[1]),
            "p": sorted(predicted, key=lambda m: m[1]), "n": n}


def tag_record(index: int, words, gold, predicted) -> dict:
    """Plain tags: each wrongly tagged word is a one-word mark, its gold tag above, the predicted below."""
    wrong = [i for i, (g, p) in enumerate(zip(gold, predicted)) if g != p]
    return {"i": index, "w": list(words), "g": [[gold[i], i, i + 1, "tag"] for i in wrong],
            "p": [[predicted[i], i, i + 1, "tag"] for i in wrong], "n": len(wrong)}


def draw(folder: Path, report: ReportInput, numbers: dict) -> dict:
    """The figures; returns what the page needs to know about them."""
    context = {"per_type": numbers["per_type"], "confusion": numbers.get("confusion"),
               "categories": numbers.get("categories"), "schemes": numbers.get("schemes"),
               "token_confusion": numbers.get("token_confusion"), "confused_words": numbers.get("confused_words"),
               "truncated_tags": 0, "curves": False}
    if numbers["per_type"]:
        figures.per_type_bars(numbers["per_type"], folder / "per_type.svg")
    if context["confusion"]:
        figures.heat_map(context["confusion"], folder / "confusion.svg", "gold type", "predicted type")
    if context["categories"]:
        figures.category_bars(context["categories"], folder / "categories.svg")
    if context["token_confusion"]:
        table = context["token_confusion"]
        figures.heat_map(table, folder / "token_confusion.svg", "gold tag", "predicted tag")
        context["truncated_tags"] = figures.MAX_CONFUSION_LABELS if len(table) > figures.MAX_CONFUSION_LABELS else 0
    if report.run_dir is not None:
        out = OutputDir(report.run_dir)
        context["curves"] = figures.curves(out.read_train_log(), out.read_results_log(), folder / "curves.svg")
    return context


def run_options(run_dir: Optional[Path]) -> list[tuple[str, str]]:
    """The run's options (args.json) as (name, value) rows, without secrets."""
    if run_dir is None:
        return []
    args = OutputDir(run_dir).read_args()
    return [(k, json.dumps(v) if not isinstance(v, str) else v) for k, v in sorted(args.items())
            if k not in HIDDEN_OPTIONS and v is not None]
