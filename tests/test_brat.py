"""BRAT standoff folders (tokclf/formats/brat.py): CoNLL-2003 as brat's files (a document per CoNLL
document, a sentence per line, `T` lines), read back to the CoNLL words and tags; discontinuous, nested
and line-crossing entities under each --span_alignment; relations, attributes and notes counted and
ignored; --data_dir split folders; the cache key over both files of each pair; training to the digit of
the CoNLL run; predict's folder of text copies and `.ann` files read back to predict's spans."""

import json

import pytest

from conftest import SHARED_CONLL, needs_conll
from helpers import assert_same_scores, train_each
from test_span_training import SPLIT_FILES
from test_spans import iob2_sentences
from tokclf.cli import evaluate_main, predict_main, train_main
from tokclf.data.arrow_data import file_split
from tokclf.data.split_files import find_split_files
from tokclf.errors import DataError
from tokclf.formats.base import Reading
from tokclf.formats.registry import detect, read_file, read_span_file, text_format
from tokclf.formats.spans import entity_spans

import numpy as np


def write_brat(sentences, folder):
    """A NAME.txt (a sentence per line, words joined by spaces) and NAME.ann (`T` lines of the IOB2 tags)
    per document of sentences; returns {document name: its sentences}."""
    folder.mkdir(parents=True, exist_ok=True)
    docs: dict[str, list] = {}
    for sentence in sentences:
        docs.setdefault(f"doc{sentence.doc_id or 0:04d}", []).append(sentence)
    for name, doc in docs.items():
        lines, ann, offset = [], [], 0
        for sentence in doc:
            text = " ".join(sentence.words)
            starts = np.cumsum([0] + [len(w) + 1 for w in sentence.words[:-1]])
            offsets = [(int(s), int(s) + len(w)) for s, w in zip(starts, sentence.words)]
            for entity in entity_spans(text, offsets, sentence.tags, np.ones(len(sentence.tags)), iob=True):
                ann.append(f"T{len(ann) + 1}\t{entity['label']} {entity['start'] + offset} "
                           f"{entity['end'] + offset}\t{entity['text']}")
            lines.append(text)
            offset += len(text) + 1
        (folder / f"{name}.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        (folder / f"{name}.ann").write_text("".join(line + "\n" for line in ann), encoding="utf-8")
    return docs


def brat_dir(conll_dir, folder, limit=None):
    """train/, devel/ and test/ folders of brat files (the BioNLP layout) of conll_dir's splits."""
    for split, conll_name in SPLIT_FILES.items():
        write_brat(iob2_sentences(conll_dir / conll_name, limit), folder / {"validation": "devel"}.get(split, split))
    return folder


def test_conll_as_brat_reads_as_the_conll_file(conll_dir, tmp_path):
    sentences = iob2_sentences(conll_dir / "eng.testa")
    write_brat(sentences, tmp_path / "brat")
    assert detect(tmp_path / "brat").name == "brat" and detect(tmp_path / "brat" / "doc0000.ann").name == "brat"
    records, report = read_span_file(tmp_path / "brat", word_split="whitespace")
    assert [(r.words, r.tags) for r in records] == [(s.words, s.tags) for s in sentences]
    assert not report.counts and len({r.doc_id for r in records}) > 1
    (one,) = {r.doc_id for r in read_file(tmp_path / "brat" / "doc0001.ann", "ner", word_split="whitespace")}


@needs_conll
def test_real_conll2003_validation_as_brat_reads_as_the_conll_file(tmp_path):
    sentences = iob2_sentences(SHARED_CONLL / "eng.testa")
    docs = write_brat(sentences, tmp_path / "brat")
    records, report = read_span_file(tmp_path / "brat", word_split="whitespace")
    assert [(r.words, r.tags) for r in records] == [(s.words, s.tags) for s in sentences]
    assert len(records) == 3250 and len(docs) == 216 and not report.counts


@pytest.fixture
def annotated(conll_dir, tmp_path):
    """A brat folder of CoNLL sentences plus a document `extra` holding a discontinuous entity (T3), a
    relation, an attribute, a note and an entity nested in T3 (T4). Returns (folder, extra.ann)."""
    folder = tmp_path / "brat"
    write_brat(iob2_sentences(conll_dir / "eng.train", 30), folder)
    (folder / "extra.txt").write_text("Peter Blackburn of Bonn\nEU rejects German call\n", encoding="utf-8")
    ann = folder / "extra.ann"
    ann.write_text("T1\tPER 0 15\tPeter Blackburn\nR1\tLocated Arg1:T1 Arg2:T2\nT2\tLOC 19 23\tBonn\n"
                   "T3\tORG 24 26;35 41\tEU German\nA1\tNegated T1\n#1\tAnnotatorNotes T1\tchecked\n"
                   "T4\tMISC 35 41\tGerman\n", encoding="utf-8")
    return folder, ann


def test_discontinuous_entities_follow_span_alignment(annotated):
    folder, ann = annotated
    with pytest.raises(DataError, match=r"extra\.ann:4: T3 ORG has 2 fragments \(24 26;35 41\)"):
        read_span_file(folder, word_split="whitespace")
    for mode, tags in (("expand", ["B-ORG", "I-ORG", "I-ORG", "O"]), ("contract", ["B-ORG", "O", "B-MISC", "O"])):
        records, report = read_span_file(folder, alignment=mode, word_split="whitespace")
        extra = [r for r in records if r.source.startswith(str(folder / "extra.txt"))]
        assert [r.tags for r in extra] == [["B-PER", "I-PER", "O", "B-LOC"], tags]
        # Relations, attributes and notes are counted, never tags; under expand T4 lies inside T3's span.
        assert report.counts == {"discontinuous": 1, "not_entities": 3, **({"nested": 1} if mode == "expand" else {})}
        summary = report.summary("brat")
        assert "extra.ann:2: relation R1" in summary and "extra.ann:6: note #1" in summary


def test_nested_entities_keep_the_outermost_under_strict(conll_dir, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "d.txt").write_text("Bank of China opened\n", encoding="utf-8")
    (tmp_path / "b" / "d.ann").write_text("T1\tLOC 8 13\tChina\nT2\tORG 0 13\tBank of China\n", encoding="utf-8")
    records, report = read_span_file(tmp_path / "b")
    assert records[0].tags == ["B-ORG", "I-ORG", "I-ORG", "O"] and report.counts == {"nested": 1}


def test_an_entity_across_lines_and_broken_files_name_file_and_line(tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "d.txt").write_text("EU rejects\r\nGerman call\n", encoding="utf-8")
    (folder / "d.ann").write_text("T1\tORG 0 2\tEU\nT2\tMISC 3 18\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.ann:2: \[3, 18\) MISC crosses the end of line 1 of d\.txt"):
        read_span_file(folder)
    records, report = read_span_file(folder, alignment="expand")  # \r counted, as brat counts it
    assert [r.tags for r in records] == [["B-ORG", "B-MISC"], ["O", "O"]] and report.counts["crosses_line"] == 1
    for text, message in (("T1\tORG zero 2\tEU\n", r"d\.ann:1: expected an entity `T1<TAB>LABEL START END"),
                          ("X1\tsomething\n", r"d\.ann:1: not a BRAT annotation line"),
                          ("T1\tORG 0 99\tEU\n", r"out_of_range: 1")):
        (folder / "d.ann").write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=message):
            read_span_file(folder)
    (folder / "e.txt").write_text("no annotations beside\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"1 BRAT document\(s\) without both their \.txt and \.ann, e\.g\. .*e\.txt"):
        read_file(folder, "ner")
    (folder / "e.ann").write_text("", encoding="utf-8")  # an empty .ann: a text without entities
    (folder / "d.ann").write_text("T1\tORG 0 2\tEU\n", encoding="utf-8")
    assert [s.tags for s in read_file(folder, "ner")][-1] == ["O", "O", "O"]


def test_data_dir_split_folders_and_a_cache_key_over_both_files(conll_dir, tmp_path):
    folder = brat_dir(conll_dir, tmp_path / "corpus")
    found = find_split_files(folder)
    assert found == {"train": folder / "train", "validation": folder / "devel", "test": folder / "test"}
    reading = Reading(word_split="whitespace")
    before = file_split(found["test"], reading).dataset["tags"]
    ann = sorted((folder / "test").glob("*.ann"))[0]
    ann.write_text("\n".join(ann.read_text().splitlines()[1:]) + "\n", encoding="utf-8")  # one entity fewer
    after = file_split(found["test"], reading).dataset["tags"]
    assert sum(t != "O" for ts in after for t in ts) < sum(t != "O" for ts in before for t in ts)


@pytest.fixture(scope="module")
def trained(tiny_model, conll_dir, tmp_path_factory):
    """(brat corpus folder, model trained on it, model trained on the CoNLL form): same options, fp32."""
    folder = brat_dir(conll_dir, tmp_path_factory.mktemp("brat-data"))
    return folder, *train_each(tiny_model, [folder, conll_dir], tmp_path_factory)


def test_brat_trains_as_the_conll_form_to_the_digit(trained):
    _, ours, theirs = trained
    assert_same_scores(ours, theirs)


def test_predict_writes_a_folder_of_texts_and_anns_that_reads_back(trained, tmp_path, capsys):
    folder, model, _ = trained
    source = folder / "test"
    out, spans = tmp_path / "predicted", tmp_path / "spans.jsonl"
    predict_main(["--model", str(model), "--input", str(source), "--output", str(out)])
    predict_main(["--model", str(model), "--input", str(source), "--output", str(spans), "--output_format", "spans"])
    assert text_format(source).name == "brat"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in source.iterdir())
    for txt in source.glob("*.txt"):
        assert (out / txt.name).read_text() == txt.read_text()
    predicted = [json.loads(line) for line in spans.read_text().splitlines()]
    records, report = read_span_file(out, word_split="whitespace")
    assert report.counts["not_entities"] == sum(len(p["entities"]) for p in predicted) > 10  # the score notes
    assert [[(e["start"], e["end"], e["label"]) for e in p["entities"]] for p in predicted] == [
        [(e["start"], e["end"], e["label"]) for e in entity_spans(r.text, r.offsets, r.tags, np.ones(len(r.tags)), True)]
        for r in records]
    # Again into the same folder: the previous output is replaced; never into the input's folder.
    predict_main(["--model", str(model), "--input", str(source), "--output", str(out)])
    assert sorted(p.name for p in out.iterdir()) == names
    (out / "keep.md").write_text("mine")
    for target, message in ((out, "holds files this output does not write"),
                            (source / "sub", "holds or lies inside the input"), (folder, "holds or lies inside")):
        with pytest.raises(SystemExit):
            predict_main(["--model", str(model), "--input", str(source), "--output", str(target)])
        assert message in capsys.readouterr().err
    assert (out / "keep.md").read_text() == "mine" and not (source / "sub").exists()


