"""Evaluation on words: gather window predictions from all processes, merge them back to one score
vector per word, decode to tags and score with seqeval."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm

from tokclf.inference.decoding import decode
from tokclf.data.columns import EncodedColumns

def predict_word_scores(model, loader, accelerator, split: EncodedColumns, num_labels: int,
                        desc: str = "evaluating") -> list[np.ndarray]:
    """Per sentence, an array [words, labels] of log-probabilities; exactly one row per word.

    `gather_for_metrics` drops the rows that the last, evenly split batch repeats on some processes,
    so every window is seen once however many processes there are. The scores of all words live in
    one array, row `word_start[sentence] + word`; each sentence's array is a view of it.
    """
    model.eval()
    word_start = np.concatenate([[0], np.cumsum(split.words_per_sentence)])
    scores = np.full((int(word_start[-1]), num_labels), np.nan, dtype=np.float32)
    sentence_of, (offsets, positions, words) = split.sentence_of_feature, split.scored
    bar = tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process, leave=False)
    # Weights already in bf16 (accel.wants_bf16_weights) need no autocast.
    # Otherwise one autocast region around the whole pass: autocast caches the bf16 copy of each weight until its
    # outermost region ends, so the weights are cast once per evaluation instead of once per batch (the
    # prepared model's own per-forward region nests inside). Safe here only: no optimizer step changes
    # the weights inside it. Without mixed precision this is a no-op context.
    bf16_weights = next(model.parameters()).dtype == torch.bfloat16
    with nullcontext() if bf16_weights else accelerator.autocast(), torch.no_grad():
        for batch in bar:
            feature_index = batch.pop("feature_index")
            batch.pop("labels", None)
            logits = model(**batch).logits
            log_probs = accelerator.pad_across_processes(logits.float().log_softmax(-1), dim=1)
            log_probs, feature_index = accelerator.gather_for_metrics((log_probs, feature_index))
            for row, f in zip(log_probs.cpu().numpy(), feature_index.tolist()):  # host sync: the batch's scores
                a, b = offsets[f], offsets[f + 1]
                scores[word_start[sentence_of[f]] + words[a:b]] = row[positions[a:b]]
    missing = int(np.isnan(scores[:, 0]).sum()) if num_labels else 0
    if missing:  # a bug, never bad input: every word is owned by exactly one window
        raise RuntimeError(f"{missing} words got no prediction")
    return [scores[word_start[s]:word_start[s + 1]] for s in range(len(word_start) - 1)]


def score_tags(gold: list[list[str]], predicted: list[list[str]], scheme: str) -> dict[str, float]:
    """precision/recall/f1 of entity spans (seqeval, default CoNLL-style mode), token accuracy, and
    per type TYPE_precision/_recall/_f1/_number. With plain tags (POS) span scores mean nothing:
    precision = recall = f1 = token accuracy (the micro average of single-label classification).

    Two seqeval calls (per type, micro) rather than its five convenience functions, each of which
    extracts every span of the split again (under a profiler, 2 of 15 seconds of a CoNLL evaluation)."""
    from seqeval.metrics import accuracy_score
    from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

    accuracy = float(accuracy_score(gold, predicted))
    if scheme == "none":
        return {"precision": accuracy, "recall": accuracy, "f1": accuracy, "accuracy": accuracy}
    precision, recall, f1, _ = precision_recall_fscore_support(gold, predicted, average="micro", zero_division=0)
    metrics = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "accuracy": accuracy}
    # seqeval reports the types of all spans in gold or predicted tags, sorted; any tag but O makes a span
    kinds = sorted({tag[2:] for tags in (*gold, *predicted) for tag in tags if tag != "O"})
    per_type = precision_recall_fscore_support(gold, predicted, average=None, zero_division=0)
    for kind, p, r, f, n in zip(kinds, *per_type):
        metrics.update({f"{kind}_precision": float(p), f"{kind}_recall": float(r), f"{kind}_f1": float(f),
                        f"{kind}_number": int(n)})
    return metrics


def evaluate_split(model, loader, accelerator, split, gold_tags, labels, decoding="viterbi"):
    """(metrics, predicted tags) of one split."""
    scores = predict_word_scores(model, loader, accelerator, split, len(labels.names))
    predicted = decode(scores, labels.names, decoding)
    return score_tags(gold_tags, predicted, labels.scheme), predicted


def format_table(metrics: dict, title: str) -> str:
    """The headline scores and one row per entity type, as printed after each evaluation."""
    lines = [title, f"{'':10} {'precision':>9} {'recall':>9} {'f1':>9} {'number':>8}"]
    kinds = sorted(k[: -len("_number")] for k in metrics if k.endswith("_number"))
    for kind in kinds:
        lines.append(f"{kind:10} {metrics[kind + '_precision']:9.4f} {metrics[kind + '_recall']:9.4f} "
                     f"{metrics[kind + '_f1']:9.4f} {metrics[kind + '_number']:8d}")
    lines.append(f"{'overall':10} {metrics['precision']:9.4f} {metrics['recall']:9.4f} {metrics['f1']:9.4f}"
                 f"   accuracy {metrics['accuracy']:.4f}")
    return "\n".join(lines)


def entity_confusion(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, dict[str, int]]:
    """gold type → predicted type → count, over entity spans. A gold span predicted with the same
    boundaries counts under the predicted type; one not found so counts under "O" (missed or cut
    differently); a predicted span with no gold span of the same boundaries counts in row "O"."""
    from seqeval.metrics.sequence_labeling import get_entities

    table: dict[str, dict[str, int]] = {}
    for gold_tags, predicted_tags in zip(gold, predicted):
        gold_spans = {(start, end): kind for kind, start, end in get_entities(list(gold_tags))}
        predicted_spans = {(start, end): kind for kind, start, end in get_entities(list(predicted_tags))}
        for span, kind in gold_spans.items():
            row = table.setdefault(kind, {})
            row[predicted_spans.get(span, "O")] = row.get(predicted_spans.get(span, "O"), 0) + 1
        for span, kind in predicted_spans.items():
            if span not in gold_spans:
                table.setdefault("O", {})[kind] = table.setdefault("O", {}).get(kind, 0) + 1
    return table


def format_confusion(table: dict[str, dict[str, int]]) -> str:
    kinds = sorted({k for k in table if k != "O"} | {k for row in table.values() for k in row if k != "O"}) + ["O"]
    lines = ["entity types: gold (rows) x predicted (columns); O = no span with those boundaries",
             f"{'':8}" + "".join(f"{k:>8}" for k in kinds)]
    for gold_kind in kinds:
        row = table.get(gold_kind, {})
        lines.append(f"{gold_kind:8}" + "".join(f"{row.get(k, 0) if (gold_kind, k) != ('O', 'O') else '-':>8}" for k in kinds))
    return "\n".join(lines)
