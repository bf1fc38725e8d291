"""spaCy DocBin (tokclf/formats/docbin.py) against spaCy itself: the DocBins of spaCy's own CoNLL converters
(what `spacy convert -c ner` / `-c conllu` write) read to the words and tags of the source, train as the
CoNLL form does to the digit, and predict's DocBin loads in spaCy with predict's spans."""

import json
import sys

import pytest

from test_conllu import conll_to_conllu
from test_span_training import SPLIT_FILES, args_for
from tokclf.cli import predict_main, train_main
from tokclf.data.schemes import iob1_to_iob2
from tokclf.errors import DataError
from tokclf.formats.registry import detect, read_file, read_input, text_format

spacy = pytest.importorskip("spacy", reason="spaCy (requirements-test.txt) is not installed")
from spacy.tokens import Doc, DocBin  # noqa: E402
from spacy.training.converters import conll_ner_to_docs, conllu_to_docs  # noqa: E402
from spacy.vocab import Vocab  # noqa: E402


def spacy_convert(source, out, converter=conll_ner_to_docs):
    """What `spacy convert` writes for a CoNLL-2003 (`-c ner`) or CoNLL-U (`-c conllu`) file. spaCy splits
    documents only at `-DOCSTART- -X- O O` lines (the synthetic files have `-DOCSTART- -X- -X- O`)."""
    text = source.read_text(encoding="utf-8").replace("-DOCSTART- -X- -X- O", "-DOCSTART- -X- O O")
    docs = list(converter(text, n_sents=10, no_print=True))
    DocBin(docs=docs, store_user_data=True).to_disk(out)
    return out


def test_spacy_converted_conll_reads_as_the_conll_file(conll_dir, tmp_path):
    path = spacy_convert(conll_dir / "eng.train", tmp_path / "train.spacy")
    assert detect(path).name == text_format(path).name == "docbin"
    conll = read_file(conll_dir / "eng.train", "ner")
    for task in ("ner", "pos"):
        ours = read_file(path, task)
        assert [s.words for s in ours] == [s.words for s in conll]
        want = [iob1_to_iob2(s.tags) for s in conll] if task == "ner" else [s.tags for s in read_file(
            conll_dir / "eng.train", "pos")]
        assert [s.tags for s in ours] == want
    assert [r.words for r in read_input(path).records] == [s.words for s in conll]


def test_spacy_converted_conllu_reads_as_our_conllu_reader(conll_dir, tmp_path):
    plus = conll_to_conllu(conll_dir / "eng.testa", tmp_path / "plus.conllu")
    ud = tmp_path / "dev.conllu"  # plain CoNLL-U with UD tags: spaCy's converter reads 10 columns, UPOS only UD's
    lines = []
    for line in plus.read_text().splitlines():
        fields = line.split("\t")[:10]
        if len(fields) == 10 and fields[0].isdigit():  # a tree (spaCy's sentences come from it) and UD tags
            fields[3] = {"NN": "NOUN", "NNP": "PROPN"}.get(fields[3], "X")
            fields[6:8] = ["0", "root"] if fields[0] == "1" else ["1", "dep"]
        lines += [] if line.startswith("# global.columns") else ["\t".join(fields)]
    ud.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = spacy_convert(ud, tmp_path / "dev.spacy", conllu_to_docs)
    for ours, column in (("tag", "xpos"), (None, "upos")):
        assert [(s.words, s.tags) for s in read_file(path, "pos", label_column=ours)] == [
            (s.words, s.tags) for s in read_file(ud, "pos", label_column=column)]


def test_whitespace_tokens_sentences_and_text(tmp_path):
    doc = Doc(Vocab(), words=["Hi", "  ", "EU", "rejects", "it", "."], spaces=[True, False, True, True, False, False],
              sent_starts=[True, False, False, True, False, False], ents=["O", "O", "B-ORG", "O", "O", "O"],
              pos=["INTJ", "SPACE", "PROPN", "VERB", "PRON", "PUNCT"])
    path = tmp_path / "a.spacy"
    DocBin(docs=[doc, Doc(Vocab(), words=["Bye"], ents=["O"], pos=["INTJ"])]).to_disk(path)
    assert [(s.words, s.tags, s.doc_id) for s in read_file(path, "ner")] == [
        (["Hi", "EU"], ["O", "B-ORG"], 0), (["rejects", "it", "."], ["O", "O", "O"], 0), (["Bye"], ["O"], 1)]
    assert [s.tags for s in read_file(path, "pos")][0] == ["INTJ", "PROPN"]
    assert [(r.text, r.words, r.doc) for r in read_input(path).records] == [
        ("Hi   EU", ["Hi", "EU"], 0), ("rejects it.", ["rejects", "it", "."], 0), ("Bye", ["Bye"], 1)]
    with pytest.raises(DataError, match=r"a\.spacy: doc 1 has no TAG annotation for --task_name pos"):
        read_file(path, "pos", label_column="tag")


def test_bad_files_and_a_missing_spacy_are_one_line(tmp_path, monkeypatch):
    path = tmp_path / "bad.spacy"
    path.write_bytes(b"not a docbin")
    with pytest.raises(DataError, match=r"bad\.spacy: not a spaCy DocBin file \(.*\)\. Write it with DocBin"):
        read_file(path, "ner")
    monkeypatch.setitem(sys.modules, "spacy.tokens", None)  # as where spaCy is not installed
    with pytest.raises(DataError, match=r"bad\.spacy: a spaCy DocBin file, and the `spacy` package is not "
                                        r"installed\. Install it \(pip install spacy\)"):
        read_file(path, "ner")


@pytest.mark.parametrize("task", ["ner", "pos"])
def test_the_docbin_form_trains_as_the_conll_form_to_the_digit(base_args, conll_dir, tmp_path, task):
    folder = tmp_path / "spacy"
    folder.mkdir()
    for split_name, conll_name in SPLIT_FILES.items():
        spacy_convert(conll_dir / conll_name, folder / f"{split_name}.spacy")
    scores = []
    for data, out in ((folder, tmp_path / "a"), (conll_dir, tmp_path / "b")):
        train_main(args_for(base_args, data, "--task_name", task, "--mixed_precision", "no", "--output_dir", str(out)))
        scores.append(json.loads((out / "all_results.json").read_text()))
    key = "eval_f1" if task == "ner" else "eval_accuracy"
    assert scores[0][key] == scores[1][key] > 0 and scores[0]["train_loss"] == scores[1]["train_loss"]
    if task == "ner":  # predict's DocBin, loaded by spaCy: the spans predict finds in the CoNLL test file
        predict_main(["--model", str(tmp_path / "a"), "--input", str(folder / "test.spacy"), "--output",
                      str(tmp_path / "out.spacy")])
        predict_main(["--model", str(tmp_path / "a"), "--input", str(conll_dir / "eng.testb"), "--output",
                      str(tmp_path / "out.conll")])
        docs = list(DocBin().from_disk(tmp_path / "out.spacy").get_docs(Vocab()))
        conll = read_file(tmp_path / "out.conll", "ner")
        assert [[t.text for t in d] for d in docs] == [s.words for s in conll]
        assert [[f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else "O" for t in d] for d in docs] == [
            s.tags for s in conll]
        assert sum(len(d.ents) for d in docs) > 10
        assert [(s.words, s.tags) for s in read_file(tmp_path / "out.spacy", "ner")] == [
            (s.words, s.tags) for s in conll]
