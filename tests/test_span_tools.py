"""The span formats against the real tools: label-studio-sdk's converter and label config validation,
and spaCy's Doc.char_span, offsets_to_biluo_tags and DocBin. Skipped when the tools are not installed
(requirements-test.txt lists them)."""

import json
import random

import pytest

from conftest import write_conll
from tokclf.formats.conll import read_conll
from tokclf.data.schemes import iob1_to_iob2
from tokclf.formats.labelstudio import labelstudio_task
from tokclf.formats.registry import read_span_file
from tokclf.formats.spans import AlignmentReport, align_record, record_spans
from tokclf.formats.words import split

pytestmark = pytest.mark.slow  # importing the tools takes seconds
LABEL_CONFIG = """<View>
  <Labels name="label" toName="text">
    <Label value="PER"/><Label value="LOC"/><Label value="ORG"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>"""


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """(text, words, offsets, IOB2 tags, probabilities) of synthetic CoNLL sentences joined by spaces."""
    path = tmp_path_factory.mktemp("conll") / "eng.train"
    write_conll(path, 80, seed=5)
    rng = random.Random(5)
    out = []
    for sentence in read_conll(path, "ner"):
        text = " ".join(sentence.words)
        out.append((text, *split(text, "whitespace"), iob1_to_iob2(sentence.tags),
                    [rng.uniform(0.3, 1) for _ in sentence.words]))
    return out


def test_labelstudio_accepts_our_predictions(tagged):
    interface = pytest.importorskip("label_studio_sdk.label_interface").LabelInterface(LABEL_CONFIG)
    for row in tagged:
        prediction = labelstudio_task(*row)["predictions"][0]
        assert interface.validate_prediction(prediction, return_errors=True) == []


def test_labelstudio_converter_reads_our_tasks_and_we_read_its_conll(tagged, tmp_path):
    """Our annotation tasks → the real converter's CONLL2003 export → tokclf's CoNLL reader: the same
    words and IOB2 tags as the source sentences."""
    converter = pytest.importorskip("label_studio_sdk.converter")
    tasks = [{"id": i, **labelstudio_task(*row, as_annotation=True)} for i, row in enumerate(tagged)]
    (tmp_path / "export.json").write_text(json.dumps(tasks), encoding="utf-8")
    converter.Converter(LABEL_CONFIG, str(tmp_path)).convert_to_conll2003(
        str(tmp_path / "export.json"), str(tmp_path / "out"), is_dir=False)
    sentences = read_conll(tmp_path / "out" / "result.conll", "ner")
    assert [(s.words, s.tags) for s in sentences] == [(row[1], row[3]) for row in tagged]
    records, report = read_span_file(tmp_path / "export.json", word_split="whitespace")
    assert [r.tags for r in records] == [s.tags for s in sentences] and not report.counts


def spacy_doc(nlp, record):
    """A spaCy Doc of the record's words with the record's text; whitespace beyond one space between two
    words becomes a whitespace token, as spaCy's tokenizer makes it. Also: per token, our word or None."""
    from spacy.tokens import Doc

    words, spaces, word_of_token = [], [], []
    for i, (start, end) in enumerate(record.offsets):
        gap = record.text[end:record.offsets[i + 1][0] if i + 1 < len(record.offsets) else len(record.text)]
        words.append(record.text[start:end]), spaces.append(gap.startswith(" ")), word_of_token.append(i)
        if gap[spaces[-1]:]:
            words.append(gap[spaces[-1]:]), spaces.append(False), word_of_token.append(None)
    doc = Doc(nlp.vocab, words=words, spaces=spaces)
    assert doc.text == record.text
    return doc, word_of_token


def test_spacy_biluo_and_docbin_agree_with_our_tags(tagged):
    spacy = pytest.importorskip("spacy")
    from spacy.tokens import DocBin
    from spacy.training import biluo_to_iob, offsets_to_biluo_tags

    nlp, docs, records = spacy.blank("en"), DocBin(), []
    for text, words, offsets, tags, _ in tagged:
        record = align_record(text, [], word_split="whitespace")
        record.tags = tags
        spans = [(s.start, s.end, s.label) for s in record_spans(record)]
        doc, _ = spacy_doc(nlp, record)
        assert biluo_to_iob(offsets_to_biluo_tags(doc, spans)) == tags
        doc.ents = [doc.char_span(s, e, label) for s, e, label in spans]
        docs.add(doc)
        records.append(align_record(text, spans, word_split="whitespace"))
    for doc, record in zip(DocBin().from_bytes(docs.to_bytes()).get_docs(nlp.vocab), records):
        assert [t.ent_iob_ + ("-" + t.ent_type_ if t.ent_type_ else "") for t in doc] == record.tags


@pytest.mark.parametrize("mode", ["expand", "contract", "strict"])
def test_random_spans_snap_like_spacy_char_span(mode):
    """Random character ranges over punct-split text: each mode covers the words spaCy's char_span
    (alignment_mode=mode) covers, and drops the span exactly when spaCy returns None. One deliberate
    difference: strict accepts whitespace at a span's ends (it splits no word); spaCy wants the span
    trimmed, so under strict spaCy gets the trimmed span."""
    spacy = pytest.importorskip("spacy")
    nlp, rng = spacy.blank("xx"), random.Random(11)
    text = "Dr. Smith's e-mail:  3.5€! Zoë met 北京大学 in\tl’homme's  café.\n"
    doc, word_of_token = spacy_doc(nlp, align_record(text, [], word_split="punct"))
    for _ in range(300):
        start = rng.randrange(len(text))
        end = rng.randrange(start + 1, len(text) + 1)
        record = align_record(text, [(start, end, "X")], mode=mode, report=AlignmentReport(mode))
        ours = [i for i, tag in enumerate(record.tags) if tag != "O"]
        if mode == "strict":
            inner = text[start:end].strip()
            start = start + len(text[start:end]) - len(text[start:end].lstrip())
            end = start + len(inner)
        theirs = doc.char_span(start, end, "X", alignment_mode=mode) if start < end else None
        covered = [] if theirs is None else [word_of_token[t.i] for t in theirs if word_of_token[t.i] is not None]
        assert ours == covered, (start, end, text[start:end])
