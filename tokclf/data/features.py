"""Sentences → model inputs: sub-token ids, aligned labels, and windows for long sentences.

A sentence whose sub-tokens do not fit in `max_length` is split into overlapping windows of sub-tokens
(`stride` shared between neighbours); it is never truncated. Each word is *owned* by exactly one
window, the one where its first sub-token sits furthest from an edge, and only there does it get a
label and a prediction, so merging windows back gives every word exactly one prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tokclf.errors import ModelError

IGNORE = -100  # the label id that the loss and the collator skip


@dataclass
class EncodedSplit:
    """Model inputs of one split plus what is needed to turn predictions back into words."""

    features: list[dict]  # input_ids, labels, feature_index: what the collator batches
    scored_positions: list[list[tuple[int, int]]]  # per feature: (token position, word index)
    sentence_of_feature: list[int]
    words_per_sentence: list[int]
    lengths: list[int] = field(default_factory=list)  # sub-tokens per feature, for batching


def special_token_template(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single sequence ([CLS] … [SEP] for BERT)."""
    enc = tokenizer(["a"], is_split_into_words=True, add_special_tokens=True)
    word_ids = enc.word_ids()
    first = word_ids.index(0)
    last = len(word_ids) - 1 - word_ids[::-1].index(0)
    return enc["input_ids"][:first], enc["input_ids"][last + 1 :]


def require_fast(tokenizer, name: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            f"{name}: tokenizer {type(tokenizer).__name__} is not a fast (Rust) tokenizer, which is needed "
            f"to map sub-tokens to words. Use a model that ships a tokenizer.json, or --tokenizer_name "
            f"of one that does."
        )


# Common English words that any vocabulary meant for ordinary text covers, at least by pieces.
VOCABULARY_SAMPLE = ("the", "of", "and", "to", "in", "was", "said", "for", "on", "with", "he", "year",
                     "people", "government", "New", "York", "John", "Monday", "percent", "world")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


