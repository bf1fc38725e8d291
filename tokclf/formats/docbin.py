"""spaCy DocBin files (`.spacy`, what `spacy convert` and spaCy's training read): serialized Docs, read
and written through spaCy, an optional dependency imported only here (a clear error names it when it
is missing).

The Doc's own tokens are the words (whitespace tokens are none); each Doc is a
document and its sentences (`doc.sents`, where sentence starts are set; else the whole Doc) are the
records. Entity tags are `doc.ents` as IOB2 tags; POS tags are `token.pos_` where the Doc has UPOS,
else `token.tag_` (`--label_column_name tag` or `pos` chooses). Predict writes a Doc per record with
the record's text: entities as `doc.ents`, plain tags as `token.tag_` (and `token.pos_` where the model's labels
are all UPOS tags). DocBin is one binary document: it is written at the end, not streamed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from tokclf.errors import DataError
from tokclf.formats.base import Format, Reading, Tagged, Writing, chunked
from tokclf.formats.ud_tags import column_to_fill
from tokclf.formats.span_files import record_entities
from tokclf.formats.textfile import open_bytes
from tokclf.records import Record, Sentence

POS_SOURCES = ("pos", "tag")


def _spacy(path: Path):
    """spaCy's Doc, DocBin and Vocab: imported only for DocBin files."""
    try:
        from spacy.tokens import Doc, DocBin
        from spacy.vocab import Vocab
    except ImportError:
        raise DataError(f"{path}: a spaCy DocBin file, and the `spacy` package is not installed. Install it "
                        f"(pip install spacy), or convert the file to CoNLL with spaCy where it is.") from None
    return Doc, DocBin, Vocab


def docs(path: Path) -> Iterator:
    """The Docs of a DocBin file, in order."""
    _, DocBin, Vocab = _spacy(path)
    with open_bytes(path) as f:
        data = f.read()
    try:
        doc_bin = DocBin().from_bytes(data)
    except Exception as err:  # msgpack/zlib errors of a file that is no DocBin: one line, not a traceback
        raise DataError(f"{path}: not a spaCy DocBin file ({type(err).__name__}: {err}). Write it with "
                        f"DocBin.to_disk, or `spacy convert`.") from None
    return iter(doc_bin.get_docs(Vocab()))


def _sentences_of(doc) -> list:
    return list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]


def _words(sent) -> list:
    """The tokens that are words: not whitespace (by text: a bare Vocab has no is_space)."""
    return [token for token in sent if token.text.strip()]


def _tag_of(token, reading: Reading, use_pos: bool) -> str:
    if reading.task == "pos":
        return token.pos_ if use_pos else token.tag_
    return f"{token.ent_iob_}-{token.ent_type_}" if token.ent_iob_ in ("B", "I") else "O"


def iter_docbin(path: str | Path, reading: Reading) -> Iterator[Sentence]:
    """The labelled sentences: per Doc its sentences, the non-space tokens as words."""
    path = Path(path)
    source = (reading.label_column or "").lower() or None
    if reading.task not in ("pos", "ner") or (source is not None and source not in POS_SOURCES):
        raise DataError(f"{path}: a DocBin holds entities (--task_name ner) and POS tags (--task_name pos; "
                        f"--label_column_name pos or tag), not --task_name {reading.task} "
                        f"{'--label_column_name ' + source if source else ''}".rstrip() + ".")
    for number, doc in enumerate(docs(path)):
        use_pos = source == "pos" or (source is None and doc.has_annotation("POS"))
        needs = "ENT_IOB" if reading.task == "ner" else ("POS" if use_pos else "TAG")
        if not doc.has_annotation(needs):
            raise DataError(f"{path}: doc {number + 1} has no {needs} annotation for --task_name {reading.task}. "
                            f"Pick another --task_name or --label_column_name.")
        for sent in _sentences_of(doc):
            tokens = _words(sent)
            if tokens:
                yield Sentence([t.text for t in tokens], [_tag_of(t, reading, use_pos) for t in tokens], number,
                               str(path), row=f"doc {number + 1}")


