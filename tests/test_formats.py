"""Every format of the registry, one parametrized test each: its sample reads, is detected, survives
`cat` of two exports with BOMs, compression; its writer's output reads back. And the text layer's
answers for paths that are not plain UTF-8 files."""

import bz2
import gzip
import importlib.util
import json
import lzma

import pytest

from tokclf.errors import DataError
from tokclf.formats.base import Reading, Writing
from tokclf.formats.registry import (DATA_DIR_SUFFIXES, FORMATS, OUTPUT_CHOICES, SENTENCE_CHOICES, TEXT_CHOICES,
                                     detect, iter_sentences, output_lines, read_file, read_input, text_format,
                                     write_output)
from tokclf.formats.textfile import document_id
from tokclf.records import Input, Record

BOM = "\ufeff"
WORDS = ["EU", "rejects", "German", "call"]
LABELLED = [fmt for fmt in FORMATS if fmt.sentences]
WRITERS = [fmt for fmt in FORMATS if fmt.write]
# A file that is one JSON document: `cat a b` of two is not one export.
ONE_DOCUMENT = {"labelstudio", "labelstudio-min"}


def ids(fmt):
    return fmt.name


def sample_file(tmp_path, fmt, copies=1, bom=False, name="sample"):
    """The format's sample `copies` times in a file of its first suffix, each followed by a blank line
    when there are several (as CoNLL files end)."""
    if fmt.folder:  # a folder of files (BRAT): its sample's files, once
        folder = tmp_path / name
        folder.mkdir()
        for file_name, text in fmt.sample_files.items():
            (folder / file_name).write_text((BOM if bom else "") * file_name.endswith(".txt") + text, encoding="utf-8")
        return folder
    path = tmp_path / (name + (fmt.suffixes[0] if fmt.suffixes else ".txt"))
    if fmt.binary:  # one document of bytes: no BOM, no copies
        path.write_bytes(fmt.sample_bytes())
        return path
    path.write_text((BOM if bom else "") + (fmt.sample + "\n" * (copies > 1)) * copies, encoding="utf-8")
    return path


def test_the_registry_is_consistent():
    names = [name for fmt in FORMATS for name in fmt.names]
    assert len(names) == len(set(names))
    assert all(fmt.sample and fmt.summary and (fmt.sentences or fmt.texts or fmt.write) for fmt in FORMATS)
    assert SENTENCE_CHOICES[0] == TEXT_CHOICES[0] == "auto" and "auto" not in OUTPUT_CHOICES
    assert DATA_DIR_SUFFIXES == ("", ".txt", ".conll", ".conllu", ".jsonl", ".json", ".csv", ".spacy", ".ann")  # as --data_dir looked before


@pytest.mark.parametrize("fmt", LABELLED, ids=ids)
def test_each_sample_is_detected_and_reads_to_the_sentence(tmp_path, fmt):
    path = sample_file(tmp_path, fmt)
    assert detect(path).name == fmt.name
    (sentence,) = read_file(path, "ner")
    assert sentence.words == WORDS and sentence.tags[0] == "B-ORG"


@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt.texts], ids=ids)
def test_each_sample_is_detected_by_predict_and_reads_to_its_words(tmp_path, fmt):
    path = sample_file(tmp_path, fmt)
    assert text_format(path).name == fmt.name
    (record,) = read_input(path).records
    assert record.words == WORDS and all(record.text[s:e] == w for w, (s, e) in zip(record.words, record.offsets))


@pytest.mark.parametrize("fmt", LABELLED, ids=ids)
def test_cat_of_two_exports_with_boms_trains_on_every_row(tiny_model, tmp_path, capsys, fmt):
    """`cat a b` of two exports that each start with a BOM: one BOM lands inside the file."""
    from tokclf.cli import train_main

    if fmt.binary or fmt.folder:
        pytest.skip(f"{fmt.name} is bytes or a folder: `cat` of two is no file of the format")
    a, b = sample_file(tmp_path, fmt, 2, bom=True, name="a"), sample_file(tmp_path, fmt, 3, bom=True, name="b")
    joined = tmp_path / ("train" + a.suffix)
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    if fmt.name in ONE_DOCUMENT:
        with pytest.raises(DataError, match=r"train\.json:\d+: not valid JSON"):
            read_file(joined, "ner")
        return
    assert [s.words for s in read_file(joined, "ner")] == [WORDS] * 5
    train_main(["--model_name_or_path", str(tiny_model), "--train_file", str(joined), "--output_dir",
                str(tmp_path / "out"), "--max_train_steps", "1", "--per_device_train_batch_size", "2"])
    assert "train: 5 sentences" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", WRITERS, ids=ids)
