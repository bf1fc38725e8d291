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
    from tokclf.predict import predict_main

    (tmp_path / "in.txt").write_text("EU rejects German call\n", encoding="utf-8")
    argv = ["--model", str(model_without_tokenizer), "--input", str(tmp_path / "in.txt"),
            "--output", str(tmp_path / "out.jsonl")]
    assert exit_code_and_error(predict_main, argv, capsys) == (2, no_vocabulary_message(model_without_tokenizer))


def test_the_tiny_test_vocabulary_is_usable(tiny_model):
    from transformers import AutoTokenizer

    from tokclf.features import require_usable_vocabulary

    require_usable_vocabulary(AutoTokenizer.from_pretrained(tiny_model), str(tiny_model))
