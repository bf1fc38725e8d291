"""LoRA adapters (--peft lora) on a tiny BERT and on tiny Llama/Qwen2 taggers: what trains, what is
saved where, that the merged model is the base model plus the adapter, that every command opens both
folders alike, and that an adapter run resumes exactly after SIGKILL."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import finish, kill_after, launch, max_weight_diff, processes_flags, read_jsonl, run_to_end
from hub_server import fake_hub, hub_online  # noqa: F401  (fixtures)
from tokclf.cli import evaluate_main, predict_main
from tokclf.config import parse_config
from tokclf.errors import ConfigError
from tokclf.training.recipe import train

pytest.importorskip("peft")
# fp32: this CPU has bf16 units, where --mixed_precision auto would pick bf16 and blur the exact comparisons.
LORA = ["--peft", "lora", "--lora_r", "4", "--mixed_precision", "no"]
SENTENCES = [["John", "went", "to", "Paris", "today", "."], ["Acme", "met", "Mary", "Smith", "in", "extraordinarily",
                                                             "Tokyo"]]


def logits_of(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(SENTENCES, is_split_into_words=True, padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def base_plus_adapter(adapter: Path):
    """The pretrained model with the saved adapter attached, not merged: what the merged model must equal."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForTokenClassification

    base_name = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = AutoModelForTokenClassification.from_pretrained(base_name, config=AutoConfig.from_pretrained(adapter))
    return PeftModel.from_pretrained(base, str(adapter))


def changed_weights(before: dict, after: dict) -> set[str]:
    return {name for name in before if not torch.equal(before[name], after[name])}


@pytest.fixture(scope="module")
def bert_run(tiny_model, conll_dir, tmp_path_factory):
    """One LoRA run of the tiny BERT, with TensorBoard: its output folder and results."""
    out = tmp_path_factory.mktemp("lora-bert") / "out"
    args = ["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--output_dir", str(out),
            "--per_device_train_batch_size", "16", "--learning_rate", "1e-2", "--num_train_epochs", "2",
            "--seed", "7", "--max_length", "64", "--stride", "16", "--logging_steps", "5", "--with_tracking",
            *LORA]
    return out, train(parse_config(args))


def test_loss_falls_and_only_the_adapter_and_head_change(bert_run, tiny_model):
    out, results = bert_run
    losses = [record["train/loss"] for record in read_jsonl(out / "train_log.jsonl")]
    assert losses[-1] < 0.8 * losses[0], losses
    assert results["peft"] == "lora" and results["lora_target_modules"] == ["query", "value"]
    assert 0 < results["trainable_parameters"] < 0.1 * results["total_parameters"]
    # The adapter holds the LoRA matrices of the targets and the whole head, nothing else.
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    kinds = {("lora" if ".lora_" in name else name.rsplit(".", 2)[-2]) for name in adapter}
    assert kinds == {"lora", "classifier"}, sorted(adapter)
    # In the merged model only the adapted layers (query, value) and the new head differ from the base.
    pretrained = {f"bert.{k}": v for k, v in load_file(Path(tiny_model) / "model.safetensors").items()}
    merged = load_file(out / "model.safetensors")
    changed = changed_weights({k: v for k, v in pretrained.items() if k in merged}, merged)
    assert changed and all(name.endswith(("query.weight", "value.weight")) for name in changed), sorted(changed)
    assert {"classifier.weight", "classifier.bias"} <= set(merged) - set(pretrained)
    assert (out / "tokclf").is_dir() and list((out / "tokclf").rglob("events.out.tfevents*"))  # TensorBoard


def test_merged_model_gives_the_logits_of_base_plus_adapter(bert_run):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    out, _ = bert_run
    tokenizer = AutoTokenizer.from_pretrained(out)
    merged = logits_of(AutoModelForTokenClassification.from_pretrained(out), tokenizer)
    unmerged = logits_of(base_plus_adapter(out / "adapter"), tokenizer)
    assert torch.allclose(merged, unmerged, atol=1e-5, rtol=0), (merged - unmerged).abs().max()


