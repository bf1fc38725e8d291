"""Every command checks its numbers and paths before the expensive work, with the same messages:
one line on stderr, exit status 2, no traceback, and nothing evaluated or tagged first."""

import json

import pytest

import tokclf.inference.scoring
import tokclf.predict
from tokclf.cli import evaluate_main, predict_main, train_main

# `paths`: run again from a checkout under an awkward path (tests/test_checkout_path.py)
pytestmark = pytest.mark.paths


@pytest.fixture(scope="module")
def model_dir(tiny_model, tmp_path_factory):
    """A folder as training writes it: the tiny BERT with an IOB2 head and its args.json."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    names = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    folder = tmp_path_factory.mktemp("model")
    AutoModelForTokenClassification.from_pretrained(
        tiny_model, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    (folder / "args.json").write_text(json.dumps({"max_length": 64, "stride": 16, "task_name": "ner"}))
    return folder


@pytest.fixture
def no_scoring(monkeypatch):
    """Fail the test if any window reaches the model: the checks must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the command did expensive work before checking its options")

    monkeypatch.setattr(tokclf.inference.scoring, "predict_word_scores", refuse)
    monkeypatch.setattr(tokclf.predict, "predict_word_scores", refuse)


def one_line_error(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err and "\n" not in err, err
    return err


@pytest.mark.parametrize("flags, message", [
    (["--max_length", "1000"], "error: --max_length 1000 exceeds the model's 512 positions."),
    (["--learning_rate", "nan"], "error: --learning_rate must be a finite number, got nan."),
    (["--learning_rate", "0"], "error: --learning_rate must be positive, got 0.0."),
    (["--warmup_ratio", "nan"], "error: --warmup_ratio must be a finite number, got nan."),
    (["--per_device_train_batch_size", "0"], "error: --per_device_train_batch_size must be at least 1, got 0."),
    (["--max_train_samples", "0"], "error: --max_train_samples must be at least 1, got 0."),
    (["--stride", "-1"], "error: --stride must be between 0 and max_length/2 (32), got -1."),
    (["--metric_for_best_model", "eval_loss"], "error: --metric_for_best_model eval_loss: evaluation reports no such"),
    (["--metric_for_best_model", "eval_XYZ_f1"], "error: --metric_for_best_model eval_XYZ_f1: the data has no entity "
                                                 "type 'XYZ' (types: LOC, ORG, PER)."),
    (["--output_dir", "FILE"], "is a file; give a folder."),
    (["--config", "MISSING.yaml"], "error: --config MISSING.yaml: no such file."),
])
def test_train_checks_its_options_before_training(base_args, tmp_path, capsys, flags, message):
    (tmp_path / "FILE").write_text("x")
    flags = [str(tmp_path / f) if f == "FILE" else f for f in flags]
    err = one_line_error(train_main, base_args + flags, capsys)
    assert err.startswith(message) or message in err, err


@pytest.mark.parametrize("flags, message", [
    (["--max_length", "1000"], "error: --max_length 1000 exceeds the model's 512 positions."),
    (["--max_length", "0"], "error: --max_length must be at least 1, got 0."),
    (["--stride", "40"], "error: --stride must be between 0 and max_length/2 (32), got 40."),
    (["--context_sentences", "-1"], "error: --context_sentences must be at least 0, got -1."),
    (["--per_device_eval_batch_size", "0"], "error: --per_device_eval_batch_size must be at least 1, got 0."),
    (["--output_file", "FILE/sub/e.json"], "cannot create its folder"),
    (["--output_file", "."], "error: --output_file .: is a folder; give a file name."),
    (["--split", "validation", "--test_file", "MISSING"], "MISSING: no such file."),
    (["--per_device_batch_size", "4"], "error: unknown option(s): --per_device_batch_size. See tokclf evaluate --help."),
])
def test_evaluate_checks_its_options_before_evaluating(model_dir, conll_dir, tmp_path, capsys, no_scoring, flags,
                                                        message):
    (tmp_path / "FILE").write_text("x")
    flags = [str(tmp_path / f.split("/")[0]) + f[len(f.split("/")[0]):] if f.startswith(("FILE", "MISSING")) else f
             for f in flags]
    err = one_line_error(evaluate_main, ["--model", model_dir, "--data_dir", conll_dir] + flags, capsys)
    assert err.startswith(message) or message in err, err


def test_evaluate_makes_the_folder_of_its_output_file(model_dir, conll_dir, tmp_path):
    report = tmp_path / "does" / "not" / "exist" / "e.json"
    evaluate_main(["--model", str(model_dir), "--data_dir", str(conll_dir), "--output_file", str(report)])
    assert "confusion" in json.loads(report.read_text())


@pytest.mark.parametrize("flags, message", [
    (["--max_length", "1000"], "error: --max_length 1000 exceeds the model's 512 positions."),
    (["--stride", "40"], "error: --stride must be between 0 and max_length/2 (32), got 40."),
    (["--per_device_batch_size", "0"], "error: --per_device_batch_size must be at least 1, got 0."),
    (["--output", "FILE/out.jsonl"], "cannot create its folder"),
    (["--model", "MISSING"], "no such folder. Give the --output_dir of a training run."),
    (["--input", "MISSING"], "MISSING: no such file. Check --input."),
    (["--per_device_eval_batch_size", "4"], "error: unknown option(s): --per_device_eval_batch_size. See tokclf "
                                            "predict --help."),
])
def test_predict_checks_its_options_before_tagging(model_dir, tmp_path, capsys, no_scoring, flags, message):
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "in.txt").write_text("EU rejects German call\n")
    argv = {"--model": str(model_dir), "--input": str(tmp_path / "in.txt"), "--output": str(tmp_path / "o.jsonl")}
    for flag, value in zip(flags[::2], flags[1::2]):
        argv[flag] = str(tmp_path / value) if value.startswith(("FILE", "MISSING")) else value
    err = one_line_error(predict_main, [x for pair in argv.items() for x in pair], capsys)
    assert err.startswith(message) or message in err, err


@pytest.mark.parametrize("variable, kind", [("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DEEPSPEED"),
                                            ("ACCELERATE_USE_MEGATRON_LM", "MEGATRON_LM")])
@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_gpu_only_launch_is_refused_before_loading_once_per_launch(base_args, tmp_path, capsys, monkeypatch,
                                                                       variable, kind, rank):
    """What `accelerate launch` sets for such a config, in a process of a launch without GPUs: exit 2,
    one line from the first process, none from the others (they decide alike)."""
    import tokclf.components

    monkeypatch.setattr(tokclf.components, "load_tokenizer", lambda *a, **k: pytest.fail("loaded the model first"))
    monkeypatch.setenv(variable, "true")
    monkeypatch.setenv("RANK", rank)
    with pytest.raises(SystemExit) as stopped:
        train_main(base_args)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    if rank == "0":
        assert err.startswith(f"error: the launch config's distributed_type is {kind}, which needs GPUs")
        assert "launch/multi-cpu.yaml" in err and len(err.splitlines()) == 1
    else:
        assert err == ""
