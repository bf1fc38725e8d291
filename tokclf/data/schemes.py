"""Tag schemes: parsing, detection and conversion to IOB2. Pure functions, no torch.

Entity tags are O or PREFIX-TYPE; the schemes differ in their prefixes and where those stand:
  IOB1   I- on the words of a span; B- only starts a span that directly follows one of its type
         (the original CoNLL-2003 files)
  IOB2   B- on the first word of every span, I- on the others (what models and seqeval expect)
  IOE1   I- on the words of a span; E- only ends a span that is directly followed by one of its type
  IOE2   E- on the last word of every span, I- on the others
  IOBES  B- first, I- inside, E- last, S- a one-word span (also called BIOES; OntoNotes conversions, flair)
  BILOU  IOBES with L- for E- and U- for S- (spaCy)
Input in any of them is converted to IOB2 for training and scoring, so the model's labels are IOB2.
"""

from __future__ import annotations

from typing import Callable, Sequence

from tokclf.errors import DataError

SCHEMES = ("iob1", "iob2", "ioe1", "ioe2", "iobes", "bilou")
ALIASES = {"bioes": "iobes"}
PREFIXES = {"iob1": "BI", "iob2": "BI", "ioe1": "IE", "ioe2": "IE", "iobes": "BIES", "bilou": "BILU"}
# What to do about a bad tag depends on the command: training can be told the task or the scheme,
# evaluation takes the model's labels, so there only the file can change.
TRAIN_HINT = (f"Fix the tag, or for plain tags such as POS give --task_name pos "
              f"(--tag_scheme takes auto, {', '.join(SCHEMES)}).")
EVALUATE_HINT = ("Fix the tag in the file: evaluate converts its tags to IOB2 and scores them against the "
                 "model's labels.")
UNSEEN_TRAIN_FIX = ("Add examples of it to the training data, fix the tag, or pass --unseen_eval_tags O to "
                    "score it as O.")
UNSEEN_EVALUATE_FIX = "Fix the tag, or evaluate a model trained on data that has it."