def test_pipeline_loads_the_merged_folder_without_peft(bert_run):
    out, _ = bert_run
    code = ("import sys; sys.modules['peft'] = None\n"  # import peft now fails, as where it is not installed
            "from transformers import pipeline\n"
            f"tagger = pipeline('token-classification', model={str(out)!r}, device='cpu')\n"
            "tags = tagger('John went to Paris')\n"
            "print(type(tags).__name__, tagger.model.config.num_labels, tagger.model.config.id2label[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0 and done.stdout.split()[-3:] == ["list", "7", "O"], done.stderr[-2000:]


def test_the_card_says_lora_adapter_with_its_base_and_settings(bert_run):
    from huggingface_hub import ModelCard

    out, results = bert_run
    card = ModelCard.load(out / "README.md")
    assert {"lora", "peft"} <= set(card.data.tags)
    assert "LoRA adapter" in card.text and "r 4" in card.text and "query, value" in card.text
    assert f"{results['trainable_parameters']:,}" in card.text and 'subfolder="adapter"' in card.text


def command_outputs(model: Path, conll_dir: Path, tmp: Path) -> tuple[dict, str]:
    report, tagged, text = tmp / "eval.json", tmp / "tagged.jsonl", tmp / "in.txt"
    text.write_text("John went to Paris today .\nAcme met Mary Smith in Tokyo\n")
    evaluate_main(["--model", str(model), "--data_dir", str(conll_dir), "--output_file", str(report),
                   "--inference_dtype", "fp32"])
    predict_main(["--model", str(model), "--input", str(text), "--output", str(tagged), "--inference_dtype", "fp32"])
    return json.loads(report.read_text()), tagged.read_text()


def test_evaluate_and_predict_open_the_adapter_folder_like_the_merged_one(bert_run, conll_dir, tmp_path):
    out, results = bert_run
    (tmp_path / "merged").mkdir(), (tmp_path / "adapter").mkdir()
    merged = command_outputs(out, conll_dir, tmp_path / "merged")
    adapter = command_outputs(out / "adapter", conll_dir, tmp_path / "adapter")
    assert merged[1] == adapter[1] and merged[1].count("\n") == 2
    assert merged[0]["f1"] == pytest.approx(adapter[0]["f1"]) == pytest.approx(results["test_f1"])


def test_without_peft_an_adapter_run_or_folder_is_one_clear_line(bert_run, base_args, monkeypatch):
    from tokclf.inference.saved_model import SavedModel

    out, _ = bert_run
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ImportError
    with pytest.raises(ConfigError, match=r"--peft lora needs the peft package.*pip install 'tokclf\[lora\]'"):
        train(parse_config(base_args + ["--peft", "lora"]))
    with pytest.raises(ConfigError, match=r"holds a LoRA adapter; loading it needs the peft package"):
        SavedModel.load(str(out / "adapter"))
    assert SavedModel.load(str(out)).model.config.num_labels == 7  # the merged model needs no peft


def test_all_linear_adapts_every_layer_but_the_head(base_args, tmp_path):
    out = tmp_path / "all"
    results = train(parse_config(base_args + [*LORA, "--lora_target_modules", "all-linear", "--output_dir", str(out),
                                              "--num_train_epochs", "1", "--no_merge_adapter"]))
    assert results["lora_target_modules"] == ["dense", "key", "query", "value"]
    assert not (out / "model.safetensors").exists() and (out / "adapter" / "adapter_model.safetensors").is_file()
    assert not [k for k in load_file(out / "adapter" / "adapter_model.safetensors") if "classifier.lora" in k]
    from tokclf.inference.saved_model import SavedModel

    saved = SavedModel.load(str(out))  # a folder without the merged model: its adapter/ is opened
    id2label = json.loads((out / "adapter" / "config.json").read_text())["id2label"]
    assert saved.folder == out and saved.labels.names == tuple(id2label[str(i)] for i in range(len(id2label)))
    assert saved.trained.max_length == 64  # the run's args.json, from the folder given
    assert not [name for name, _ in saved.model.named_modules() if "lora" in name]  # merged for inference


@pytest.mark.parametrize("targets, message", [
    ("query,classifier", "names the classifier head (classifier), which is trained in full; leave it out"),
    ("q_proj", "--lora_target_modules q_proj: Target modules"),
])
def test_bad_target_modules_are_refused_clearly(base_args, targets, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train(parse_config(base_args + [*LORA, "--lora_target_modules", targets]))


def test_best_model_early_stopping_and_checkpoint_limit(base_args, tmp_path):
    out = tmp_path / "run"
    results = train(parse_config(base_args + [*LORA, "--output_dir", str(out), "--num_train_epochs", "5",
                                              "--learning_rate", "1e-12", "--early_stopping_patience", "1",
                                              "--checkpointing_steps", "epoch", "--checkpoints_total_limit", "1"]))
    assert results["stopped_early"] and results["step"] == 30 and results["best_step"] == 15
    assert sorted(p.name for p in out.glob("epoch_*")) == ["epoch_0", "epoch_1"]
    # The final model is the best evaluation's adapter (best/), merged.
    assert max_weight_diff(out / "best", out / "adapter", "adapter_model.safetensors") == 0.0
    assert results["eval_f1"] == json.loads((out / "results.jsonl").read_text().splitlines()[0])["eval_f1"]


def test_in_process_resume_is_exact(resume_args, tmp_path):
    args = resume_args + [*LORA, "--final_model", "last"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(parse_config(args + ["--output_dir", str(straight)]))
    train(parse_config(args + ["--output_dir", str(resumed), "--resume_from_checkpoint", str(straight / "step_10")]))
    assert max_weight_diff(straight / "adapter", resumed / "adapter", "adapter_model.safetensors") == 0.0
    assert max_weight_diff(straight, resumed) == 0.0
    # A checkpoint holds the weights that train, not the frozen base model the resuming run loads again.
    saved = load_file(straight / "step_10" / "model.safetensors")
    assert saved and all(".lora_" in name or ".modules_to_save." in name for name in saved), sorted(saved)
    other = ["--output_dir", str(tmp_path / "other"), "--lora_target_modules", "query,key"]
    with pytest.raises(ConfigError, match="lora_target_modules: checkpoint 'auto', now 'query,key'"):
        train(parse_config(args + other + ["--resume_from_checkpoint", str(straight / "step_10")]))
    unsigned = shutil.copytree(straight / "step_10", tmp_path / "unsigned")  # one without its run signature
    (unsigned / "run_signature.json").unlink()
    with pytest.raises(ConfigError, match=r"lacks 4 of the adapter's weights \(e.g. .*key.lora_A"):
        train(parse_config(args + other + ["--resume_from_checkpoint", str(unsigned)]))


def test_bf16_autocast_trains_an_adapter(base_args, tmp_path):
    results = train(parse_config(base_args + ["--peft", "lora", "--mixed_precision", "bf16", "--output_dir",
                                              str(tmp_path / "bf16")]))
    losses = [record["train/loss"] for record in read_jsonl(tmp_path / "bf16" / "train_log.jsonl")]
    assert results["mixed_precision"] == "bf16" and losses[-1] < losses[0]


def test_push_to_hub_uploads_the_adapter_and_the_merged_model(base_args, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    cfg = parse_config(base_args + [*LORA, "--push_to_hub", "--hub_model_id", "tester/tiny-lora", "--hub_token",
                                    "hf_x0123456789abcdef", "--hub_strategy", "epoch"])
    train(cfg)
    out, uploaded = Path(cfg.output.output_dir), fake_hub.files["tester/tiny-lora"]
    for name in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "model.safetensors", "README.md"):
        assert uploaded[name] == (out / name).read_bytes(), name


def test_a_decoder_tagger_trains_merges_and_loads_everywhere(tiny_decoder, conll_dir, tmp_path, capsys):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    out = tmp_path / "out"
    results = train(parse_config(["--model_name_or_path", str(tiny_decoder), "--data_dir", str(conll_dir),
                                  "--output_dir", str(out), "--per_device_train_batch_size", "16", "--learning_rate",
                                  "1e-2", "--num_train_epochs", "2", "--max_length", "64", "--stride", "16",
                                  "--logging_steps", "5", *LORA]))
    said = capsys.readouterr().out
    assert "puts a space before each word (add_prefix_space)" in said
    assert ("no pad token: padding with its EOS token '</s>'" in said) == (tiny_decoder.name.startswith("tiny-llama"))
    losses = [record["train/loss"] for record in read_jsonl(out / "train_log.jsonl")]
    assert losses[-1] < 0.8 * losses[0], losses
    assert results["lora_target_modules"] == ["q_proj", "v_proj"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.pad_token == "</s>" and tokenizer(["Paris"], is_split_into_words=True).tokens()[-1] == "ĠParis"
    merged = logits_of(AutoModelForTokenClassification.from_pretrained(out), tokenizer)
    assert torch.allclose(merged, logits_of(base_plus_adapter(out / "adapter"), tokenizer), atol=1e-5, rtol=0)
    # The pipeline loads the merged folder and tags every token as the model's own argmax does (all tokens,
    # O included: whether a tiny model trained for 2 epochs finds an entity in this sentence is chance).
    text = "John went to Paris"
    tagged = pipeline("token-classification", model=str(out), device="cpu", ignore_labels=[])(text)
    model = AutoModelForTokenClassification.from_pretrained(out)
    encoded = tokenizer(text, return_tensors="pt", return_special_tokens_mask=True)
    with torch.no_grad():
        best = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits[0].argmax(-1)
    expected = [model.config.id2label[int(i)] for i, special in zip(best, encoded["special_tokens_mask"][0]) if not special]
    assert [token["entity"] for token in tagged] == expected and len(expected) >= 4
    (tmp_path / "m").mkdir(), (tmp_path / "a").mkdir()
    assert command_outputs(out, conll_dir, tmp_path / "m") == command_outputs(out / "adapter", conll_dir, tmp_path / "a")


def test_a_tokenizer_that_cannot_give_a_word_its_space_is_refused():
    """Pre-split words must tokenize as in running text; this one keeps the space with the next word
    (Split merged_with_next) and has no byte-level or metaspace pre-tokenizer to set."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tokclf.errors import ModelError
    from tokclf.runtime.model import require_word_pieces_as_in_text

    chars = sorted(set("the house ")) + ["[UNK]"]
    backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[], unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_next")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    with pytest.raises(ModelError, match=r"tiny: its tokenizer splits a word given alone \('house' -> \['h', "
                                         r"'o'.*unlike the same word in a sentence \(\[' ', 'h'.*--tokenizer_name"):
        require_word_pieces_as_in_text(tokenizer, "tiny")


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_sigkill_and_resume_ends_like_an_uninterrupted_run(resume_args, tmp_path, processes):
    args = resume_args + [*LORA, "--lora_dropout", "0.1"]
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    run_to_end(args + ["--output_dir", str(straight)], processes)
    kill_after(args + ["--output_dir", str(broken)], processes, broken / "step_20")
    assert not (broken / "all_results.json").exists()
    run_to_end(args + ["--output_dir", str(broken), "--resume_from_checkpoint", "latest"], processes)
    assert max_weight_diff(straight / "adapter", broken / "adapter", "adapter_model.safetensors") == 0.0
    assert max_weight_diff(straight, broken) == 0.0
    first, second = (json.loads((d / "all_results.json").read_text()) for d in (straight, broken))
    assert {k: v for k, v in first.items() if k.startswith(("eval_", "test_"))} == \
        {k: v for k, v in second.items() if k.startswith(("eval_", "test_"))}


@pytest.mark.slow
def test_two_processes_train_one_adapter_and_evaluate_it_as_one_does(tiny_model, conll_dir, tmp_path):
    """As tests/test_distributed.py for full fine-tuning: one gloo group, the same schedule, and the
    2-process adapter scores the same whether evaluated by 1 or 2 processes."""
    args = ["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--max_train_steps", "12",
            "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--max_length", "64", "--seed", "3",
            "--num_warmup_steps", "3", "--logging_steps", "1", *LORA]
    run_to_end(args + ["--output_dir", str(tmp_path / "one")], 1)
    run_to_end(args + ["--output_dir", str(tmp_path / "two")], 2)
    one, two = (read_jsonl(tmp_path / name / "train_log.jsonl") for name in ("one", "two"))
    results = json.loads((tmp_path / "two" / "all_results.json").read_text())
    assert results["num_processes"] == 2 and results["total_train_batch_size"] == 16 and results["step"] == 12
    assert [r["train/learning_rate"] for r in one] == [r["train/learning_rate"] for r in two]
    assert two[-1]["train/loss"] < two[0]["train/loss"]
    metrics = {}
    for processes in (1, 2):
        target = tmp_path / f"eval-{processes}.json"
        finish(launch(processes_flags(processes), ["evaluate", "--model", str(tmp_path / "two" / "adapter"),
                                                  "--data_dir", str(conll_dir), "--per_device_eval_batch_size", "8",
                                                  "--inference_dtype", "fp32", "--output_file", str(target)],
                      script=("-m", "tokclf")))
        metrics[processes] = json.loads(target.read_text())
    assert metrics[1] == metrics[2] and metrics[1]["f1"] == pytest.approx(results["test_f1"])