def test_evaluate_scores_a_brat_folder_as_training_scored_it(trained, tmp_path):
    folder, model, _ = trained
    evaluate_main(["--model", str(model), "--test_file", str(folder / "test"), "--output_file", str(tmp_path / "m.json"),
                   "--inference_dtype", "fp32"])
    scored = json.loads((tmp_path / "m.json").read_text())
    assert scored["f1"] == json.loads((model / "all_results.json").read_text())["test_f1"]


def test_text_input_becomes_one_document(trained, tmp_path):
    _, model, _ = trained
    (tmp_path / "in.txt").write_text("Peter Blackburn went to Bonn\n\nThe EU met\n", encoding="utf-8")
    predict_main(["--model", str(model), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out"),
                  "--output_format", "brat"])
    assert (tmp_path / "out" / "text.txt").read_text() == (tmp_path / "in.txt").read_text()
    assert len(read_span_file(tmp_path / "out", word_split="whitespace")[0]) == 2


@pytest.mark.slow
@needs_conll
def test_conll2003_as_brat_trains_to_the_conll_f1_in_300_steps(tiny_model, tmp_path):
    """Real CoNLL-2003 (2,000 training sentences, 300 validation) as brat folders and as CoNLL files: the
    same words and tags, so a 300-step run reaches the same validation F1 to the digit."""
    brat = tmp_path / "brat"
    limits = {"train": 2000, "validation": 300, "test": 300}
    for split, conll_name in SPLIT_FILES.items():
        write_brat(iob2_sentences(SHARED_CONLL / conll_name, limits[split]), brat / split)
    base = ["--model_name_or_path", str(tiny_model), "--word_split", "whitespace", "--max_train_steps", "300",
            "--per_device_train_batch_size", "16", "--learning_rate", "1e-2", "--seed", "7", "--max_length", "128",
            "--mixed_precision", "no"]
    scores = []
    train_main(base + ["--data_dir", str(brat), "--output_dir", str(tmp_path / "a")])
    scores.append(json.loads((tmp_path / "a" / "all_results.json").read_text()))
    columns = tmp_path / "columns"
    columns.mkdir()
    for split, conll_name in SPLIT_FILES.items():
        sentences = iob2_sentences(SHARED_CONLL / conll_name, limits[split])
        (columns / f"{split}.conll").write_text("".join(
            "".join(f"{w} {t}\n" for w, t in zip(s.words, s.tags)) + "\n" for s in sentences), encoding="utf-8")
    train_main(base + ["--data_dir", str(columns), "--output_dir", str(tmp_path / "b")])
    scores.append(json.loads((tmp_path / "b" / "all_results.json").read_text()))
    print("validation F1, brat and CoNLL forms:", scores[0]["eval_f1"], scores[1]["eval_f1"])
    assert scores[0]["eval_f1"] == scores[1]["eval_f1"] > 0.1