def test_each_writer_output_reads_back_to_the_same_tags(tmp_path, fmt):
    """Predict's output in each format, read back by the labelled reader the registry detects for it."""
    text_input = tmp_path / "in.txt"
    text_input.write_text("EU rejects German call\n")
    inp = read_input(text_input)
    tags = [["B-ORG", "O", "B-MISC", "O"]]
    out = tmp_path / ("out" + ("" if fmt.folder else (fmt.output_suffixes or fmt.suffixes)[0]))
    write_output(out, fmt, [(inp, tags, [[0.9] * 4])], Writing())
    back = list(iter_sentences(out, Reading(labelstudio_source="predictions")))
    assert [(s.words, s.tags) for s in back] == [(WORDS, tags[0])]


def test_label_studio_output_is_one_list_across_chunks(tmp_path):
    fmt = next(f for f in WRITERS if f.name == "labelstudio")
    record = Record(["EU"], "EU", [(0, 2)])
    chunks = [(Input([record]), [["B-ORG"]], [[1.0]]), (Input([record, record]), [["O"], ["B-ORG"]], [[1.0]] * 2)]
    tasks = json.loads("\n".join(output_lines(fmt, chunks, Writing())))
    assert [len(t["predictions"][0]["result"]) for t in tasks] == [1, 0, 1]


# ----------------------------------------------------------------------------------------------------
# What a path can be besides a plain UTF-8 file

COMPRESSIONS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


@pytest.mark.parametrize("suffix", list(COMPRESSIONS))
@pytest.mark.parametrize("fmt", LABELLED, ids=ids)
def test_compressed_files_read_as_the_file_inside(tmp_path, fmt, suffix):
    if fmt.folder:
        pytest.skip(f"{fmt.name} is a folder of files")
    plain = sample_file(tmp_path, fmt, 1 if fmt.name in ONE_DOCUMENT else 2, bom=True)
    packed = plain.with_name(plain.name + suffix)
    packed.write_bytes(COMPRESSIONS[suffix](plain.read_bytes()))
    assert detect(packed).name == fmt.name
    assert [(s.words, s.tags) for s in read_file(packed, "ner")] == [(s.words, s.tags) for s in read_file(plain, "ner")]


def test_compressed_text_for_predict_and_a_broken_archive(tmp_path):
    path = tmp_path / "notes.txt.gz"
    path.write_bytes(gzip.compress(b"EU rejects German call\n"))
    assert text_format(path).name == "text" and read_input(path).records[0].words == WORDS
    (tmp_path / "bad.conll.gz").write_bytes(b"not gzip at all\n")
    with pytest.raises(DataError, match=r"bad\.conll\.gz: cannot decompress it \(BadGzipFile"):
        read_file(tmp_path / "bad.conll.gz", "ner")


def test_zstandard_reads_or_names_the_missing_package(tmp_path):
    path = tmp_path / "train.conll.zst"
    if importlib.util.find_spec("zstandard") is None:
        path.write_bytes(b"\x28\xb5\x2f\xfd")
        with pytest.raises(DataError, match=r"train\.conll\.zst: a Zstandard-compressed file, and the `zstandard` "
                                            r"package is not installed\. Install it"):
            read_file(path, "ner")
    else:
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor().compress(b"EU B-ORG\nrejects O\n"))
        assert read_file(path, "ner")[0].words == ["EU", "rejects"]


def test_a_folder_where_a_file_was_expected_is_one_line(tiny_model, tmp_path, capsys):
    from tokclf.cli import train_main

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.conll").write_text("EU B-ORG\n")
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--model_name_or_path", str(tiny_model), "--train_file", str(tmp_path / "data"),
                    "--output_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path / 'data'}: a folder, not a file (it holds "
                                               f"train.conll). Name a file in it. Only brat folders (of .txt, .ann files) "
                                               f"are read whole.")
    with pytest.raises(DataError, match=r"data: a folder, not a file .* Check --input\.$"):
        text_format(tmp_path / "data")


def test_a_file_without_the_tasks_column_is_refused(tiny_model, tmp_path, capsys):
    """--task_name chunk on rows with only ner_tags used to train the NER tags with rc 0."""
    from tokclf.cli import train_main

    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"tokens": WORDS, "ner_tags": ["B-ORG", "O", "B-MISC", "O"]}) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--model_name_or_path", str(tiny_model), "--train_file", str(path), "--task_name", "chunk",
                    "--output_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {path}: no 'chunk_tags' column for --task_name chunk (columns: ['tokens', 'ner_tags']). "
        f"Pass --task_name ner, or --label_column_name to use another column.")
    assert read_file(path, "chunk", label_column="ner_tags")[0].tags[0] == "B-ORG"  # named: used


def test_invalid_utf8_names_line_column_and_byte_offset(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"tokens": ["a"], "ner_tags": ["O"]}\n{"tokens": ["Z\xfcrich"]}\n')
    with pytest.raises(DataError) as err:
        read_file(path, "ner")
    assert str(err.value) == (f"{path}:2: not UTF-8 (byte 0xfc at column 15, byte offset 51 of the file). "
                              f"Convert the file, e.g. `iconv -f latin1 -t utf-8`.")


