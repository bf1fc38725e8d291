"""In-process end-to-end runs on the tiny BERT: learning, outputs, accumulation, stopping, windows, errors."""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import PRECISIONS, write_conll
from helpers import assert_trained_alike
from tokclf.cli import train_main
from tokclf.config import parse_config
from tokclf.training.recipe import train

UPSTREAM_KEYS = {"eval_precision", "eval_recall", "eval_f1", "eval_accuracy", "train_loss", "epoch", "step"}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run(args, *extra) -> tuple[dict, Path]:
    cfg = parse_config(list(args) + list(extra))
    return train(cfg), Path(cfg.output.output_dir)


@pytest.mark.paths
def test_training_learns_and_writes_a_usable_model(base_args):
    results, out = run(base_args, "--num_train_epochs", "8", "--learning_rate", "5e-3", "--warmup_ratio", "0.1",
                       "--logging_steps", "5")
    per_epoch = read_jsonl(out / "results.jsonl")
    assert [r["epoch"] for r in per_epoch] == list(range(8))
    assert per_epoch[-1]["train_loss"] < 0.5 * per_epoch[0]["train_loss"]
    assert per_epoch[-1]["eval_f1"] > per_epoch[0]["eval_f1"] + 0.08
    assert UPSTREAM_KEYS <= set(results)
    assert {"eval_PER_f1", "eval_PER_number", "test_f1", "test_LOC_recall"} <= set(results)
    assert results["step"] == 8 * math.ceil(240 / 16) and results["num_processes"] == 1
    assert json.loads((out / "all_results.json").read_text()) == results
    logged = read_jsonl(out / "train_log.jsonl")
    assert [r["step"] for r in logged] == list(range(5, 121, 5)) and logged[-1]["train/learning_rate"] == 0.0

    from transformers import pipeline
    config = json.loads((out / "config.json").read_text())
    assert set(config["id2label"].values()) == {"O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"}
    tagger = pipeline("token-classification", model=str(out), aggregation_strategy="simple")
    entities = tagger("John Smith went to Paris with Acme")
    assert entities and {e["entity_group"] for e in entities} <= {"PER", "LOC", "ORG"}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_accumulation_equals_one_big_batch(base_args, tiny_model, tmp_path, precision):
    """batch 8 x 4 accumulation steps == batch 32 (the window loss is normalised by its token count,
    not averaged per micro-batch), and one epoch has ceil(batches / 4) optimizer steps. Exactly in
    fp32; under bf16 within its rounding (helpers.BF16_DRIFT)."""
    common = ["--num_train_epochs", "1", "--learning_rate", "1e-3", "--train_sampling", "random",
              "--mixed_precision", precision]
    big, big_out = run(base_args, *common, "--per_device_train_batch_size", "32",
                       "--output_dir", str(tmp_path / "big"))
    small, small_out = run(base_args, *common, "--per_device_train_batch_size", "8",
                           "--gradient_accumulation_steps", "4", "--output_dir", str(tmp_path / "small"))
    assert small["step"] == big["step"] == math.ceil(math.ceil(240 / 8) / 4)
    assert big["mixed_precision"] == small["mixed_precision"] == precision
    a, b = load_file(big_out / "model.safetensors"), load_file(small_out / "model.safetensors")
    assert_trained_alike(a, b, precision, tiny_model)


def test_max_train_steps_stops_exactly_mid_epoch(base_args):
    results, out = run(base_args, "--max_train_steps", "20", "--logging_steps", "1")
    assert results["step"] == 20 and results["epoch"] == 1  # 15 steps per epoch: stopped in epoch 1
    assert [r["step"] for r in read_jsonl(out / "results.jsonl")] == [15, 20]
    lrs = [r["train/learning_rate"] for r in read_jsonl(out / "train_log.jsonl")]
    assert len(lrs) == 20 and lrs[-1] == 0.0 and lrs[0] == pytest.approx(1e-2 * 19 / 20)


def test_a_1000_word_sentence_trains_and_every_word_is_scored(base_args, tmp_path):
    data = tmp_path / "long"
    data.mkdir()
    write_conll(data / "eng.train", 40, seed=5)
    long_rows = [f"{'john' if i % 7 == 0 else 'extraordinarily'} NN I-NP {'I-PER' if i % 7 == 0 else 'O'}"
                 for i in range(1000)]
    (data / "eng.testa").write_text("\n".join(long_rows) + "\n\nthe NN I-NP O\n", encoding="utf-8")
    results, out = run(base_args, "--data_dir", str(data), "--max_length", "64", "--num_train_epochs", "1")
    assert results["eval_PER_number"] == 1000 // 7 + 1

    from tokclf.evaluate import EvaluateConfig, evaluate_saved_model
    again = evaluate_saved_model(EvaluateConfig(model=str(out), test_file=str(data / "eng.testa")))
    assert again["f1"] == results["eval_f1"] and again["accuracy"] == results["eval_accuracy"]


def test_label_all_tokens_trains_on_every_sub_token_of_a_word(base_args):
    from tokclf.components import setup_training
    from tokclf.data.features import IGNORE

    def labelled(args):
        parts = setup_training(parse_config(args), say=lambda *_: None)
        names, split = parts.labels.names, parts.splits["train"].encoded
        return [[names[label] for label in f["labels"] if label != IGNORE] for f in split.features], split

    first_only, split = labelled(base_args)
    every_piece, _ = labelled(base_args + ["--label_all_tokens"])
    # first sub-tokens only: one label per word; all tokens: one per sub-token, B- continued as I-
    assert sum(map(len, first_only)) == sum(split.words_per_sentence) < sum(map(len, every_piece))
    for words, pieces in zip(first_only, every_piece):
        assert [t for t in pieces if t.startswith("B-")] == [t for t in words if t.startswith("B-")]
    results, _ = run(base_args, "--label_all_tokens", "--num_train_epochs", "1")
    assert 0.0 <= results["eval_f1"] <= 1.0 and math.isfinite(results["train_loss"])


