"""The model card: OUTPUT_DIR/README.md, the page the Hub shows for a pushed model.

Its YAML metadata (written by huggingface_hub, so the Hub parses it) lists the validation and test
scores under `model-index`; the text repeats them per epoch and per entity type, with the training
options and a usage snippet. The card is meant to be public: only Hub ids go into the metadata, local
folders appear by their name alone, and of the configuration only the training knobs are shown, so
neither paths of this machine nor the Hub token can leak.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

TASK_NAMES = {"ner": "Named Entity Recognition", "pos": "Part-of-Speech Tagging", "chunk": "Chunking"}
SPLITS = {"eval": "validation", "test": "test"}  # results-key prefix -> split name
METRICS = {"precision": "Precision", "recall": "Recall", "f1": "F1", "accuracy": "Accuracy"}  # key -> name
LOCAL_DATASET = "custom"  # dataset name and type in model-index when the run names no data set
# The configuration keys the card shows, in this order. A whitelist, not a blacklist: the
# configuration also holds paths (output_dir, train_file, ...) and the Hub token.
HYPERPARAMETERS = {
    "learning_rate": "learning rate",
    "per_device_train_batch_size": "train batch size per device",
    "per_device_eval_batch_size": "eval batch size per device",
    "gradient_accumulation_steps": "gradient accumulation steps",
    "num_train_epochs": "epochs",
    "max_train_steps": "max optimizer steps",
    "lr_scheduler_type": "learning-rate scheduler",
    "num_warmup_steps": "warmup steps",
    "warmup_ratio": "warmup ratio",
    "weight_decay": "weight decay",
    "max_grad_norm": "max gradient norm",
    "seed": "seed",
    "max_length": "max length (sub-tokens per window)",
    "stride": "window stride",
    "label_all_tokens": "label all sub-tokens",
    "tag_scheme": "tag scheme",
}
RUN_FACTS = {"num_processes": "processes", "total_train_batch_size": "total train batch size",
             "step": "optimizer steps trained"}


def write_model_card(output_dir, *, results: dict, epochs: list[dict], hyperparameters: dict,
                     label_names: list[str], task: str, base_model: str, dataset: str | None,
                     license: str | None = None, repo_id: str | None = None, curves_image: str | None = None) -> Path:
    """Write OUTPUT_DIR/README.md, replacing any earlier card, and return its path.

    `results` is all_results.json, `epochs` the lines of results.jsonl, `hyperparameters` the
    resolved configuration; `repo_id` names the model in the card (default: the folder's name);
    `curves_image` is the path, relative to the folder, of the training curves' PNG (the report draws it).
    """
    output_dir = Path(output_dir)
    name = repo_id or output_dir.resolve().name
    base_id, data_id = hub_id(base_model), (hub_id(dataset) if dataset else None)
    data_name = data_id or (Path(dataset).name if dataset else LOCAL_DATASET)
    config = hyperparameters.get("dataset_config_name") if data_id else None
    data = ModelCardData(
        model_name=name,
        library_name="transformers",
        pipeline_tag="token-classification",
        tags=["token-classification", task, "tokclf"] + (["peft", "lora"] if "peft" in results else []),
        license=license,
        base_model=base_id,
        datasets=[data_id] if data_id else None,
        eval_results=eval_results(results, task, data_name, config) or None,
    )
    text = "\n\n".join(part for part in (
        f"# {name}",
        summary(results, task, base_model, base_id, dataset, data_id),
        epoch_table(epochs),
        f"![training loss, learning rate and validation F1]({curves_image})" if curves_image else "",
        *(type_table(results, prefix) for prefix in SPLITS),
        hyperparameter_list(hyperparameters, results),
        adapter_section(results, base_id or base_model, name),
        "## Labels\n\n" + ", ".join(f"`{label}`" for label in label_names),
        usage(name),
    ) if part)
    path = output_dir / "README.md"
    ModelCard(f"---\n{data.to_yaml()}\n---\n\n{text}\n").save(path)
    return path


def hub_id(name: str) -> str | None:
    """`name` if it can only mean a Hub repository, None for a local folder (one that exists, or
    a name that no Hub id can be, like an absolute path or `python-package:...`)."""
    if Path(name).expanduser().exists():
        return None
    try:
        validate_repo_id(name)
    except HFValidationError:
        return None
    return name


def splits_present(results: dict) -> dict[str, str]:
    return {prefix: split for prefix, split in SPLITS.items() if f"{prefix}_f1" in results}


def eval_results(results: dict, task: str, data_name: str, data_config: str | None) -> list[EvalResult]:
    return [
        EvalResult(task_type="token-classification", task_name=TASK_NAMES[task], dataset_type=data_name,
                   dataset_name=data_name, dataset_config=data_config, dataset_split=split,
                   metric_type=metric, metric_name=metric_name, metric_value=results[f"{prefix}_{metric}"])
        for prefix, split in splits_present(results).items()
        for metric, metric_name in METRICS.items()
    ]


def summary(results: dict, task: str, base_model: str, base_id: str | None, dataset: str | None,
            data_id: str | None) -> str:
    base = (f"[{base_id}](https://huggingface.co/{base_id})" if base_id
            else f"a local model (folder `{Path(base_model).name}`)")
    data = (f"[{data_id}](https://huggingface.co/datasets/{data_id})" if data_id
            else f"local data (folder `{Path(dataset).name}`)" if dataset else "local data")
    if task == "pos":
        meaning = ("The headline metric is **token accuracy**: POS tags are plain tags, not spans, so "
                   "precision, recall and F1 all equal it.")
    else:
        meaning = "Precision, recall and F1 score entity spans (seqeval, micro average); accuracy scores words."
    scores = "\n".join(f"- {split}: " + ", ".join(f"{name} {results[f'{prefix}_{metric}']:.4f}"
                                                   for metric, name in METRICS.items())
                       for prefix, split in splits_present(results).items())
    intro = f"{TASK_NAMES[task]} ({task}) model fine-tuned from {base} on {data} with tokclf."
    return "\n\n".join(part for part in (intro, meaning, scores) if part)


def epoch_table(epochs: list[dict]) -> str:
    """Validation scores after every epoch; empty when the run had no validation split."""
    if not epochs:
        return ""
    rows = ["## Training results", "", "| epoch | step | train loss | precision | recall | F1 | accuracy |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for record in epochs:
        scores = " | ".join(f"{record[f'eval_{metric}']:.4f}" for metric in METRICS)
        rows.append(f"| {record['epoch']} | {record['step']} | {record['train_loss']:.4f} | {scores} |")
    return "\n".join(rows)


def type_table(results: dict, prefix: str) -> str:
    """Scores per entity type of one split; empty for POS (no types) or a split not evaluated."""
    kinds = sorted(k[len(prefix) + 1: -len("_number")] for k in results
                   if k.startswith(prefix + "_") and k.endswith("_number"))
    if not kinds:
        return ""
    rows = [f"## Per type ({SPLITS[prefix]})", "", "| type | precision | recall | F1 | support |",
            "|---|---:|---:|---:|---:|"]
    for kind in kinds:
        key = f"{prefix}_{kind}"
        rows.append(f"| {kind} | {results[key + '_precision']:.4f} | {results[key + '_recall']:.4f} | "
                    f"{results[key + '_f1']:.4f} | {results[key + '_number']} |")
    return "\n".join(rows)


def hyperparameter_list(hyperparameters: dict, results: dict) -> str:
    shown = [(label, hyperparameters[key]) for key, label in HYPERPARAMETERS.items()
             if hyperparameters.get(key) is not None]
    shown += [(label, results[key]) for key, label in RUN_FACTS.items() if key in results]
    return "\n".join(["## Training hyperparameters", ""] + [f"- {label}: {value}" for label, value in shown])


def adapter_section(results: dict, base: str, name: str) -> str:
    """What a LoRA run saved (all_results.json's adapter facts): the settings and how to load the adapter."""
    if "peft" not in results:
        return ""
    share = 100 * results["trainable_parameters"] / results["total_parameters"]
    base_name = base if hub_id(base) else Path(base).name
    return "\n".join([
        "## LoRA adapter", "",
        f"Trained as a LoRA adapter (peft) on `{base_name}`: r {results['lora_r']}, alpha {results['lora_alpha']}, "
        f"dropout {results['lora_dropout']}, on the layers {', '.join(results['lora_target_modules'])}; the "
        f"classifier head trained in full. {results['trainable_parameters']:,} of "
        f"{results['total_parameters']:,} parameters trained ({share:.2f}%).", "",
        "The folder's model has the adapter merged in (it loads without peft, as below); the adapter alone is "
        "in `adapter/`:", "", "```python", "from peft import PeftModel",
        "from transformers import AutoConfig, AutoModelForTokenClassification", "",
        f'config = AutoConfig.from_pretrained("{name}", subfolder="adapter")  # the labels',
        f'base = AutoModelForTokenClassification.from_pretrained("{base_name}", config=config)',
        f'model = PeftModel.from_pretrained(base, "{name}", subfolder="adapter")', "```",
    ])


def usage(name: str) -> str:
    return "\n".join([
        "## Usage", "", "```python", "from transformers import pipeline", "",
        f'tagger = pipeline("token-classification", model="{name}", aggregation_strategy="simple")',
        'print(tagger("My name is Wolfgang and I live in Berlin."))', "```",
    ])


def write_run_card(cfg, out, results: dict, labels) -> Path:
    """OUTPUT_DIR/README.md of a training run: written at the end of every run, pushed or not."""
    data = cfg.data
    curves = out.report / "figures" / "curves.png"
    return write_model_card(out.root, results=results, epochs=out.read_results_log(),
                            hyperparameters=cfg.to_dict(), label_names=list(labels.names), task=data.task_name,
                            base_model=cfg.model.model_name_or_path,
                            dataset=data.dataset_name or data.data_dir or data.train_file,
                            repo_id=cfg.output.hub_model_id,
                            curves_image=curves.relative_to(out.root).as_posix() if curves.is_file() else None)
