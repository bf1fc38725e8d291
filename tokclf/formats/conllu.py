"""CoNLL-U (Universal Dependencies) and CoNLL-U Plus: `#` comment lines, then one tab-separated line per
token (`ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC`), a blank line after each sentence.

The words are the syntactic words: multiword-token range lines (`2-3  del`) and empty nodes (`8.1`) are
no words, the range's surface form is kept for the text. `# newdoc` opens a document (for
--context_sentences), `# sent_id` names the sentence, `# text` is its text (else the surface tokens,
joined as their MISC `SpaceAfter=No` says). A CoNLL-U Plus file names its columns in a first
`# global.columns = ID FORM ... NER` line. The tags: --label_column_name names a column (`upos`, `xpos`,
`deprel`, `ner`, ... case-insensitive) or its 0-based number; by default UPOS for --task_name pos and an
`NER` column for ner.

Predict keeps every input line and fills the column the model was trained on (ud_tags.column_to_fill): the
one training's --label_column_name named (xpos, feats, deprel, ner, a CoNLL-U Plus column; a DocBin
model's pos and tag are UPOS and XPOS; a number or a token rows' column such as pos_tags names none),
else NER for entity tags, UPOS for plain tags that are all UPOS tags (O aside), else XPOS (as
CoNLL-2003's Penn Treebank POS tags NNP, VBZ). A file without the column gets it last, named in a
`# global.columns` header. Text input is written as new sentences with `_` in the columns not predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

from tokclf.errors import DataError, OutputError
from tokclf.formats.base import Format, Reading, Tagged, Writing, line_chunks, own_output_reading
from tokclf.formats.textfile import numbered_lines, text_lines
from tokclf.formats.ud_tags import column_to_fill
from tokclf.records import Input, Record, Sentence

EMPTY = "_"  # a CoNLL-U column without a value

COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
GLOBAL_COLUMNS = "# global.columns ="
TASK_COLUMNS = {"pos": "upos", "ner": "ner"}
PLUS_HEADER = GLOBAL_COLUMNS + " " + " ".join(c.upper() for c in COLUMNS + ("ner",))


@dataclass
class UDSentence:
    """One sentence of a CoNLL-U file as read: its syntactic words' fields and what the text needs."""

    line: int  # the line number of its first line
    doc: int  # its document: one more after each `# newdoc` that follows a sentence
    columns: tuple[str, ...]  # the column names (lower case) of the file
    sent_id: Optional[str] = None
    text: Optional[str] = None  # the `# text` comment
    words: list[list[str]] = field(default_factory=list)  # the fields of each syntactic word
    word_lines: list[int] = field(default_factory=list)  # the line number of each
    # the surface tokens: (form, space after, index of its first word, number of words)
    tokens: list[tuple[str, bool, int, int]] = field(default_factory=list)

    def column(self, name: str) -> list[str]:
        index = self.columns.index(name)
        return [fields[index] for fields in self.words]


def _space_after(misc: str) -> bool:
    return "SpaceAfter=No" not in misc.split("|")


