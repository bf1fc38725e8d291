"""BRAT standoff (the brat annotation tool's files: BioNLP shared tasks, n2c2 and many biomedical and legal
corpora): per document a text `NAME.txt` and its annotations `NAME.ann` beside it. Read as a folder of
such pairs (searched recursively, in path order) or as one `.ann` file with its `.txt`.

Records are the text's lines (brat shows a line per sentence), each of its document (one pair, for
--context_sentences); words by --word_split, aligned as the other span formats (tokclf.formats.spans).
The lines of `.ann`:
  T   an entity, `T1<TAB>ORG 0 2<TAB>EU`: offsets in characters of the text as stored (\\r counted), the
      text after the second tab checked against the text at them (text_mismatch). A discontinuous entity
      (`T3<TAB>ORG 0 5;10 15<TAB>...`) follows --span_alignment: strict, an error naming the file and line;
      expand, its covering span [0, 15); contract, its first fragment [0, 5); counted (`discontinuous`)
      either way. An entity across a line break: strict, an error; expand and contract, cut at the end of
      its first line (`crosses_line`).
      Nested or overlapping entities (brat allows both, IOB tags hold one label per word): the outermost
      is kept (of those that overlap, the one starting first, then the longest), as flat NER corpora
      annotate (`[Bank of [China]]` is one ORG); the others are counted (`nested`), under every mode.
  R E A M N * #   relations, events, attributes, normalizations, equivalences and notes: not used,
      counted (`not_entities`). Any other line is an error naming the file and line.
For training a `.txt` needs its `.ann` (a document without entities has an empty one, as brat makes it);
predict reads every `.txt` (a record per line, blank ones too), its `.ann` ignored.

Predict writes a folder: per document a copy of its text (its lines, each ending in \\n) and an `.ann` of the
predicted entities, `T` lines with an `AnnotatorNotes` note of each one's score. Input of other formats
(text, CoNLL) is written as one document, `text.txt`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Optional

from tokclf.errors import DataError
from tokclf.formats.base import Format, Reading, Tagged, Writing, chunked, without_whitespace
from tokclf.formats.span_files import Item, SpanReader, record_entities
from tokclf.formats.spans import AlignmentReport, CharSpan, context, without_overlaps
from tokclf.formats.textfile import BOM, UTF8_FIX, numbered_lines, open_bytes
from tokclf.formats.words import split
from tokclf.records import Record

TEXT, ANNOTATIONS = ".txt", ".ann"
IGNORED = {"R": "relation", "E": "event", "A": "attribute", "M": "attribute", "N": "normalization",
           "*": "equivalence", "#": "note"}
DOCUMENT_KEY = "brat_document"  # a predict record's document, in Record.row
OTHER_INPUT = "text"  # the document name of records read from other formats


@dataclass(frozen=True)
class Document:
    name: str  # its path below the folder read, without suffix (posix)
    text: Path
    annotations: Optional[Path]


@dataclass(frozen=True)
class Entity:
    where: str  # `FILE.ann:LINE`
    id: str
    label: str
    fragments: tuple[tuple[int, int], ...]
    text: Optional[str]


# ----------------------------------------------------------------------------------------------------
# Files


def documents(path: Path, need_annotations: bool) -> list[Document]:
    """The documents of a folder (every .txt and .ann below it, paired by name) or of one .ann/.txt file.
    A .txt without its .ann is an error where need_annotations (training), an .ann without its .txt always."""
    path = Path(path)
    root = path if path.is_dir() else path.parent
    if path.is_dir():
        found = sorted(p for suffix in (TEXT, ANNOTATIONS) for p in path.rglob("*" + suffix) if p.is_file())
    else:
        found = [p for p in (path.with_suffix(TEXT), path.with_suffix(ANNOTATIONS)) if p.is_file() or p == path]
    pairs: dict[str, dict[str, Path]] = {}
    for file in found:
        pairs.setdefault(file.relative_to(root).with_suffix("").as_posix(), {})[file.suffix] = file
    lacking = [(name, files) for name, files in pairs.items()
               if TEXT not in files or (need_annotations and ANNOTATIONS not in files)]
    if lacking:
        shown = ", ".join(str(next(iter(files.values()))) for _, files in lacking[:3])
        raise DataError(f"{path}: {len(lacking)} BRAT document(s) without both their .txt and .ann, e.g. {shown}. "
                        f"Each NAME.txt needs NAME.ann beside it (an empty one for a text without entities).")
    if not pairs:
        raise DataError(f"{path}: no BRAT documents (NAME.txt with NAME.ann) in it.")
    return [Document(name, files[TEXT], files.get(ANNOTATIONS)) for name, files in sorted(pairs.items())]


def document_files(path: Path) -> list[Path]:
    """Every file of the documents, for the cache key: both of each pair."""
    return [f for doc in documents(path, need_annotations=False) for f in (doc.text, doc.annotations) if f]


def document_text(path: Path) -> str:
    """The text as stored (no newline translation: brat's offsets count \\r), UTF-8."""
    with open_bytes(path) as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte {data[err.start]:#x}, byte offset {err.start}). "
                        f"{UTF8_FIX}") from None


def text_lines(text: str) -> list[tuple[int, str]]:
    """(offset of its first character, the line without \\r\\n) of every line (the end of the last one is
    no line of its own); a leading BOM is no text."""
    out, start = [], 0
    pieces = text.split("\n")
    for piece in pieces[:-1] if len(pieces) > 1 and not pieces[-1] else pieces:
        line = piece[:-1] if piece.endswith("\r") else piece
        skip = 1 if start == 0 and line.startswith(BOM) else 0
        out.append((start + skip, line[skip:]))
        start += len(piece) + 1
    return out


def sniff_folder(path: Path, reading: Reading) -> bool:
    """A folder holding .ann or .txt files (below it), or an .ann file."""
    path = Path(path)
    if path.is_dir():
        return any(p.is_file() for suffix in (ANNOTATIONS, TEXT) for p in path.rglob("*" + suffix))
    return path.suffix == ANNOTATIONS


# ----------------------------------------------------------------------------------------------------
# Reading .ann


def parse_entity(where: str, line: str) -> Entity:
    """A T line: `ID<TAB>LABEL START END[;START END]*<TAB>text`."""
    parts = line.split("\t", 2)  # the text is the rest of the line: it may hold tabs itself
    head = parts[1].split(" ", 1) if len(parts) > 1 else []
    try:
        fragments = tuple((int(a), int(b)) for a, b in (f.split() for f in head[1].split(";")))
    except (IndexError, ValueError):
        raise DataError(f"{where}: expected an entity `T1<TAB>LABEL START END<TAB>text` (fragments of a "
                        f"discontinuous one separated by `;`), got {line[:80]!r}.") from None
    if not head[0].strip():
        raise DataError(f"{where}: the entity {parts[0]} has no label: {line[:80]!r}.")
    return Entity(where, parts[0], head[0], fragments, parts[2] if len(parts) > 2 else None)


def entities(path: Path, report: AlignmentReport) -> list[Entity]:
    """The T lines of an .ann file; the lines of other kinds counted, an unknown kind an error."""
    found = []
    for line_no, line in numbered_lines(path, allow_empty=True):
        where = f"{path}:{line_no}"
        if not line.strip():
            continue
        if line[0] == "T":
            found.append(parse_entity(where, line))
        elif line[0] in IGNORED:
            report.add("not_entities", f"{where}: {IGNORED[line[0]]} {line.split(chr(9))[0]}")
        else:
            raise DataError(f"{where}: not a BRAT annotation line (T, R, E, A, M, N, * or # first): "
                            f"{line[:80]!r}. Is this an .ann file of brat?")
    return found


def entity_span(entity: Entity, mode: str, report: AlignmentReport) -> Optional[CharSpan]:
    """The entity's span in the document: a discontinuous one by --span_alignment (None under strict)."""
    if len(entity.fragments) == 1:
        (start, end), = entity.fragments
        return CharSpan(start, end, entity.label, entity.text)
    shown = ";".join(f"{a} {b}" for a, b in entity.fragments)
    report.add("discontinuous", f"{entity.where}: {entity.id} {entity.label} has {len(entity.fragments)} "
                                f"fragments ({shown})")
    if mode == "strict":
        return None
    if mode == "expand":
        return CharSpan(min(a for a, _ in entity.fragments), max(b for _, b in entity.fragments), entity.label)
    return CharSpan(*entity.fragments[0], entity.label)


def line_spans(doc: Document, text: str, lines: list[tuple[int, str]], reading: Reading,
               report: AlignmentReport) -> dict[int, list[CharSpan]]:
    """{line index: its spans, offsets counted in the line} of the document's entities."""
    starts = [start for start, _ in lines]
    located = []
    for entity in entities(doc.annotations, report):
        span = entity_span(entity, reading.span_alignment, report)
        if span is None:
            continue
        if not 0 <= span.start < span.end <= len(text):
            report.add("out_of_range", f"{entity.where}: {entity.id} [{span.start}, {span.end}) lies beyond the "
                                       f"text ({len(text)} characters) or is empty")
            continue
        if span.text is not None and span.text != text[span.start:span.end]:
            report.add("text_mismatch", f"{entity.where}: {entity.id} [{span.start}, {span.end}) {span.label} has "
                                        f"text {span.text!r} but the text there is {text[span.start:span.end]!r} "
                                        f"(offsets of another text?): {context(text, span.start, span.end)}")
            continue
        located.append(CharSpan(span.start, span.end, span.label, where=entity.where))
    by_line: dict[int, list[CharSpan]] = {}
    for span in without_overlaps(text, located, str(doc.annotations), report, kind="nested"):
        index = bisect.bisect_right(starts, span.start) - 1
        start, line = lines[index]
        end = min(span.end, start + len(line))
        if end < span.end:
            report.add("crosses_line", f"{span.where}: [{span.start}, {span.end}) {span.label} crosses the end of "
                                       f"line {index + 1} of {doc.text.name}: {context(text, span.start, span.end)}")
            if reading.span_alignment == "strict" or end <= span.start:
                continue
            span = CharSpan(span.start, end, span.label)
        by_line.setdefault(index, []).append(CharSpan(span.start - start, span.end - start, span.label))
    return by_line


def _items(path: Path, reading: Reading, report: AlignmentReport) -> Iterator[Item]:
    for number, doc in enumerate(documents(path, need_annotations=True)):
        text = document_text(doc.text)
        lines = text_lines(text)
        spans = line_spans(doc, text, lines, reading, report)
        for index, (_, line) in enumerate(lines):
            if line.strip():
                yield Item(f"{doc.text}:{index + 1}", line, spans.get(index, []), doc_id=number)
            elif index in spans:  # only spaces on the line: nothing to tag
                report.add("no_words", f"{doc.text}:{index + 1}: {len(spans[index])} span(s) on a blank line")


def _chunks(path: Path, reading: Reading, size: int, whole_documents: bool) -> Iterator:
    """Predict's records: every line of every text (blank ones too: the copy keeps them), its document's
    name in the row for the writer."""
    def records() -> Iterator[Record]:
        for number, doc in enumerate(documents(path, need_annotations=False)):
            for _, line in text_lines(document_text(doc.text)):
                words, offsets = split(line, reading.word_split)
                yield Record(words, line, offsets, row={DOCUMENT_KEY: doc.name}, doc=number)
    return chunked(records(), size, whole_documents)


# ----------------------------------------------------------------------------------------------------
# Writing: a folder of documents


def document_name(record: Record) -> str:
    """The record's document, as a path below the output folder that cannot leave it."""
    name = (record.row or {}).get(DOCUMENT_KEY, OTHER_INPUT)
    parts = PurePosixPath(name).parts
    if not isinstance(name, str) or not parts or ".." in parts or PurePosixPath(name).is_absolute():
        raise DataError(f"a record's BRAT document name {name!r} is no relative path below the output folder.")
    return name


def document_files_of(name: str, lines: list[str], found: list[dict]) -> Iterator[tuple[str, str]]:
    """(NAME.txt, the text), (NAME.ann, its T lines and score notes)."""
    ann = []
    for number, entity in enumerate(found, start=1):
        ann.append(f"T{number}\t{entity['label']} {entity['start']} {entity['end']}\t{entity['text']}")
        ann.append(f"#{number}\tAnnotatorNotes T{number}\tscore {entity['score']}")
    yield name + TEXT, "".join(line + "\n" for line in lines)
    yield name + ANNOTATIONS, "".join(line + "\n" for line in ann)


def write_folder(chunks: Iterable[Tagged], writing: Writing) -> Iterator[tuple[str, str]]:
    """(path below the output folder, content) of each file, a document's two after its last record."""
    name, lines, found, offset = None, [], [], 0
    for inp, tags, probs in chunks:
        for record, record_tags, record_probs in zip(inp.records, tags, probs):
            doc = document_name(record)
            if doc != name and name is not None:
                yield from document_files_of(name, lines, found)
                lines, found, offset = [], [], 0
            name = doc
            for entity in record_entities(record, record_tags, record_probs, writing.iob):
                found.append({**entity, "start": entity["start"] + offset, "end": entity["end"] + offset})
            lines.append(record.text)
            offset += len(record.text) + 1
    if name is not None:
        yield from document_files_of(name, lines, found)


READER = SpanReader("brat", _items)
FORMAT = Format(
    names=("brat",),
    summary="BRAT standoff: a folder of NAME.txt + NAME.ann pairs (or one .ann), T lines are the entities; "
            "predict writes such a folder",
    suffixes=(ANNOTATIONS,),
    folder_files=(TEXT, ANNOTATIONS),
    sniff=sniff_folder,
    sentences=READER.sentences,
    texts=_chunks,
    write=write_folder,
    holds_label=without_whitespace,
    label_rule="entity types without whitespace (a T line is `T1<TAB>TYPE START END<TAB>text`)",
    files=document_files,
    sample=f"sample{TEXT}: EU rejects German call\nsample{ANNOTATIONS}: T1\tORG 0 2\tEU\n",
    sample_files={"sample" + TEXT: "EU rejects German call\n", "sample" + ANNOTATIONS: "T1\tORG 0 2\tEU\n"},
)
