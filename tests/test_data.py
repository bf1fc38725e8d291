"""Readers: CoNLL columns, JSON/JSONL, CSV, --data_dir, and the real CoNLL-2003 counts."""

import json
from collections import Counter

import pytest

from conftest import SHARED_CONLL, needs_conll
from tokclf.data.split_files import find_split_files
from tokclf.formats.conll import read_conll
from tokclf.formats.registry import read_file
from tokclf.errors import DataError
from helpers import prepared_tags


def test_conll_columns_by_task_and_documents(tmp_path):
    path = tmp_path / "f.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n"
                    "-DOCSTART- -X- -X- O\n\nPeter NNP I-NP I-PER\n", encoding="utf-8")
    ner = read_conll(path, "ner")
    assert [s.words for s in ner] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in ner] == [["I-ORG", "O"], ["I-PER"]]
    assert [s.doc_id for s in ner] == [0, 1]
    assert read_conll(path, "pos")[0].tags == ["NNP", "VBZ"]
    assert read_conll(path, "chunk")[0].tags == ["I-NP", "I-VP"]


def test_conll_tab_separated_two_columns(tmp_path):
    path = tmp_path / "f.tsv"
    path.write_text("EU\tB-ORG\nrejects\tO\n", encoding="utf-8")
    assert read_conll(path, "ner")[0].tags == ["B-ORG", "O"]


def test_conll_wrong_column_count_names_file_and_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("EU NNP I-NP I-ORG\nrejects VBZ O\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.conll:2: expected 4 columns .* found 3"):
        read_conll(path, "ner")


def test_conll_non_utf8_line_named(tmp_path):
    path = tmp_path / "latin.conll"
    path.write_bytes("EU O\n".encode() + "Müller B-PER\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.conll:2: not UTF-8"):
        read_conll(path, "ner")


def test_pos_task_on_file_without_pos_column(tmp_path):
    path = tmp_path / "two.conll"
    path.write_text("EU B-ORG\nsaid O\n", encoding="utf-8")
    sentences = read_conll(path, "pos")  # 2 columns: the only tag column, which holds NER tags
    with pytest.raises(DataError, match="--task_name pos, but the tags are IOB"):
        prepared_tags({"train": [s.tags for s in sentences]}, "auto", "pos")
    path.write_text("EU B-NP B-ORG\n", encoding="utf-8")
    with pytest.raises(DataError, match="needs tag column 5, but the file has 3 columns"):
        read_conll(path, "chunk", label_column="5")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_file(tmp_path / "nope.txt", "ner")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        read_file(tmp_path / "empty.txt", "ner")


def test_jsonl_and_json_and_csv(tmp_path):
    rows = [{"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"]}, {"tokens": ["Peter"], "ner_tags": ["B-PER"]}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    (tmp_path / "a.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "a.csv").write_text('tokens,ner_tags\n"[""EU"", ""rejects""]","[""B-ORG"", ""O""]"\n'
                                    "\"['Peter']\",\"['B-PER']\"\n", encoding="utf-8")
    for name in ("a.jsonl", "a.json", "a.csv"):
        got = read_file(tmp_path / name, "ner")
        assert [(s.words, s.tags) for s in got] == [(r["tokens"], r["ner_tags"]) for r in rows], name


def test_json_column_fallback_to_first_and_second(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"w": ["EU"], "t": ["B-ORG"]}), encoding="utf-8")
    assert read_file(tmp_path / "a.jsonl", "ner")[0].tags == ["B-ORG"]


def test_json_length_mismatch_names_row(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"tokens": ["a"], "ner_tags": ["O"]}) + "\n"
                    + json.dumps({"tokens": ["a", "b"], "ner_tags": ["O"]}), encoding="utf-8")
    with pytest.raises(DataError, match=r"a.jsonl:2: 'tokens' has 2 items but 'ner_tags' has 1"):
        read_file(path, "ner")


def test_csv_string_cell_is_an_error(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("tokens,ner_tags\nEU rejects,B-ORG O\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"a.csv:2: 'tokens' must be a list"):
        read_file(path, "ner")


def test_data_dir_with_generic_names(tmp_path):
    for name in ("train.txt", "validation.txt"):
        (tmp_path / name).write_text("EU B-ORG\n")
    found = find_split_files(tmp_path)
    assert set(found) == {"train", "validation"}
    with pytest.raises(DataError, match="no training file"):
        find_split_files(tmp_path / "..")


def test_data_dir_with_ud_treebank_names(tmp_path):
    row = "1\tEU\tEU\tPROPN\tNNP\t_\t0\troot\t_\t_\n\n"
    for split in ("train", "dev", "test"):
        (tmp_path / f"en_ewt-ud-{split}.conllu").write_text(row, encoding="utf-8")
    found = find_split_files(tmp_path)
    assert found == {"train": tmp_path / "en_ewt-ud-train.conllu", "validation": tmp_path / "en_ewt-ud-dev.conllu",
                     "test": tmp_path / "en_ewt-ud-test.conllu"}
    assert read_file(found["train"], "pos")[0].tags == ["PROPN"]
    (tmp_path / "en_gum-ud-train.conllu").write_text(row, encoding="utf-8")
    with pytest.raises(DataError, match=r"2 files match \*-ud-train: en_ewt-ud-train\.conllu, en_gum-ud-train\.conllu"):
        find_split_files(tmp_path)


@needs_conll
def test_real_conll2003_sentence_and_entity_counts():
    files = find_split_files(SHARED_CONLL)
    sentences = {split: read_file(path, "ner") for split, path in files.items()}
    assert {k: len(v) for k, v in sentences.items()} == {"train": 14041, "validation": 3250, "test": 3453}
    tags, labels = prepared_tags({k: [s.tags for s in v] for k, v in sentences.items()}, "auto", "ner")
    counts = {split: Counter(t[2:] for ts in split_tags for t in ts if t.startswith("B-"))
              for split, split_tags in tags.items()}
    assert counts["train"] == {"PER": 6600, "LOC": 7140, "ORG": 6321, "MISC": 3438}
    assert counts["validation"] == {"PER": 1842, "LOC": 1837, "ORG": 1341, "MISC": 922}
    assert counts["test"] == {"PER": 1617, "LOC": 1668, "ORG": 1661, "MISC": 702}
    assert labels.names == ("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER")


def test_hub_style_dataset_with_classlabel_tags(tmp_path):
    """A dataset loaded by `datasets.load_dataset` (here a local folder of parquet files, as the Hub
    serves them): ClassLabel ids become tag names, and the column fallback works."""
    import datasets
    from tokclf.data.arrow_data import hub_splits

    names = ["O", "B-PER", "I-PER"]
    features = datasets.Features({"id": datasets.Value("string"),
                                  "tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names))})
    rows = {"id": ["0", "1"], "tokens": [["John", "Smith", "said"], ["hi"]], "ner_tags": [[1, 2, 0], [0]]}
    for split in ("train", "validation"):
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / f"{split}.parquet"))
    splits = hub_splits(str(tmp_path), None, "ner", None, None)
    assert set(splits) == {"train", "validation"}
    assert splits["train"].sentences[0].words == ["John", "Smith", "said"]
    assert splits["train"].sentences[0].tags == ["B-PER", "I-PER", "O"]


def test_sentence_with_zero_words_is_named(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"tokens": ["EU"], "ner_tags": ["B-ORG"]}\n{"tokens": [], "ner_tags": []}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"a.jsonl:2: a sentence with no words"):
        read_file(path, "ner")
