"""Acceptance of issue #15: CoNLL-2003 as Label Studio exports trains like the CoNLL files, and predict's
Label Studio pre-annotations equal its spans output.

    flock /tmp/tokclf-bench.lock env HF_HUB_OFFLINE=1 .venv/bin/python bench/labelstudio_roundtrip.py

1. eng.train and eng.testa → Label Studio exports (words joined by single spaces, one region per entity,
   IOB1 → IOB2 first) under --work; the sentences training reads from both forms are compared.
2. Two 300-step MiniLM runs of configs/minilm-ner-offline.yaml: on the CoNLL files, and on the exports
   with --word_split whitespace; then `tokclf evaluate` of the export run on eng.testa.
3. eng.testb as text (one sentence a line) → `predict --output_format labelstudio` and `spans` with the
   export run's model: one task per line, the same regions, value.text == text[start:end], and our
   reader gives the same spans back.
Prints the figures and writes WORK/roundtrip.json. A finished training run is reused, not rerun.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokclf.components import read_labelled_splits  # noqa: E402
from tokclf.config import parse_config  # noqa: E402
from tokclf.formats.conll import read_conll  # noqa: E402
from tokclf.data.schemes import iob1_to_iob2  # noqa: E402
from tokclf.formats.labelstudio import labelstudio_task  # noqa: E402
from tokclf.formats.registry import read_span_file  # noqa: E402
from tokclf.formats.spans import record_spans  # noqa: E402
from tokclf.formats.words import split  # noqa: E402

CONLL = ROOT.parent / "shared" / "data" / "conll2003"
RECIPE = ["--config", "configs/minilm-ner-offline.yaml"]


def export(conll_file: Path, out: Path) -> Path:
    """A Label Studio JSON export of a CoNLL file: one task per sentence, its entities as one annotation."""
    tasks = []
    for i, sentence in enumerate(read_conll(conll_file, "ner")):
        text = " ".join(sentence.words)
        task = labelstudio_task(text, *split(text, "whitespace"), iob1_to_iob2(sentence.tags), as_annotation=True)
        task["data"]["doc_id"] = sentence.doc_id
        tasks.append({"id": i + 1, **task})
    out.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return out


def data_dirs(work: Path) -> tuple[Path, Path]:
    """Folders of train + validation only (no test split: both runs evaluate the same one file each)."""
    conll, studio = work / "conll", work / "labelstudio"
    conll.mkdir(parents=True, exist_ok=True), studio.mkdir(parents=True, exist_ok=True)
    for name in ("eng.train", "eng.testa"):
        if not (conll / name).exists():
            (conll / name).symlink_to(CONLL / name)
    export(CONLL / "eng.train", studio / "train.json"), export(CONLL / "eng.testa", studio / "validation.json")
    return conll, studio


def same_training_data(conll: Path, studio: Path) -> dict:
    """What training reads (words, IOB2 tags, documents) from both forms, split by split."""
    seen = [read_labelled_splits(parse_config(RECIPE + ["--data_dir", str(d), *extra]), say=lambda _: None)
            for d, extra in ((conll, []), (studio, ["--word_split", "whitespace"]))]
    (tags_a, _, sents_a), (tags_b, _, sents_b) = seen
    return {split: {"sentences": len(sents_a[split]),
                    "same_words": [s.words for s in sents_a[split]] == [s.words for s in sents_b[split]],
                    "same_tags": tags_a[split] == tags_b[split],
                    "same_documents": [s.doc_id for s in sents_a[split]] == [s.doc_id for s in sents_b[split]]}
            for split in sents_a}


def tokclf(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tokclf", *args], cwd=ROOT, check=True)


def train(data_dir: Path, out: Path, *extra: str) -> dict:
    if not (out / "all_results.json").is_file():
        tokclf("train", *RECIPE, "--data_dir", str(data_dir), "--output_dir", str(out), *extra)
    return json.loads((out / "all_results.json").read_text())


def evaluate(model: Path, test_file: Path, out: Path) -> float:
    tokclf("evaluate", "--model", str(model), "--test_file", str(test_file), "--output_file", str(out))
    return json.loads(out.read_text())["f1"]


def regions(task: dict) -> list[tuple]:
    return [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0], r["value"]["text"])
            for r in task["predictions"][0]["result"]]


def check_predictions(model: Path, work: Path) -> dict:
    """predict labelstudio vs spans on eng.testb text, and our reader on the labelstudio file."""
    lines = [" ".join(s.words) for s in read_conll(CONLL / "eng.testb", "ner")]
    text_file = work / "testb.txt"
    text_file.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    for fmt in ("labelstudio", "spans"):
        tokclf("predict", "--model", str(model), "--input", str(text_file), "--output", str(work / f"testb.{fmt}"),
               "--output_format", fmt)
    tasks = json.loads((work / "testb.labelstudio").read_text(encoding="utf-8"))
    spans = [json.loads(line) for line in (work / "testb.spans").read_text(encoding="utf-8").splitlines()]
    records, report = read_span_file(work / "testb.labelstudio", "labelstudio", word_split="whitespace",
                                     labelstudio_source="predictions")
    return {"lines": len(lines), "tasks": len(tasks), "regions": sum(len(regions(t)) for t in tasks),
            "texts_untouched": [t["data"]["text"] for t in tasks] == lines,
            "regions_equal_spans": [regions(t) for t in tasks]
            == [[(e["start"], e["end"], e["label"], e["text"]) for e in s["entities"]] for s in spans],
            "value_text_is_text_slice": all(r[3] == t["data"]["text"][r[0]:r[1]] for t in tasks for r in regions(t)),
            "reread_equals_spans": [[(e["start"], e["end"], e["label"]) for e in s["entities"]] for s in spans]
            == [[(s.start, s.end, s.label) for s in record_spans(r)] for r in records],
            "reread_report": dict(report.counts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/tokclf-labelstudio-roundtrip"))
    work = parser.parse_args().work
    conll, studio = data_dirs(work)
    figures = {"training_data": same_training_data(conll, studio)}
    print(json.dumps(figures["training_data"]))
    conll_run = train(conll, work / "run-conll")
    studio_run = train(studio, work / "run-labelstudio", "--word_split", "whitespace")
    figures["conll_run_validation_f1"] = conll_run["eval_f1"]
    figures["labelstudio_run_validation_f1"] = studio_run["eval_f1"]
    figures["labelstudio_run_evaluate_testa_f1"] = evaluate(work / "run-labelstudio", CONLL / "eng.testa",
                                                            work / "evaluate-testa.json")
    figures["difference"] = round(abs(figures["labelstudio_run_evaluate_testa_f1"] - conll_run["eval_f1"]), 6)
    figures["predict_testb"] = check_predictions(work / "run-labelstudio", work)
    (work / "roundtrip.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
