"""Viterbi decoding: always valid IOB2, never worse than any valid sequence, argmax when argmax is valid.

Validity is checked with string rules written here, independently of `allowed_transitions`.
Example counts per property test are set with `settings(max_examples=...)` below.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from tokclf.inference.decoding import allowed_starts, allowed_transitions, decode, viterbi

TYPES = ["PER", "LOC", "ORG", "MISC"]


def may_follow(previous, tag) -> bool:
    """IOB2 as strings: I-X only after B-X or I-X; previous None means the sentence start."""
    if not tag.startswith("I-"):
        return True
    return previous is not None and previous[2:] == tag[2:] and previous[:2] in ("B-", "I-")


def is_valid(tags) -> bool:
    return all(may_follow(tags[i - 1] if i else None, tag) for i, tag in enumerate(tags))


def total(log_probs, ids) -> float:
    return float(log_probs[np.arange(len(ids)), ids].sum())


def log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@st.composite
def iob_names(draw):
    """O plus B-/I- of 1-4 types, in a random order (label ids need not put O first)."""
    kinds = TYPES[: draw(st.integers(1, len(TYPES)))]
    return tuple(draw(st.permutations(["O"] + [f"{p}-{k}" for k in kinds for p in "BI"])))


@st.composite
def scored(draw, min_words, max_words):
    """(names, log-probs [words, labels]) from random logits."""
    names = draw(iob_names())
    n_words = draw(st.integers(min_words, max_words))
    logits = draw(arrays(np.float64, (n_words, len(names)), elements=st.floats(-30, 30)))
    return names, log_softmax(logits)


def brute_force_best(log_probs, names) -> float:
    """The best total over all valid sequences, by enumerating every sequence."""
    n_words, n_labels = log_probs.shape
    follows = np.array([[may_follow(a, b) for b in names] for a in names])
    starts = np.array([may_follow(None, b) for b in names])
    seqs = np.indices((n_labels,) * n_words).reshape(n_words, -1).T
    valid = starts[seqs[:, 0]] & follows[seqs[:, :-1], seqs[:, 1:]].all(1)
    totals = log_probs[np.arange(n_words), seqs].sum(1)
    return float(totals[valid].max())


@settings(max_examples=300, deadline=None)
@given(iob_names())
def test_allowed_matrices_match_the_string_rules(names):
    allowed, starts = allowed_transitions(names), allowed_starts(names)
    assert allowed.tolist() == [[may_follow(a, b) for b in names] for a in names]
    assert starts.tolist() == [may_follow(None, b) for b in names]


@settings(max_examples=500, deadline=None)
@given(scored(0, 40))
def test_viterbi_output_is_valid_iob2(case):
    names, log_probs = case
    (tags,) = decode([log_probs], names, "viterbi")
    assert len(tags) == len(log_probs)
    assert is_valid(tags)
    assert not tags or not tags[0].startswith("I-")


@settings(max_examples=300, deadline=None)
@given(scored(1, 5))
def test_viterbi_is_at_least_as_good_as_every_valid_sequence(case):
    """Up to 9 labels and 5 words: at most 9**5 sequences to enumerate."""
    names, log_probs = case
    ids = viterbi(log_probs, allowed_transitions(names), allowed_starts(names))
    assert is_valid([names[i] for i in ids])
    assert total(log_probs, ids) >= brute_force_best(log_probs, names) - 1e-9


@st.composite
def nearly_valid(draw):
    """Logits that favour a random valid sequence by a random margin, so argmax is often valid."""
    names = draw(iob_names())
    n_words = draw(st.integers(1, 12))
    chosen = []
    for _ in range(n_words):
        options = [i for i, b in enumerate(names) if may_follow(names[chosen[-1]] if chosen else None, b)]
        chosen.append(draw(st.sampled_from(options)))
    logits = draw(arrays(np.float64, (n_words, len(names)), elements=st.floats(-5, 5)))
    logits[np.arange(n_words), chosen] += draw(st.floats(0, 20))
    return names, log_softmax(logits)


@settings(max_examples=300, deadline=None)
@given(nearly_valid())
def test_viterbi_equals_argmax_when_argmax_is_valid(case):
    names, log_probs = case
    best = log_probs.argmax(-1)
    assume(is_valid([names[i] for i in best]))
    ids = viterbi(log_probs, allowed_transitions(names), allowed_starts(names))
    assert total(log_probs, ids) == pytest.approx(total(log_probs, best), abs=1e-9)
    top2 = np.sort(log_probs, -1)[:, -2:]
    if (top2[:, 1] - top2[:, 0] > 1e-6).all():  # no near-ties: the best sequence is unique
        assert ids == best.tolist()


@st.composite
def plain(draw):
    """POS-like names (one IOB-looking name among them does not make the set IOB) and log-probs."""
    names = [f"TAG{i}" for i in range(draw(st.integers(1, 12)))] + ["B-NP"]
    logits = draw(arrays(np.float64, (draw(st.integers(0, 10)), len(names)), elements=st.floats(-30, 30)))
    return names, log_softmax(logits)


@settings(max_examples=100, deadline=None)
@given(plain())
def test_plain_tags_are_unconstrained(case):
    names, log_probs = case
    assert allowed_transitions(names).all() and allowed_starts(names).all()
    assert decode([log_probs], names, "viterbi") == decode([log_probs], names, "argmax")


def test_viterbi_repairs_an_invalid_argmax():
    names = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
    probs = np.array([[0.1, 0.3, 0.6, 0.0, 0.0],   # argmax I-PER at the start
                      [0.1, 0.0, 0.0, 0.4, 0.5]])  # argmax I-LOC after PER
    log_probs = np.log(np.maximum(probs, 1e-12))
    assert decode([log_probs], names, "argmax") == [["I-PER", "I-LOC"]]
    assert decode([log_probs], names, "viterbi") == [["B-PER", "B-LOC"]]


def test_empty_and_single_word_sentences():
    names = ("O", "B-PER", "I-PER")
    allowed, starts = allowed_transitions(names), allowed_starts(names)
    assert viterbi(np.zeros((0, 3)), allowed, starts) == []
    assert viterbi(np.log([[0.2, 0.3, 0.5]]), allowed, starts) == [1]
    assert viterbi(np.array([[-np.inf, -np.inf, 0.0]]), allowed, starts) == [0]  # underflow still decodes


def test_no_valid_sequence_and_unknown_method_raise():
    with pytest.raises(ValueError, match="no label sequence"):
        viterbi(np.zeros((2, 1)), allowed_transitions(["I-X"]), allowed_starts(["I-X"]))
    with pytest.raises(ValueError, match="argmax"):
        decode([np.zeros((1, 1))], ["O"], "beam")