def parse_tag(tag: str) -> tuple[str, str]:
    """('S', 'PER') for 'S-PER', ('O', '') for 'O', for the prefixes of every scheme (upper case only).
    Raises ValueError for anything else ('b-per', 'X-LOC', 'I-')."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if sep != "-" or len(prefix) != 1 or prefix not in "BIESLU" or not kind:
        raise ValueError(tag)
    return prefix, kind


def split_tag(tag: str) -> tuple[str, str]:
    """('B', 'PER') for 'B-PER', ('O', '') for 'O'. Raises ValueError outside IOB."""
    prefix, kind = parse_tag(tag)
    if prefix not in "OBI":
        raise ValueError(tag)
    return prefix, kind


def is_iob(names: Sequence[str]) -> bool:
    """True when every label is O, B-X or I-X, so IOB2 constraints and entity spans apply.

    The one place that decides it: LabelSet.scheme, decoding and predict all ask here."""
    try:
        for name in names:
            split_tag(name)
    except ValueError:
        return False
    return True


def label_scheme(names: Sequence[str]) -> str:
    """"iob" for IOB labels (entity spans are scored), "none" for plain tags such as POS."""
    return "iob" if is_iob(names) else "none"


# ----------------------------------------------------------------------------------------------------
# Converters to IOB2 (lenient like seqeval: an I- that continues nothing starts a span)


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    out, previous = [], "O"
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "I" and (previous == "O" or split_tag(previous)[1] != kind):
            tag = "B-" + kind
        out.append(tag)
        previous = tag
    return out


def ioe_to_iob2(tags: Sequence[str]) -> list[str]:
    """IOE1 or IOE2 → IOB2: a span starts after O, after an E- (which ends one), or at a type change."""
    out, previous = [], ("O", "")
    for tag in tags:
        prefix, kind = parse_tag(tag)
        if prefix == "O":
            out.append("O")
        else:
            starts = previous[0] in ("O", "E") or previous[1] != kind
            out.append(("B-" if starts else "I-") + kind)
        previous = (prefix, kind)
    return out


def _relabelled(tags: Sequence[str], prefixes: dict[str, str]) -> list[str]:
    """IOBES/BILOU → IOB2: first and one-word prefixes become B-, inside and last ones I-."""
    out = []
    for tag in tags:
        prefix, kind = parse_tag(tag)
        out.append(tag if prefix == "O" else f"{prefixes[prefix]}-{kind}")
    return iob1_to_iob2(out)  # an I- or E- that follows no B- still starts a span, as seqeval reads it


def iobes_to_iob2(tags: Sequence[str]) -> list[str]:
    return _relabelled(tags, {"B": "B", "S": "B", "I": "I", "E": "I"})


def bilou_to_iob2(tags: Sequence[str]) -> list[str]:
    return _relabelled(tags, {"B": "B", "U": "B", "I": "I", "L": "I"})


TO_IOB2: dict[str, Callable[[Sequence[str]], list[str]]] = {
    "iob1": iob1_to_iob2, "iob2": list, "ioe1": ioe_to_iob2, "ioe2": ioe_to_iob2,
    "iobes": iobes_to_iob2, "bilou": bilou_to_iob2,
}


# ----------------------------------------------------------------------------------------------------
# Detection and checks


def where_of(where: str, sentences, i: int, j: int) -> str:
    """`path:LINE` of word j of sentence i when the reader recorded it (tokclf.records.Sentence.where),
    else `where, sentence i, word j`."""
    located = sentences[i].where(j) if sentences is not None and i < len(sentences) else None
    return located or f"{where}, sentence {i}, word {j}"


def _first_occurrences(tag_sequences, where: str, sentences, hint: str) -> dict[str, tuple[int, int]]:
    """prefix → (sentence, word) of its first use; a tag of no scheme is an error naming where it is."""
    first: dict[str, tuple[int, int]] = {}
    for i, tags in enumerate(tag_sequences):
        for j, tag in enumerate(tags):
            try:
                prefix, _ = parse_tag(tag)
            except ValueError:
                raise DataError(
                    f"{where_of(where, sentences, i, j)}: tag {tag!r} is not IOB, IOE, IOBES or BILOU "
                    f"(expected O, or an upper-case B-, I-, E-, S-, L- or U- and a type, such as B-PER). {hint}"
                ) from None
            first.setdefault(prefix, (i, j))
    return first


def ends_with_i(tag_sequences) -> bool:
    """True when some span ends with I- (IOE1 does so unless a span of its type follows; IOE2 never)."""
    for tags in tag_sequences:
        for tag, following in zip(tags, [*tags[1:], "O"]):
            prefix, kind = parse_tag(tag)
            if prefix == "I" and (following == "O" or parse_tag(following)[1] != kind):
                return True
    return False


def detect_scheme(tag_sequences, where: str, sentences=None, hint: str = TRAIN_HINT) -> str:
    """The scheme of entity tags, from the prefixes used: L-/U- BILOU; S-, or E- with B-, IOBES;
    E- without B- IOE1/IOE2; else IOB1/IOB2 (IOB1 and IOE1 when a span starts or ends with I-)."""
    first = _first_occurrences(tag_sequences, where, sentences, hint)
    iobes = [first[p] for p in "ES" if p in first]
    bilou = [first[p] for p in "LU" if p in first]
    if iobes and bilou:
        (i, j), (k, m) = sorted([min(iobes), min(bilou)])
        raise DataError(
            f"{where_of(where, sentences, k, m)}: tag {tag_sequences[k][m]!r} mixes tag schemes with "
            f"{tag_sequences[i][j]!r} at {where_of(where, sentences, i, j)}: E- and S- are IOBES, L- and U- "
            f"BILOU. Convert the file to one scheme."
        )
    if bilou:
        return "bilou"
    if "S" in first or ("E" in first and "B" in first):
        return "iobes"
    if "E" in first:
        return "ioe1" if ends_with_i(tag_sequences) else "ioe2"
    return "iob1" if is_iob1(tag_sequences) else "iob2"


def check_tags(tag_sequences, scheme: str, where: str, sentences=None, hint: str = TRAIN_HINT) -> None:
    """Every tag is O or a prefix of `scheme` and a type; else an error naming where the first bad one is."""
    allowed = PREFIXES[scheme]
    for i, tags in enumerate(tag_sequences):
        for j, tag in enumerate(tags):
            try:
                prefix, _ = parse_tag(tag)
            except ValueError:
                prefix = None
            if prefix != "O" and (prefix is None or prefix not in allowed):
                raise DataError(
                    f"{where_of(where, sentences, i, j)}: tag {tag!r} is not {scheme.upper()} (expected O, or "
                    f"{', '.join(p + '-' for p in allowed)} and a type, such as {allowed[0]}-PER). {hint}"
                )


def check_iob(tag_sequences: Sequence[Sequence[str]], where: str) -> None:
    check_tags(tag_sequences, "iob2", where)


def is_iob1(tag_sequences: Sequence[Sequence[str]]) -> bool:
    """True when some span starts with I- (impossible in IOB2, the norm in IOB1)."""
    for tags in tag_sequences:
        previous = "O"
        for tag in tags:
            prefix, kind = split_tag(tag)
            if prefix == "I" and (previous == "O" or split_tag(previous)[1] != kind):
                return True
            previous = tag
    return False


def resolve_scheme(requested: str, task: str, train_tags: Sequence[Sequence[str]], *, where: str = "training data",
                   sentences=None, hint: str = TRAIN_HINT) -> str:
    """The scheme of the input tags: one of SCHEMES, or none (plain tags, e.g. POS)."""
    if requested != "auto":
        return ALIASES.get(requested, requested)
    if task == "pos":
        if all(t == "O" or t[:2] in ("B-", "I-") for tags in train_tags for t in tags):
            raise DataError(
                "--task_name pos, but the tags are IOB entity or chunk tags (O, B-X, I-X): the data has no "
                "POS column. Use a file with a POS column, --label_column_name, or --task_name ner/chunk."
            )
        return "none"
    return detect_scheme(train_tags, where, sentences, hint)


def normalise_tags(tag_sequences, scheme: str, where: str, *, sentences=None, hint: str = TRAIN_HINT,
                   say=print) -> list[list[str]]:
    """Tags in the form the model learns: IOB2 for entity tags (a conversion from IOE, IOBES or BILOU is
    said on one line), unchanged for plain tags."""
    scheme = ALIASES.get(scheme, scheme)
    if scheme == "none":
        return [list(t) for t in tag_sequences]
    check_tags(tag_sequences, scheme, where, sentences, hint)
    # IOB1 → IOB2 is what every CoNLL-2003 run does and has always been silent; the other schemes are
    # said, so that a wrong detection is seen before training.
    if scheme not in ("iob1", "iob2"):
        say(f"{where}: tags are {scheme.upper()}; converted to IOB2")
    return [TO_IOB2[scheme](t) for t in tag_sequences]