def require_usable_vocabulary(tokenizer, name: str) -> None:
    """Refuse a tokenizer that turns more than half of VOCABULARY_SAMPLE into its unknown token.

    A model folder without tokenizer files still loads: transformers then builds a WordPiece vocabulary
    of the 5 special tokens only, every word becomes [UNK], and training and prediction run on noise.
    Any real vocabulary, even the tests' 170-entry one of letters and pieces, maps these words to
    known pieces; byte-level BPE has no unknown token and always passes.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return
    pieces = tokenizer(list(VOCABULARY_SAMPLE), add_special_tokens=False)["input_ids"]
    unknown = sum(unk in ids or not ids for ids in pieces)
    if unknown * 2 <= len(VOCABULARY_SAMPLE):
        return
    folder = Path(name)
    missing = [f for f in TOKENIZER_FILES if not (folder / f).is_file()] if folder.is_dir() else []
    where = f"the folder has no {', '.join(missing)}" if missing else "its tokenizer files are broken"
    raise ModelError(
        f"{name}: the tokenizer cannot cover ordinary text: {unknown} of {len(VOCABULARY_SAMPLE)} common "
        f"English words become {tokenizer.unk_token} (a vocabulary of {len(tokenizer)} entries), because "
        f"{where}. Save the tokenizer of the base model into it (tokenizer.save_pretrained)."
    )


def window_starts(n_tokens: int, budget: int, stride: int) -> list[int]:
    """Start offsets of windows of `budget` sub-tokens covering n_tokens, neighbours sharing `stride`."""
    if n_tokens <= budget:
        return [0]
    step = budget - stride
    starts = list(range(0, n_tokens - budget, step))
    return starts + [n_tokens - budget]


def owning_window(position: int, starts: list[int], budget: int) -> int:
    """Index of the window in which `position` is furthest from both edges (earliest on ties)."""
    best, best_margin = 0, -1
    for w, start in enumerate(starts):
        if start <= position < start + budget:
            margin = min(position - start, start + budget - 1 - position)
            if margin > best_margin:
                best, best_margin = w, margin
    return best


def _subtokens(tokenizer, word_lists: list[list[str]]) -> tuple[list[list[int]], list[list[int]]]:
    """Sub-token ids and their word indices, per sentence, without special tokens.

    A word that the tokenizer turns into nothing (a zero-width space, a control character) is
    replaced by the unknown token so that it still gets a prediction.
    """
    enc = tokenizer(word_lists, is_split_into_words=True, add_special_tokens=False, verbose=False)
    ids, word_ids = [], []
    for i, words in enumerate(word_lists):
        wids = enc.word_ids(i)
        if len(set(w for w in wids if w is not None)) != len(words):
            covered = set(wids)
            fixed = [w if j in covered else (tokenizer.unk_token or "?") for j, w in enumerate(words)]
            one = tokenizer([fixed], is_split_into_words=True, add_special_tokens=False, verbose=False)
            ids.append(one["input_ids"][0])
            word_ids.append(one.word_ids(0))
        else:
            ids.append(enc["input_ids"][i])
            word_ids.append(wids)
    return ids, word_ids


def context_tokens(sub_ids, doc_ids, s: int, k: int, room: int) -> tuple[list[int], list[int]]:
    """Sub-tokens of up to k neighbouring sentences of the same document on each side of sentence s,
    at most `room` in all: the nearest tokens, half the room a side (a side that needs less gives the
    rest to the other)."""
    def side(step):
        tokens, i = [], s + step
        while 0 <= i < len(sub_ids) and abs(i - s) <= k and doc_ids[i] is not None and doc_ids[i] == doc_ids[s]:
            tokens = tokens + sub_ids[i] if step > 0 else sub_ids[i] + tokens
            i += step
        return tokens

    left, right = side(-1), side(+1)
    take_left = min(len(left), max(room // 2, room - len(right)))
    take_right = min(len(right), room - take_left)
    return left[len(left) - take_left:], right[:take_right]


def encode(tokenizer, word_lists, label_lists, label2id, max_length, stride, label_all_tokens=False,
           continuation_ids=None, doc_ids=None, context_sentences=0) -> EncodedSplit:
    """Encode sentences (and their tags, when given) into windows of at most max_length sub-tokens.

    With context_sentences K > 0 and document ids, a sentence that fits in one window is surrounded by
    up to K sentences of its document on each side, as room allows; they carry no labels."""
    prefix, suffix = special_token_template(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 2:
        raise ModelError(f"--max_length {max_length} leaves no room for words after the special tokens.")
    stride = min(stride, budget // 2)  # windows must advance
    sub_ids, sub_word_ids = _subtokens(tokenizer, word_lists)
    out = EncodedSplit([], [], [], [len(w) for w in word_lists])
    for s, (ids, wids) in enumerate(zip(sub_ids, sub_word_ids)):
        label_ids = [label2id[t] for t in label_lists[s]] if label_lists is not None else None
        firsts = [p for p, w in enumerate(wids) if p == 0 or wids[p - 1] != w]
        starts = window_starts(len(ids), budget, stride)
        owner = {wids[p]: owning_window(p, starts, budget) for p in firsts}
        left, right = [], []
        if context_sentences and doc_ids is not None and len(starts) == 1:
            left, right = context_tokens(sub_ids, doc_ids, s, context_sentences, budget - len(ids))
        for w_index, start in enumerate(starts):
            end = min(start + budget, len(ids))
            labels, scored = [IGNORE] * (len(prefix) + len(left)), []
            for p in range(start, end):
                word = wids[p]
                is_first = p == 0 or wids[p - 1] != word
                owned = owner[word] == w_index
                if owned and is_first:
                    scored.append((len(labels), word))
                label = IGNORE
                if label_ids is not None and owned and (is_first or label_all_tokens):
                    label = label_ids[word] if is_first else continuation_ids[label_ids[word]]
                labels.append(label)
            labels += [IGNORE] * (len(right) + len(suffix))
            input_ids = prefix + left + ids[start:end] + right + suffix
            out.features.append({"input_ids": input_ids, "labels": labels, "feature_index": len(out.features)})
            out.scored_positions.append(scored)
            out.sentence_of_feature.append(s)
            out.lengths.append(len(input_ids))
    return out
