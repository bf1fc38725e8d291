"""Input faults that used to pass silently: byte-order marks, an all-O training split, a model folder
without tokenizer files. Each must stop with a message naming the file and the fix, or be harmless."""

import shutil

import pytest

from tokclf.errors import DataError


# ----------------------------------------------------------------------------------------------------
# A model folder with weights and config but no tokenizer files


@pytest.fixture(scope="module")
def model_without_tokenizer(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("no-tokenizer")
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model / name, folder / name)
    return folder


def no_vocabulary_message(folder) -> str:
    return (f"error: {folder}: the tokenizer cannot cover ordinary text: 20 of 20 common English words "
            f"become [UNK] (a vocabulary of 5 entries), because the folder has no tokenizer.json, "
            f"tokenizer_config.json, vocab.txt. Save the tokenizer of the base model into it "
            f"(tokenizer.save_pretrained).")


def exit_code_and_error(main, argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()[-1]


def test_train_refuses_a_model_folder_without_tokenizer(model_without_tokenizer, base_args, capsys):
    from tokclf.cli import train_main

    argv = base_args + ["--model_name_or_path", str(model_without_tokenizer)]
    assert exit_code_and_error(train_main, argv, capsys) == (2, no_vocabulary_message(model_without_tokenizer))


def test_evaluate_refuses_a_model_folder_without_tokenizer(model_without_tokenizer, conll_dir, capsys):
    from tokclf.cli import evaluate_main

    argv = ["--model", str(model_without_tokenizer), "--data_dir", str(conll_dir)]
    assert exit_code_and_error(evaluate_main, argv, capsys) == (2, no_vocabulary_message(model_without_tokenizer))


def test_predict_refuses_a_model_folder_without_tokenizer(model_without_tokenizer, tmp_path, capsys):
    from tokclf.cli import predict_main

    (tmp_path / "in.txt").write_text("EU rejects German call\n", encoding="utf-8")
    argv = ["--model", str(model_without_tokenizer), "--input", str(tmp_path / "in.txt"),
            "--output", str(tmp_path / "out.jsonl")]
    assert exit_code_and_error(predict_main, argv, capsys) == (2, no_vocabulary_message(model_without_tokenizer))


def test_the_tiny_test_vocabulary_is_usable(tiny_model):
    from transformers import AutoTokenizer

    from tokclf.data.features import VOCABULARY_SAMPLE, require_usable_vocabulary

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    require_usable_vocabulary(tokenizer, str(tiny_model))  # raises ModelError if refused
    pieces = tokenizer(list(VOCABULARY_SAMPLE), add_special_tokens=False)["input_ids"]
    assert len(tokenizer) < 200 and not any(tokenizer.unk_token_id in ids for ids in pieces)


# ----------------------------------------------------------------------------------------------------
# Byte-order marks

BOM = "\ufeff"
CONLL = "-DOCSTART- -X- -X- O\n\nEU NNP I-NP B-ORG\nrejects VBZ I-VP O\n\nPeter NNP I-NP B-PER\n"


def write(path, text):
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.mark.parametrize("text", [
    BOM + CONLL,  # before -DOCSTART-
    BOM + CONLL.split("\n\n", 1)[1],  # before the first word
    CONLL.replace("\nPeter", "\n" + BOM + "Peter"),  # inside: `cat a.conll b.conll` joins
])
def test_conll_bom_is_no_word_and_no_sentence(tmp_path, text):
    from tokclf.formats.conll import read_conll

    sentences = read_conll(write(tmp_path / "bom.conll", text), "ner")
    assert [s.words for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER"]]


def test_conll_of_only_a_bom_is_empty(tmp_path):
    from tokclf.formats.registry import read_file

    with pytest.raises(DataError, match=r"only.conll: the file is empty\.$"):
        read_file(write(tmp_path / "only.conll", BOM + "\n"), "ner")


@pytest.mark.parametrize("name, text", [
    ("rows.jsonl", BOM + '{"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"], "doc_id": 3}\n'),
    ("rows.json", BOM + '[{"tokens": ["EU", "rejects"], "ner_tags": ["B-ORG", "O"], "doc_id": 3}]\n'),
    ("rows.csv", BOM + 'doc_id,tokens,ner_tags\n3,"[""EU"", ""rejects""]","[""B-ORG"", ""O""]"\n'),
])
def test_records_bom_is_no_part_of_a_row_or_column_name(tmp_path, name, text):
    from tokclf.formats.rows import read_records

    path = write(tmp_path / name, text)
    (sentence,) = read_records(path, "ner", "tokens", "ner_tags")
    assert (sentence.words, sentence.tags) == (["EU", "rejects"], ["B-ORG", "O"])
    assert sentence.doc_id == 3  # a CSV cell holds a JSON value, as the list cells do


def test_csv_bom_does_not_rename_the_first_column(tmp_path):
    from tokclf.formats.rows import read_records

    path = write(tmp_path / "rows.csv", BOM + 'tokens,ner_tags\n"[""EU""]","[""B-ORG""]"\n')
    (sentence,) = read_records(path, "ner", "tokens", None)  # used to be: no column 'tokens'
    assert sentence.words == ["EU"]


@pytest.mark.parametrize("text, fmt, words", [
    (BOM + "EU rejects it\n", "text", [["EU", "rejects", "it"]]),
    ("EU rejects it\n" + BOM + "Peter said\n", "text", [["EU", "rejects", "it"], ["Peter", "said"]]),
    (BOM + CONLL, "conll", [["EU", "rejects"], ["Peter"]]),
    (BOM + '{"tokens": ["EU"]}\n', "jsonl", [["EU"]]),
])
def test_predict_input_bom_is_no_word(tmp_path, text, fmt, words):
    from tokclf.formats.registry import read_input, text_format

    path = write(tmp_path / ("in.jsonl" if fmt == "jsonl" else "in.txt"), text)
    assert text_format(path).name == fmt
    inp = read_input(path, "auto")
    assert [r.words for r in inp.records] == words
    assert all(BOM not in r.text and r.text[s:e] == w for r in inp.records for w, (s, e) in zip(r.words, r.offsets))


# ----------------------------------------------------------------------------------------------------
# A training split that cannot train a tagger


def all_o_message(where: str) -> str:
    return (f"{where}: every tag is 'O', so the model would learn a single label. Check that the tags come from "
            f"the right column (--label_column_name; in CoNLL files a 0-based column number) and that "
            f"--task_name ner is the task of this file.")


def test_all_o_training_split_is_refused():
    from helpers import prepared_tags

    with pytest.raises(DataError) as err:
        prepared_tags({"train": [["O", "O"], ["O"]], "validation": [["B-PER"]]}, "auto", "ner")
    assert str(err.value) == all_o_message("train split")


def test_train_command_refuses_an_all_o_training_file(tiny_model, tmp_path, capsys):
    from tokclf.cli import train_main

    path = write(tmp_path / "train.conll", "EU NNP B-NP O\nrejects VBZ B-VP O\n\nPeter NNP B-NP O\n")
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--model_name_or_path", str(tiny_model), "--train_file", str(path),
                    "--output_dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: " + all_o_message(f"train split ({path})")