def _comment(sentence: UDSentence, line: str, columns: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Take what a comment line says into the sentence; the columns a `# global.columns` line names."""
    if line.startswith(GLOBAL_COLUMNS):
        named = tuple(name.lower() for name in line[len(GLOBAL_COLUMNS):].split())
        if named[:2] != ("id", "form"):
            raise DataError(f"{where}: `# global.columns` names {' '.join(named).upper() or 'nothing'}; "
                            f"a CoNLL-U Plus file's first columns are ID FORM.")
        return named
    key, _, value = line[1:].partition("=")
    key = key.strip()
    if key == "sent_id":
        sentence.sent_id = value.strip()
    elif key == "text":
        sentence.text = value.strip()
    return columns


def _token(path: Path, sentence: UDSentence, line_no: int, fields: list[str], pending: list) -> None:
    """Take one token line: a word (ID n), a range (n-m: the surface form of the next words) or an empty node."""
    token_id, misc = fields[0], fields[sentence.columns.index("misc")] if "misc" in sentence.columns else "_"
    if "." in token_id:
        return  # an empty node (enhanced dependencies): no word of the text
    if "-" in token_id:
        first, _, last = token_id.partition("-")
        if not (first.isdigit() and last.isdigit() and int(first) <= int(last)):
            raise DataError(f"{path}:{line_no}: the range {token_id!r} is not FIRST-LAST. Fix this line.")
        pending[:] = [fields[1], _space_after(misc), len(sentence.words), int(last) - int(first) + 1]
        sentence.tokens.append(tuple(pending))
    elif not token_id.isdigit():
        raise DataError(f"{path}:{line_no}: the ID {token_id!r} is not a number, a range (2-3) or an empty node "
                        f"(8.1). CoNLL-U lines are `ID FORM LEMMA UPOS ...` separated by tabs.")
    else:
        if not pending or len(sentence.words) >= pending[2] + pending[3]:
            sentence.tokens.append((fields[1], _space_after(misc), len(sentence.words), 1))
        sentence.words.append(fields)
        sentence.word_lines.append(line_no)


def ud_sentences(path: Path, lines: Optional[Iterable[tuple[int, str]]] = None) -> Iterator[UDSentence]:
    """The sentences of a CoNLL-U (Plus) file, streamed; `lines`: its (number, text) lines if already open."""
    columns, doc, seen = COLUMNS, 0, False
    sentence, pending = None, []
    for line_no, line in (numbered_lines(path) if lines is None else lines):
        if not line.strip():
            if sentence is not None and sentence.words:
                yield sentence
                seen = True
            sentence, pending = None, []
            continue
        if sentence is None:
            sentence = UDSentence(line_no, doc, columns)
        if line.startswith("#"):
            if line[1:].strip().startswith("newdoc") and (seen or sentence.words):
                doc += 1
                sentence.doc = doc
            columns = sentence.columns = _comment(sentence, line, columns, f"{path}:{line_no}")
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise DataError(f"{path}:{line_no}: expected {len(columns)} tab-separated columns "
                            f"({' '.join(columns).upper()}), found {len(fields)}: {line[:80]!r}. CoNLL-U "
                            f"separates columns by tabs; a CoNLL-U Plus file names its columns in a first "
                            f"`# global.columns = ...` line.")
        _token(path, sentence, line_no, fields, pending)
    if sentence is not None and sentence.words:
        yield sentence


def label_column(columns: tuple[str, ...], reading: Reading, path: Path) -> str:
    """The name of the column that holds the task's tags (module docstring)."""
    wanted = reading.label_column
    if wanted is not None and wanted.isdigit():
        if not 1 < int(wanted) < len(columns):
            raise DataError(f"{path}: --label_column_name {wanted}: the file's columns are 0-{len(columns) - 1} "
                            f"({' '.join(columns).upper()}); 1 is FORM, the words.")
        return columns[int(wanted)]
    name = (wanted or TASK_COLUMNS.get(reading.task, "")).lower()
    if name not in columns or name in ("id", "form"):
        what = f"--label_column_name {wanted!r}" if wanted else f"--task_name {reading.task} (column {name or '?'})"
        raise DataError(f"{path}: {what}: no such tag column; the file's columns are {' '.join(columns).upper()}. "
                        f"Pass --label_column_name with one of them (e.g. upos, xpos, deprel).")
    return name


def iter_conllu(path: str | Path, reading: Reading) -> Iterator[Sentence]:
    """The labelled sentences, streamed: the syntactic words and the label column's tags."""
    path = Path(path)
    for sentence in ud_sentences(path):
        name = label_column(sentence.columns, reading, path)
        tags = sentence.column(name)
        # Sentence.where counts line + j: true only where no range or empty-node line comes between.
        consecutive = sentence.word_lines[-1] - sentence.word_lines[0] == len(sentence.words) - 1
        yield Sentence(sentence.column("form"), tags, sentence.doc, str(path),
                       sentence.word_lines[0] if consecutive else None,
                       None if consecutive else f"{sentence.word_lines[0]} (sentence {sentence.sent_id or '?'})")


def _offsets_in(text: str, tokens: list[tuple[str, bool, int, int]]) -> Optional[list[tuple[int, int]]]:
    """Each surface token's [start, end) in the `# text`, found in order; None where they are not in it."""
    spans, at = [], 0
    for form, *_ in tokens:
        start = text.find(form, at)
        if start < 0 or text[at:start].strip():
            return None
        spans.append((start, start + len(form)))
        at = start + len(form)
    return spans


def ud_record(sentence: UDSentence) -> Record:
    """Predict's record: the syntactic words, the sentence's text, and each word's offsets in it (the words
    of a multiword token share the token's)."""
    text = sentence.text
    spans = _offsets_in(text, sentence.tokens) if text is not None else None
    if spans is None:  # no `# text`, or one that does not hold the tokens: rebuilt from SpaceAfter
        text, spans = "", []
        for form, space_after, *_ in sentence.tokens:
            spans.append((len(text), len(text) + len(form)))
            text += form + (" " if space_after else "")
        text = text.rstrip(" ")
    offsets = [span for span, (_, _, _, n_words) in zip(spans, sentence.tokens) for _ in range(n_words)]
    return Record(sentence.column("form"), text, offsets, doc=sentence.doc)


def conllu_chunks(path: Path, size: int, whole_documents: bool) -> Iterator[Input]:
    """Predict's records with every line of the file, so that the output keeps them (base.line_chunks)."""
    def sentences(numbered):
        for sentence in ud_sentences(path, ((index + 1, line) for index, line in numbered)):
            yield sentence.line - 1, [line_no - 1 for line_no in sentence.word_lines], ud_record(sentence)
    return line_chunks(text_lines(path, " Check --input.", allow_empty=True), sentences, size, whole_documents)


def _texts(path: Path, reading: Reading, size: int, whole_documents: bool) -> Iterator[Input]:
    return conllu_chunks(Path(path), size, whole_documents)


class _LineWriter:
    """The input's lines with the target column filled (added last, with a header, where there is none)."""

    def __init__(self, target: str):
        self.target, self.columns, self.started = target, COLUMNS, False

    def header(self, line: str) -> Iterator[str]:
        """Before the first line: a header naming the added column, unless that line is a header."""
        self.started = True
        if not line.startswith(GLOBAL_COLUMNS) and self.target not in COLUMNS:
            yield GLOBAL_COLUMNS + " " + " ".join(c.upper() for c in COLUMNS + (self.target,))

    def line(self, line: str, tag: Optional[str]) -> str:
        if line.startswith(GLOBAL_COLUMNS):
            self.columns = tuple(name.lower() for name in line[len(GLOBAL_COLUMNS):].split())
            if self.target not in self.columns:
                return line.rstrip() + " " + self.target.upper()
            return line
        if not line.strip() or line.startswith("#"):
            return line
        fields = line.split("\t")
        if self.target not in self.columns:
            return line + "\t" + (tag or "_")
        if tag is not None:
            fields[self.columns.index(self.target)] = tag
        return "\t".join(fields)


def _sentence_lines(record: Record, tags: list[str], number: int, target: str) -> Iterator[str]:
    """A text record as a new CoNLL-U sentence: ID, FORM, the tag in the target column, SpaceAfter=No."""
    yield f"# sent_id = {number}"
    yield f"# text = {record.text}"
    for i, (word, tag, (_, end)) in enumerate(zip(record.words, tags, record.offsets)):
        glued = i + 1 < len(record.offsets) and record.offsets[i + 1][0] == end
        fields = [str(i + 1), _form(word, record)] + ["_"] * 7 + ["SpaceAfter=No" if glued else "_"]
        if target in COLUMNS:
            fields[COLUMNS.index(target)] = tag
        else:
            fields.append(tag)
        yield "\t".join(fields)
    yield ""


def one_field(text: str) -> bool:
    """Text that is one tab-separated field and reads back as itself: no tab or line break, not empty, no
    whitespace around it."""
    return bool(text) and text == text.strip() and not any(c in text for c in "\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def holds_label(label: str) -> bool:
    return one_field(label) and label != EMPTY  # `_` is a column's empty value


def _form(word: str, record: Record) -> str:
    """A word of other input (token rows, text) as FORM: spaces inside are allowed there (UD v2); one that
    would split the line or change when read is refused (the output is discarded), never altered."""
    if not one_field(word):
        raise OutputError(f"the word {word!r} of the record {record.text[:60]!r} cannot be a CoNLL-U FORM (a tab, "
                        f"a line break or whitespace around it). Write --output_format jsonl, which holds it.")
    return word


def write_conllu(chunks: Iterable[Tagged], writing: Writing) -> Iterator[str]:
    """CoNLL-U input: every line, the predicted column (column_to_fill of the model's training column and
    labels) filled. Text input: a sentence per record."""
    target = column_to_fill(writing.label_column, writing.labels, writing.iob)
    writer, number = _LineWriter(target), 0
    for inp, tags, _ in chunks:
        if inp.lines is not None:
            for line, at in zip(inp.lines, inp.line_words):
                if not writer.started:
                    yield from writer.header(line)
                yield writer.line(line, None if at is None else tags[at[0]][at[1]])
            continue
        for record, record_tags in zip(inp.records, tags):
            if not writer.started:
                yield from writer.header("")
            number += 1
            yield from _sentence_lines(record, record_tags, number, target)


def _sniff(path: Path, reading: Reading) -> bool:
    """A file of another suffix is CoNLL-U when its first lines are CoNLL-U comments or a token line of
    ten tab-separated columns with ID 1."""
    for _, line in zip(range(20), (text for _, text in numbered_lines(path, allow_empty=True))):
        if line.startswith(("# sent_id", "# text", "# newdoc", GLOBAL_COLUMNS)):
            return True
        fields = line.split("\t")
        if line.strip() and not line.startswith("#"):
            return len(fields) == len(COLUMNS) and fields[0] in ("1", "1-2")
    return False


FORMAT = Format(
    names=("conllu",),
    summary="CoNLL-U (Universal Dependencies) and CoNLL-U Plus: tab-separated token lines, `#` comments; "
            "tags from a named column (UPOS for pos, NER for ner); predict fills the column the model was "
            "trained on",
    suffixes=(".conllu",),
    catch_all=True,
    sniff=_sniff,
    sentences=iter_conllu,
    texts=_texts,
    write=write_conllu,
    output_suffixes=(".conllu",),
    holds_label=holds_label,
    label_rule="labels without a tab or line break, other than `_` (CoNLL-U's tab-separated columns, `_` for none)",
    output_reading=lambda writing: own_output_reading(
        writing, label_column=column_to_fill(writing.label_column, writing.labels, writing.iob)),
    sample=PLUS_HEADER + "\n# sent_id = 1\n# text = EU rejects German call\n"
           "1\tEU\tEU\tPROPN\tNNP\t_\t2\tnsubj\t_\t_\tB-ORG\n"
           "2\trejects\treject\tVERB\tVBZ\t_\t0\troot\t_\t_\tO\n"
           "3\tGerman\tGerman\tADJ\tJJ\t_\t4\tamod\t_\t_\tB-MISC\n"
           "4\tcall\tcall\tNOUN\tNN\t_\t2\tobj\t_\tSpaceAfter=No\tO\n\n",
)
