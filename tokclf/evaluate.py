"""Evaluation on words: gather window predictions from all processes, merge them back to one score
vector per word, decode to tags and score with seqeval."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from tokclf.features import EncodedSplit

AVERAGES = ("micro avg", "macro avg", "weighted avg")


def predict_word_scores(model, loader, accelerator, split: EncodedSplit, num_labels: int) -> list[np.ndarray]:
    """Per sentence, an array [words, labels] of log-probabilities; exactly one row per word.

    `gather_for_metrics` drops the rows that the last, evenly split batch repeats on some processes,
    so every window is seen once however many processes there are.
    """
    model.eval()
    scores = [np.full((n, num_labels), np.nan, dtype=np.float32) for n in split.words_per_sentence]
    bar = tqdm(loader, desc="evaluating", disable=not accelerator.is_local_main_process, leave=False)
    for batch in bar:
        feature_index = batch.pop("feature_index")
        batch.pop("labels", None)
        with torch.no_grad():
            logits = model(**batch).logits
        log_probs = accelerator.pad_across_processes(logits.float().log_softmax(-1), dim=1)
        log_probs, feature_index = accelerator.gather_for_metrics((log_probs, feature_index))
        for row, f in zip(log_probs.cpu().numpy(), feature_index.tolist()):
            sentence = scores[split.sentence_of_feature[f]]
            for position, word in split.scored_positions[f]:
                sentence[word] = row[position]
    missing = sum(int(np.isnan(s[:, 0]).sum()) for s in scores)
    if missing:  # a bug, never bad input: every word is owned by exactly one window
        raise RuntimeError(f"{missing} words got no prediction")
    return scores


def decode_argmax(scores: list[np.ndarray], names) -> list[list[str]]:
    return [[names[i] for i in s.argmax(-1)] for s in scores]


def score_tags(gold: list[list[str]], predicted: list[list[str]], scheme: str) -> dict[str, float]:
    """precision/recall/f1 of entity spans (seqeval, default CoNLL-style mode), token accuracy, and
    per type TYPE_precision/_recall/_f1/_number. With plain tags (POS) span scores mean nothing:
    precision = recall = f1 = token accuracy (the micro average of single-label classification)."""
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    accuracy = float(accuracy_score(gold, predicted))
    if scheme == "none":
        return {"precision": accuracy, "recall": accuracy, "f1": accuracy, "accuracy": accuracy}
    metrics = {
        "precision": float(precision_score(gold, predicted, zero_division=0)),
        "recall": float(recall_score(gold, predicted, zero_division=0)),
        "f1": float(f1_score(gold, predicted, zero_division=0)),
        "accuracy": accuracy,
    }
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    for kind in sorted(k for k in report if k not in AVERAGES):
        row = report[kind]
        metrics.update({f"{kind}_precision": float(row["precision"]), f"{kind}_recall": float(row["recall"]),
                        f"{kind}_f1": float(row["f1-score"]), f"{kind}_number": int(row["support"])})
    return metrics


def evaluate_split(model, loader, accelerator, split, gold_tags, labels) -> tuple[dict, list[list[str]]]:
    scores = predict_word_scores(model, loader, accelerator, split, len(labels.names))
    predicted = decode_argmax(scores, labels.names)
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
