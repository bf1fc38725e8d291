"""What Universal Dependencies' tags are, for the formats that hold them (CoNLL-U, spaCy DocBin): the
17 universal POS tags, and the CoNLL-U column a model's tags belong in. Pure: no torch, no transformers."""

from __future__ import annotations

from typing import Iterable, Optional

# The universal part-of-speech tags of Universal Dependencies (v2): the tags of UPOS, and of spaCy's pos_.
UPOS = frozenset({"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
                  "PUNCT", "SCONJ", "SYM", "VERB", "X"})

DOCBIN_COLUMNS = {"pos": "upos", "tag": "xpos"}  # a DocBin model's --label_column_name: spaCy's pos_, tag_


def column_to_fill(label_column: Optional[str], labels: Iterable[str], iob: bool) -> str:
    """The column predict fills with a model's tags (module docstring), from training's --label_column_name
    (a name; a number counts the columns of the training file, which need not be CoNLL-U) and the labels."""
    name = (label_column or "").lower()
    if name in DOCBIN_COLUMNS:
        return DOCBIN_COLUMNS[name]
    # A token rows' column (`pos_tags`, `tags`, `labels`) is no CoNLL-U column: the rule below decides.
    if name and not name.isdigit() and name not in ("id", "form") and not name.endswith("tags") and name != "labels":
        return name
    if iob:
        return "ner"
    # Plain tags that are all UPOS tags are UPOS; any other tag (NNP, VBZ, $) makes them treebank tags.
    return "upos" if all(tag in UPOS for tag in labels if tag != "O") else "xpos"
