"""Score one saved model two ways on one split: upstream's way (every labelled sub-token counted,
as run_ner_no_trainer.py does with --label_all_tokens) and tokclf's (each word once).

    python bench/subtoken_vs_word.py --model OUTPUT_DIR --data_dir ../shared/data/conll2003 --split validation
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from seqeval.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    args = parser.parse_args()

    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tokclf.data.batching import TokenClassificationCollator, eval_loader
    from tokclf.data.columns import EncodedColumns
    from tokclf.data.split_files import find_split_files
    from tokclf.formats.registry import read_file
    from tokclf.inference.scoring import score_tags
    from tokclf.data.features import IGNORE, encode
    from tokclf.data.labels import LabelSet
    from tokclf.data.schemes import normalise_tags, resolve_scheme

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForTokenClassification.from_pretrained(args.model).eval().to(device)
    names = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
    labels = LabelSet(names, "iob")
    sentences = read_file(find_split_files(args.data_dir)[args.split], "ner")
    raw = [s.tags for s in sentences]
    gold = normalise_tags(raw, resolve_scheme("auto", "ner", raw), args.split)
    encoded = encode(tokenizer, [s.words for s in sentences], gold, labels.label2id, 128, 32,
                     label_all_tokens=True, continuation_ids=labels.continuation_ids())
    loader = eval_loader(EncodedColumns.from_encoded(encoded), TokenClassificationCollator(tokenizer), 64)
    sub_gold, sub_pred, word_pred = [], [], {}
    with torch.no_grad():
        for batch in loader:
            index, label_ids = batch.pop("feature_index"), batch.pop("labels")
            predicted = model(**{k: v.to(device) for k, v in batch.items()}).logits.argmax(-1).cpu()
            for f, row_labels, row_pred in zip(index.tolist(), label_ids.tolist(), predicted.tolist()):
                keep = [i for i, label in enumerate(row_labels) if label != IGNORE]
                sub_gold.append([names[row_labels[i]] for i in keep])
                sub_pred.append([names[row_pred[i]] for i in keep])
                for position, word in encoded.scored_positions[f]:
                    word_pred[(encoded.sentence_of_feature[f], word)] = names[row_pred[position]]
    words = [[word_pred[(s, w)] for w in range(len(tags))] for s, tags in enumerate(gold)]
    print(json.dumps({"split": args.split, "subtoken_f1_upstream_style": f1_score(sub_gold, sub_pred),
                      "word_f1_tokclf": score_tags(gold, words, "iob")["f1"]}, indent=2))


if __name__ == "__main__":
    main()
