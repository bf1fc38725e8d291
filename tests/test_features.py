"""Sub-token alignment and windows: every word gets exactly one scored position."""

import pytest

from tokclf.data.features import IGNORE, encode, owning_window, window_starts
from tokclf.data.labels import LabelSet


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_model)


LABELS = LabelSet.from_tags([["B-PER", "I-PER", "O"]], "iob")


def scored_words(encoded):
    return sorted((encoded.sentence_of_feature[f], w) for f, pos in enumerate(encoded.scored_positions) for _, w in pos)


def test_first_subtoken_labelled_only(tokenizer):
    words, tags = ["Extraordinarily", "John", "smith"], ["O", "B-PER", "I-PER"]
    enc = encode(tokenizer, [words], [tags], LABELS.label2id, 64, 16)
    feature = enc.features[0]
    labelled = [(i, l) for i, l in enumerate(feature["labels"]) if l != IGNORE]
    assert [LABELS.names[l] for _, l in labelled] == tags
    assert [p for p, _ in enc.scored_positions[0]] == [i for i, _ in labelled]
    assert len(feature["input_ids"]) > len(words) + 2  # the long word split into pieces


def test_label_all_tokens_maps_b_to_i_on_continuations(tokenizer):
    words, tags = ["zyxwvut", "Extraordinarily"], ["B-PER", "I-PER"]
    enc = encode(tokenizer, [words], [tags], LABELS.label2id, 64, 16, label_all_tokens=True,
                 continuation_ids=LABELS.continuation_ids())
    names = [LABELS.names[l] for l in enc.features[0]["labels"] if l != IGNORE]
    assert names[0] == "B-PER" and set(names[1:]) == {"I-PER"}
    assert len(names) == len(enc.features[0]["input_ids"]) - 2


def test_long_sentence_windows_cover_every_word_once(tokenizer):
    words = [("john" if i % 3 else "extraordinarily") for i in range(1000)]
    enc = encode(tokenizer, [words], [["O"] * 1000], LABELS.label2id, 64, 16)
    assert len(enc.features) > 1
    assert all(len(f["input_ids"]) <= 64 for f in enc.features)
    assert scored_words(enc) == [(0, i) for i in range(1000)]


def test_words_the_tokenizer_drops_still_get_a_position(tokenizer):
    enc = encode(tokenizer, [["john", "\u200b", "smith"]], [["B-PER", "O", "B-PER"]], LABELS.label2id, 64, 16)
    assert scored_words(enc) == [(0, 0), (0, 1), (0, 2)]


@pytest.mark.parametrize("n, budget, stride", [(10, 10, 3), (11, 10, 3), (100, 10, 0), (257, 62, 16)])
def test_window_starts_cover_and_overlap(n, budget, stride):
    starts = window_starts(n, budget, stride)
    assert starts[0] == 0 and starts[-1] + budget >= n
    for a, b in zip(starts, starts[1:]):
        assert 0 < b - a <= budget - stride
    for p in range(n):
        w = owning_window(p, starts, budget)
        assert starts[w] <= p < starts[w] + budget


def test_document_context_surrounds_the_sentence_without_labels(tokenizer):
    words = [["john", "smith"], ["went", "to", "paris"], ["the", "end"], ["acme"]]
    tags = [["B-PER", "I-PER"], ["O", "O", "O"], ["O", "O"], ["O"]]
    docs = [0, 0, 0, 1]
    plain = encode(tokenizer, words, tags, LABELS.label2id, 64, 16)
    ctx = encode(tokenizer, words, tags, LABELS.label2id, 64, 16, doc_ids=docs, context_sentences=1)
    middle_plain, middle = plain.features[1], ctx.features[1]
    # Sentence 1 gets sentence 0 on its left and sentence 2 on its right; sentence 3 is alone in its document.
    neighbours = len(plain.features[0]["input_ids"]) - 2 + len(plain.features[2]["input_ids"]) - 2
    assert len(middle["input_ids"]) == len(middle_plain["input_ids"]) + neighbours
    assert [l for l in middle["labels"] if l != IGNORE] == [l for l in middle_plain["labels"] if l != IGNORE]
    assert ctx.features[3]["input_ids"] == plain.features[3]["input_ids"]
    assert scored_words(ctx) == scored_words(plain)
    ids = [middle["input_ids"][p] for p, _ in ctx.scored_positions[1]]
    assert ids == [middle_plain["input_ids"][p] for p, _ in plain.scored_positions[1]]


def test_context_respects_max_length(tokenizer):
    words = [["john"] * 30 for _ in range(5)]
    enc = encode(tokenizer, words, None, LABELS.label2id, 40, 8, doc_ids=[0] * 5, context_sentences=2)
    assert all(len(f["input_ids"]) <= 40 for f in enc.features)
    assert len(enc.features[2]["input_ids"]) == 40  # room filled from both sides
