"""Scoring: tokclf's two-call use of seqeval must equal seqeval's own convenience functions."""

import warnings

from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

from tokclf.inference.scoring import score_tags

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "I-ORG"]


@st.composite
def gold_and_predicted(draw):
    lengths = draw(st.lists(st.integers(1, 8), min_size=1, max_size=6))
    gold = [draw(st.lists(st.sampled_from(TAGS), min_size=n, max_size=n)) for n in lengths]
    predicted = [draw(st.lists(st.sampled_from(TAGS), min_size=n, max_size=n)) for n in lengths]
    return gold, predicted


@settings(max_examples=300, deadline=None)
@given(gold_and_predicted())
def test_scores_equal_seqeval_classification_report(pair):
    gold, predicted = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = score_tags(gold, predicted, "iob2")
        report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    assert metrics["precision"] == precision_score(gold, predicted, zero_division=0)
    assert metrics["recall"] == recall_score(gold, predicted, zero_division=0)
    assert metrics["f1"] == f1_score(gold, predicted, zero_division=0)
    assert metrics["accuracy"] == accuracy_score(gold, predicted)
    kinds = sorted(k for k in report if not k.endswith(" avg"))
    assert kinds == sorted(k[: -len("_number")] for k in metrics if k.endswith("_number"))
    for kind in kinds:
        assert metrics[f"{kind}_precision"] == report[kind]["precision"]
        assert metrics[f"{kind}_recall"] == report[kind]["recall"]
        assert metrics[f"{kind}_f1"] == report[kind]["f1-score"]
        assert metrics[f"{kind}_number"] == report[kind]["support"]


def test_plain_tags_score_token_accuracy():
    gold, predicted = [["NN", "VB", "DT"]], [["NN", "VB", "NN"]]
    assert score_tags(gold, predicted, "none") == {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "accuracy": 2 / 3}


def test_the_entity_confusion_table_counts_types_misses_and_spurious_spans():
    from tokclf.inference.scoring import entity_confusion, format_confusion

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-LOC"]]
    table = entity_confusion(gold, predicted)
    # PER found; LOC predicted as ORG on the same words; ORG missed; a LOC predicted where there was none
    assert table == {"PER": {"PER": 1}, "LOC": {"ORG": 1}, "ORG": {"O": 1}, "O": {"LOC": 1}}
    lines = format_confusion(table).splitlines()
    assert lines[1].split() == ["LOC", "ORG", "PER", "O"]
    assert lines[2].split() == ["LOC", "0", "1", "0", "0"] and lines[5].split() == ["O", "1", "0", "0", "-"]
