"""The seed notebook's pipeline, as a contender: transformers.Trainer fine-tuning for NER.

Tokenise with truncation, label every sub-token (label_all_tokens=True as in the notebook), pad with
DataCollatorForTokenClassification, TrainingArguments with the notebook's values (lr 2e-5, weight
decay 0.01; evaluation each epoch, which for a run shorter than an epoch is one evaluation at the end,
called explicitly here), scored with seqeval on sub-tokens as the notebook does. Writes a
JSON of its measurements. Run by bench/run.py; `--group_by_length` gives contender (c).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tokenized_splits(model: str, data_dir: str):
    """Train and validation splits tokenized as the notebook does it (every sub-token labelled)."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    # only to read the same CoNLL files, with the same labels
    from tokclf.data.arrow_data import file_split
    from tokclf.formats.base import Reading
    from tokclf.data.split_files import find_split_files
    from tokclf.data.tag_columns import prepare_columns

    files = find_split_files(data_dir)
    splits = {k: file_split(files[k], Reading(task="ner")) for k in ("train", "validation")}
    gold, labels = prepare_columns(splits, "auto", "ner")
    tags = {k: [list(t) for t in g] for k, g in gold.items()}
    tokenizer = AutoTokenizer.from_pretrained(model)

    def tokenize_and_align(batch):  # the notebook's function, label_all_tokens=True
        enc = tokenizer(batch["tokens"], truncation=True, is_split_into_words=True)
        enc["labels"] = [[-100 if word is None else labels.label2id[word_tags[word]] for word in enc.word_ids(batch_index=i)]
                         for i, word_tags in enumerate(batch["tags"])]
        return enc

    datasets = {k: Dataset.from_dict({"tokens": splits[k].dataset["words"], "tags": tags[k]})
                .map(tokenize_and_align, batched=True, remove_columns=["tokens", "tags"]) for k in splits}
    return datasets, labels, tokenizer


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser()
    for name in ("--model", "--data_dir", "--output"):
        parser.add_argument(name, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--group_by_length", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (for GPUs)")
    args = parser.parse_args()

    from seqeval.metrics import f1_score
    from transformers import (AutoModelForTokenClassification, DataCollatorForTokenClassification, Trainer,
                              TrainingArguments, set_seed)

    datasets, labels, tokenizer = tokenized_splits(args.model, args.data_dir)
    label2id = labels.label2id
    # The notebook builds the model before Trainer seeds anything, so its new head differs run to run
    # (validation F1 after 150 steps spread 0.25-0.35 over two runs). Seeded here, as tokclf seeds it.
    set_seed(args.seed)
    model = AutoModelForTokenClassification.from_pretrained(args.model, num_labels=len(labels.names),
                                                            id2label=labels.id2label, label2id=label2id)
    training_args = TrainingArguments(
        output_dir=str(Path(args.output).with_suffix("")), per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, learning_rate=2e-5, weight_decay=0.01, max_steps=args.steps,
        eval_strategy="no", save_strategy="no", report_to=[], seed=args.seed, use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy="group_by_length" if args.group_by_length else "random", disable_tqdm=True, bf16=args.bf16,
        logging_strategy="no")

    def compute_metrics(prediction):
        predictions, gold = np.argmax(prediction.predictions, axis=2), prediction.label_ids
        pred = [[labels.names[p] for p, g in zip(ps, gs) if g != -100] for ps, gs in zip(predictions, gold)]
        true = [[labels.names[g] for g in gs if g != -100] for gs in gold]
        return {"f1": f1_score(true, pred)}

    class CountingTrainer(Trainer):
        """Counts real and padded positions of every training batch (sums stay on the device)."""
        real = torch.zeros((), dtype=torch.long)
        padded = 0

        def training_step(self, model, inputs, num_items_in_batch=None):
            CountingTrainer.real = CountingTrainer.real + inputs["attention_mask"].sum().cpu()
            CountingTrainer.padded += inputs["attention_mask"].numel()
            return super().training_step(model, inputs, num_items_in_batch)

    trainer = CountingTrainer(model=model, args=training_args, train_dataset=datasets["train"],
                              eval_dataset=datasets["validation"], data_collator=DataCollatorForTokenClassification(tokenizer),
                              compute_metrics=compute_metrics)
    train_start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - train_start
    metrics = trainer.evaluate()
    real = int(CountingTrainer.real)
    trainer.save_model(str(Path(args.output).with_suffix("")) + "-model")
    tokenizer.save_pretrained(str(Path(args.output).with_suffix("")) + "-model")
    Path(args.output).write_text(json.dumps({
        "train_seconds": train_seconds, "train_real_tokens": real, "train_tokens_per_second": real / train_seconds,
        "padding_fraction": 1 - real / CountingTrainer.padded, "eval_seconds": metrics["eval_runtime"],
        "eval_sentences_per_second": len(datasets["validation"]) / metrics["eval_runtime"],
        "validation_f1_subtokens": metrics["eval_f1"], "process_seconds_inside": time.perf_counter() - started,
        "peak_gpu_memory_mib": torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() else None,
        "model_dir": str(Path(args.output).with_suffix("")) + "-model"}, indent=2))


if __name__ == "__main__":
    main()