@pytest.mark.parametrize("row, expected", [
    ({"doc_id": 3}, 3), ({"document_id": 3}, 3), ({"doc_id": 3.0}, 3), ({}, None), ({"doc_id": None}, None)])
def test_document_ids_of_numbers(row, expected):
    assert document_id(row, "f:1") == expected


def test_document_ids_of_strings_are_stable_and_booleans_refused():
    assert document_id({"doc_id": "a"}, "f:1") == document_id({"document_id": "a"}, "f:2") != document_id(
        {"doc_id": "b"}, "f:3")
    with pytest.raises(DataError, match=r"^f:1: doc_id must be a string or a number, got true\.$"):
        document_id({"doc_id": True}, "f:1")


def test_every_commands_format_choices_come_from_the_registry():
    from tokclf.cli import evaluate_parser, predict_parser
    from tokclf.config import build_parser

    def choices(parser, flag):
        return tuple(next(a for a in parser._actions if flag in a.option_strings).choices)

    assert choices(build_parser(), "--input_format") == SENTENCE_CHOICES
    assert choices(evaluate_parser(), "--input_format") == SENTENCE_CHOICES
    assert choices(predict_parser(), "--input_format") == TEXT_CHOICES
    assert choices(predict_parser(), "--output_format") == OUTPUT_CHOICES


# ----------------------------------------------------------------------------------------------------
# A file no format accepts


def test_a_file_no_format_accepts_is_refused_naming_its_shape_and_the_formats(tiny_model, tmp_path, capsys):
    """A JSON list whose rows no format of .json accepts (the text under another key): the token rows
    reader, tried last, fails, and the error says what the file looked like and which formats there are."""
    from tokclf.cli import train_main

    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"body": "EU rejects", "entities": [[0, 2, "ORG"]]}]), encoding="utf-8")
    known = "; ".join(f"{fmt.name} ({', '.join(fmt.suffixes + ('other files',) * fmt.catch_all)})" for fmt in LABELLED)
    message = (f"{path}: not a format tokclf reads (looked like: JSON list of objects with keys body, entities and "
               f"without \"data\" or \"text\"); read as jsonl: row 0: 'body' must be a list such as [\"EU\", "
               f"\"rejects\"], got str 'EU rejects'. Known: {known}. Pass --input_format, or convert the file.")
    with pytest.raises(DataError) as err:
        read_file(path, "ner")
    assert str(err.value) == message and "labelstudio-min (.json)" in message and "conllu (.conllu" in message
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--model_name_or_path", str(tiny_model), "--train_file", str(path), "--output_dir",
                    str(tmp_path / "out")])
    assert exit_info.value.code == 2 and capsys.readouterr().err == f"error: {message}\n"
    # Named, the format's own reader answers: no guess was made.
    with pytest.raises(DataError, match=r"^[^;]*train\.json: no annotated labelstudio-min records to train on"):
        read_file(path, "ner", input_format="labelstudio-min")


def test_predict_refuses_a_file_no_format_accepts_unless_the_format_is_named(base_args, tmp_path, capsys):
    """The same file to predict, with a trained model: auto detection refuses it as training does, naming
    the formats predict reads; a named --input_format gets its reader's own error, no refusal wording."""
    from tokclf.cli import predict_main, train_main

    train_main(base_args + ["--max_train_steps", "1"])
    path, out = tmp_path / "notes.json", tmp_path / "notes.spans.jsonl"
    path.write_text(json.dumps([{"body": "EU rejects", "entities": [[0, 2, "ORG"]]}]), encoding="utf-8")
    said = (f"row 0: expected an object with a \"tokens\" list, such as {{\"tokens\": [\"EU\", \"rejects\"]}}; "
            f"got '{path.read_text()[1:-1]}'.")
    known = "; ".join(f"{fmt.name} ({', '.join(fmt.suffixes + ('other files',) * fmt.catch_all)})"
                      for fmt in FORMATS if fmt.texts)
    message = (f"{path}: not a format tokclf reads (looked like: JSON list of objects with keys body, entities and "
               f"without \"data\" or \"text\"); read as jsonl: {said} Known: {known}. Pass --input_format, or "
               f"convert the file.")
    assert "text (other files)" in known and "docbin (.spacy)" in known
    with pytest.raises(DataError) as err:
        read_input(path)
    assert str(err.value) == message
    argv = ["--model", str(tmp_path / "out"), "--input", str(path), "--output", str(out)]
    for named, expected in ((None, message), ("jsonl", f"{path}:{said}")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            predict_main(argv + (["--input_format", named] if named else []))
        assert exit_info.value.code == 2 and capsys.readouterr().err == f"error: {expected}\n"
        assert not out.exists() and not out.with_name(f".{out.name}.partial").exists()