def _texts(path: Path, reading: Reading, size: int, whole_documents: bool) -> Iterator:
    def records() -> Iterator[Record]:
        for number, doc in enumerate(docs(Path(path))):
            for sent in _sentences_of(doc):
                tokens = _words(sent)
                start = sent.start_char
                yield Record([t.text for t in tokens], sent.text,
                             [(t.idx - start, t.idx - start + len(t)) for t in tokens], doc=number)
    return chunked(records(), size, whole_documents)


def _doc(Doc, vocab, record: Record):
    """A Doc of the record's words holding its text: a gap beyond one space becomes a whitespace token,
    as spaCy's tokenizer makes it. Also the index of each word's token."""
    words, spaces, word_tokens = [], [], []
    for i, (start, end) in enumerate(record.offsets):
        gap = record.text[end:record.offsets[i + 1][0] if i + 1 < len(record.offsets) else len(record.text)]
        word_tokens.append(len(words))
        words.append(record.text[start:end]), spaces.append(gap.startswith(" "))
        if gap[spaces[-1]:]:
            words.append(gap[spaces[-1]:]), spaces.append(False)
    lead = record.text[:record.offsets[0][0]] if record.offsets else record.text
    if lead:  # text before the first word: a whitespace token of its own
        words.insert(0, lead), spaces.insert(0, False)
        word_tokens = [i + 1 for i in word_tokens]
    return Doc(vocab, words=words, spaces=spaces), word_tokens


def write_docbin(chunks: Iterable[Tagged], writing: Writing) -> Iterator[bytes]:
    """One DocBin of a Doc per record (its tags as module docstring says), as bytes, after the last chunk."""
    doc_bin, Doc, vocab = None, None, None
    # The tags are UPOS (token.pos_ too) only where the model's labels all are: a Doc with some pos_ set is
    # read as UPOS throughout, and the other tags would come back empty.
    as_upos = column_to_fill(writing.label_column, writing.labels, writing.iob) == "upos"
    for inp, tags, probs in chunks:
        if doc_bin is None:
            Doc, DocBin, Vocab = _spacy(Path("--output"))
            doc_bin, vocab = DocBin(attrs=["ORTH", "SPACY", "TAG", "POS", "ENT_IOB", "ENT_TYPE"]), Vocab()
        for record, record_tags, record_probs in zip(inp.records, tags, probs):
            doc, word_tokens = _doc(Doc, vocab, record)
            if writing.iob:
                spans = [doc.char_span(e["start"], e["end"], e["label"])
                         for e in record_entities(record, record_tags, record_probs, True)]
                doc.ents = [span for span in spans if span is not None]
            else:
                for token_index, tag in zip(word_tokens, record_tags):
                    doc[token_index].tag_ = tag
                    if as_upos:
                        doc[token_index].pos_ = tag
            doc_bin.add(doc)
    if doc_bin is not None:
        yield doc_bin.to_bytes()


def _sample() -> bytes:
    Doc, DocBin, Vocab = _spacy(Path("the sample"))
    doc = Doc(Vocab(), words=["EU", "rejects", "German", "call"], ents=["B-ORG", "O", "B-MISC", "O"])
    return DocBin(attrs=["ORTH", "SPACY", "ENT_IOB", "ENT_TYPE"], docs=[doc]).to_bytes()


FORMAT = Format(
    names=("docbin", "spacy"),
    summary="spaCy DocBin (`spacy convert` output): Docs whose tokens are the words, `doc.ents` and POS tags; "
            "needs `pip install spacy`",
    suffixes=(".spacy",),
    sentences=iter_docbin,
    texts=_texts,
    write=write_docbin,
    output_suffixes=(".spacy",),
    binary=True,
    sample_bytes=_sample,
    sample="DocBin of Doc(Vocab(), words=['EU', 'rejects', 'German', 'call'], ents=['B-ORG', 'O', 'B-MISC', 'O'])",
)