def one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        train_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


@pytest.mark.paths
def test_bad_inputs_give_one_clear_line(base_args, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.txt").write_text("EU NNP B-ORG\nrejects VBZ\n", encoding="utf-8")
    assert one_line_error(capsys, base_args + ["--data_dir", str(bad)]).endswith(
        "train.txt:2: expected 3 columns (as on line 1), found 2: 'rejects VBZ'. Fix or remove this line.")
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"tokens": ["a", "b"], "ner_tags": ["O"]}\n', encoding="utf-8")
    assert "rows.jsonl:1: 'tokens' has 2 items but 'ner_tags' has 1" in one_line_error(
        capsys, base_args + ["--train_file", str(rows)])
    assert "nothing.txt: no such file" in one_line_error(capsys, base_args + ["--train_file", str(tmp_path / "nothing.txt")])


def test_model_without_fast_tokenizer_is_refused(base_args, tiny_model, tmp_path, capsys):
    import shutil
    from transformers import ByT5Tokenizer
    slow = tmp_path / "slow"
    shutil.copytree(tiny_model, slow)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (slow / name).unlink(missing_ok=True)
    ByT5Tokenizer().save_pretrained(slow)
    assert "is not a fast (Rust) tokenizer" in one_line_error(capsys, base_args + ["--model_name_or_path", str(slow)])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_fused_and_plain_adamw_train_alike(base_args, tiny_model, tmp_path, precision):
    from tokclf.training.optim import fused_adamw_supported, make_optimizer

    cfg = parse_config(base_args)
    model = torch.nn.Linear(3, 2)
    assert make_optimizer(model, cfg.training, torch.device("cpu")).defaults["fused"] is fused_adamw_supported(torch.device("cpu"))
    assert make_optimizer(model, parse_config(base_args + ["--optim", "adamw_torch"]).training, torch.device("cpu")).defaults["fused"] in (None, False)
    weights = {}
    for optim in ("adamw_torch_fused", "adamw_torch"):
        out = tmp_path / optim
        run(base_args, "--optim", optim, "--max_train_steps", "8", "--weight_decay", "0.01", "--output_dir", str(out),
            "--mixed_precision", precision)
        weights[optim] = load_file(out / "model.safetensors")
    assert_trained_alike(weights["adamw_torch_fused"], weights["adamw_torch"], precision, tiny_model)


def compile_link_folder_with_space() -> str:
    from tokclf.runtime.accel import cpu_compile_link_dirs

    return next((folder for folder in cpu_compile_link_dirs() if " " in folder), "")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.skipif(bool(compile_link_folder_with_space()),
                    reason=f"torch lives under a path with a space ({compile_link_folder_with_space()!r}): inductor "
                           f"cannot link there, and tokclf refuses --torch_compile (the test below)")
def test_torch_compile_trains_like_eager_and_resumes(base_args, tiny_model, tmp_path, precision):
    """--torch_compile: same weights as eager (saved without the compile wrapper's key prefix; in bf16
    within its rounding, as inductor fuses the casts), and a compiled run resumes from its own checkpoint
    to the same end: exactly, in either precision, since the same kernels run in the same order."""
    args = base_args + ["--max_train_steps", "6", "--checkpointing_steps", "3", "--mixed_precision", precision]
    run(args, "--output_dir", str(tmp_path / "eager"))
    from torch._dynamo.utils import counters

    counters.clear()
    compiled, _ = run(args, "--torch_compile", "--output_dir", str(tmp_path / "compiled"))
    assert counters["stats"]["unique_graphs"] > 0  # dynamo really compiled the model
    eager_weights = load_file(tmp_path / "eager" / "model.safetensors")
    compiled_weights = load_file(tmp_path / "compiled" / "model.safetensors")
    assert_trained_alike(eager_weights, compiled_weights, precision, tiny_model, fp32_atol=1e-4)
    resumed, _ = run(args, "--torch_compile", "--output_dir", str(tmp_path / "compiled"),
                     "--resume_from_checkpoint", str(tmp_path / "compiled" / "step_3"))
    assert resumed["eval_f1"] == compiled["eval_f1"]
    for name, value in load_file(tmp_path / "compiled" / "model.safetensors").items():
        assert torch.allclose(value, compiled_weights[name], atol=1e-5), name


def test_torch_compile_is_refused_where_the_linker_would_split_a_path(base_args, tmp_path, monkeypatch, capsys):
    """inductor puts torch's library folder on its C++ command line unquoted: under a path with a space the
    first compiled step would fail in the linker, so training stops before it starts, in one line."""
    import tokclf.runtime.accel as accel

    monkeypatch.setattr(accel, "cpu_compile_link_dirs", lambda: ["/opt/my envs/v/lib/python3.11/site-packages/torch/lib"])
    with pytest.raises(SystemExit) as stopped:
        train_main(base_args + ["--torch_compile", "--output_dir", str(tmp_path / "out")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "'/opt/my envs/v/lib/python3.11/site-packages/torch/lib'" in error and "--torch_compile" in error, error
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_models_load_with_sdpa_attention(base_args):
    """PyTorch's fused scaled-dot-product attention, where transformers supports it for the model."""
    from tokclf.data.labels import LabelSet
    from tokclf.runtime.model import load_model

    cfg = parse_config(base_args)
    model = load_model(cfg.model, LabelSet.from_tags([["B-PER", "O"]], "iob"), cfg.data.max_length)
    assert model.config._attn_implementation == "sdpa"
