"""Everything around the loop that touches processes or disk: the Accelerator, checkpoints, results,
the saved model, trackers and the Hub."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch

from tokclf.errors import ConfigError
from tokclf.loop import LoopState

CHECKPOINT_NAME = re.compile(r"^(step|epoch)_(\d+)$")
LOOP_STATE_FILE = "loop_state.json"


def _has_accelerator_device() -> bool:
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def make_cpu_group_if_needed() -> bool:
    """True for a multi-process launch on a machine without an accelerator device: then the processes
    must form one gloo (MULTI_CPU) group, which Accelerate does only when told `cpu=True`; otherwise
    each process would train alone on all the data."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _has_accelerator_device()


def check_one_group(accelerator) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != world:
        raise ConfigError(
            f"launched {world} processes but they formed a group of {accelerator.num_processes} "
            f"({accelerator.distributed_type}); each would train alone. Check the accelerate launch config."
        )


def make_accelerator(cfg):
    """An Accelerator for this launch, refusing a launch whose processes do not form one group."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState
    from accelerate.utils import GradientAccumulationPlugin, TorchDynamoPlugin

    # Only when asked: otherwise a launch config's own dynamo settings stay in force.
    compile_kwargs = {"dynamo_plugin": TorchDynamoPlugin(backend="inductor", dynamic=True)} if cfg.torch_compile else {}
    # AcceleratorState is a process-wide singleton: a second run in one process (a notebook, the tests)
    # would otherwise keep the first run's mixed precision and compile settings. The process group stays.
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        **compile_kwargs,
        cpu=make_cpu_group_if_needed(),
        # The loop decides where a window ends (see loop.train_window), not the end of the data loader.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=cfg.gradient_accumulation_steps, sync_with_dataloader=False),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        log_with=cfg.report_to if cfg.with_tracking else None,
        project_dir=cfg.output_dir,
    )
    check_one_group(accelerator)
    set_tf32(cfg, accelerator.device)
    if accelerator.mixed_precision == "bf16" and accelerator.device.type == "cpu":
        accelerator.print("warning: bf16 on a CPU is often many times slower than fp32; use --mixed_precision no.")
    return accelerator


def set_tf32(cfg, device) -> None:
    """TF32 matmuls on Ampere+ GPUs unless --tf32 false: about 8x the fp32 rate, with a 10-bit mantissa
    that fine-tuning does not notice."""
    if device.type != "cuda":
        return
    enable = torch.cuda.get_device_capability(device)[0] >= 8 and cfg.tf32 is not False
    torch.backends.cuda.matmul.allow_tf32 = enable
    torch.backends.cudnn.allow_tf32 = enable


def loader_options(cfg, device) -> dict:
    """DataLoader workers and pinned memory. No workers by default, also on a GPU: collating a batch of
    token ids is cheap, and on an H200 two workers gave a 500-step MiniLM run no gain, only start-up
    time (bench/RESULTS.md). On a GPU batches come from pinned memory."""
    on_gpu = device.type == "cuda"
    workers = cfg.dataloader_num_workers
    return {"num_workers": workers, "pin_memory": on_gpu, "persistent_workers": workers > 0}


def pad_multiple(accelerator) -> int | None:
    return 8 if accelerator.mixed_precision in ("fp16", "bf16") else None


# ----------------------------------------------------------------------------------------------------
# Checkpoints

SIGNATURE_FILE = "run_signature.json"


def run_signature(cfg, accelerator, label_names, n_train_features: int) -> dict:
    """What must not change between a checkpoint and the run resuming from it."""
    return {"model_name_or_path": cfg.model_name_or_path, "labels": list(label_names),
            "per_device_train_batch_size": cfg.per_device_train_batch_size, "train_sampling": cfg.train_sampling,
            "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
            "num_processes": accelerator.num_processes, "max_length": cfg.max_length, "stride": cfg.stride,
            "label_all_tokens": cfg.label_all_tokens, "context_sentences": cfg.context_sentences,
            "train_features": n_train_features, "seed": cfg.seed}


def write_config_files(folder: Path, cfg) -> None:
    """args.json and config.yaml of the resolved options (token redacted); config.yaml is a valid --config."""
    import yaml

    values = cfg.to_dict()
    write_json(folder / "args.json", values)
    (folder / "config.yaml").write_text(yaml.safe_dump({k: v for k, v in values.items() if k != "hub_token"},
                                                       sort_keys=False), encoding="utf-8")


def _atomic_folder(accelerator, output_dir: str, name: str, write) -> Path:
    """Run `write(tmp_folder)` on every process, then (main process) rename the folder into place, so a
    process killed mid-save never leaves a folder under the final name."""
    final, tmp = Path(output_dir) / name, Path(output_dir) / f".tmp-{name}"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    try:
        write(tmp)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written folder is useless; the older ones stay
        raise
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        old = Path(output_dir) / f".old-{name}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def save_checkpoint(accelerator, output_dir: str, name: str, state: LoopState, cfg, signature: dict) -> Path:
    """accelerator.save_state (model, optimizer, scheduler, RNG states) plus the loop state and config."""

    def write(folder: Path):
        accelerator.save_state(str(folder))
        if accelerator.is_main_process:
            write_json(folder / SIGNATURE_FILE, signature)
            write_config_files(folder, cfg)
            # Written last: its presence marks a complete checkpoint.
            write_json(folder / LOOP_STATE_FILE, state.to_dict())

    return _atomic_folder(accelerator, output_dir, name, write)


def list_checkpoints(output_dir: str) -> list[tuple[int, Path]]:
    """(global step, folder) of the complete checkpoints in output_dir, oldest first."""
    found = []
    for path in Path(output_dir).glob("*"):
        if CHECKPOINT_NAME.match(path.name) and (path / LOOP_STATE_FILE).is_file():
            found.append((json.loads((path / LOOP_STATE_FILE).read_text())["global_step"], path))
    return sorted(found)


def prune_checkpoints(output_dir: str, keep: int, protected_step) -> None:
    """Delete all but the newest `keep` checkpoints, never the one taken at the best evaluation."""
    checkpoints = list_checkpoints(output_dir)
    for step, path in checkpoints[: max(len(checkpoints) - keep, 0)]:
        if step != protected_step:
            shutil.rmtree(path, ignore_errors=True)


def find_checkpoint(spec: str, output_dir: str) -> Path:
    """The folder named, or for `latest` the newest complete step_N/epoch_N folder in output_dir."""
    if spec == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            raise ConfigError(f"--resume_from_checkpoint latest: no complete checkpoint in {output_dir}.")
        return checkpoints[-1][1]
    path = Path(spec)
    if not path.is_dir():
        raise ConfigError(f"--resume_from_checkpoint {spec}: no such folder.")
    if not (path / LOOP_STATE_FILE).is_file():
        raise ConfigError(f"--resume_from_checkpoint {spec}: an incomplete checkpoint (no {LOOP_STATE_FILE}; "
                          f"the save was interrupted). Resume from an older one or from `latest`.")
    return path


def check_resumable(path: Path, signature: dict) -> None:
    saved_file = path / SIGNATURE_FILE
    saved = json.loads(saved_file.read_text()) if saved_file.is_file() else {}
    differences = [f"{key}: checkpoint {saved.get(key)!r}, now {value!r}" for key, value in signature.items()
                   if key in saved and saved[key] != value]
    if differences:
        raise ConfigError(f"cannot resume from {path}: the run differs from the checkpoint's ("
                          + "; ".join(differences) + "). Resume with the same options or start a new output_dir.")


def load_checkpoint(accelerator, path: Path, signature: dict) -> LoopState:
    check_resumable(path, signature)
    accelerator.load_state(str(path))
    return LoopState(**json.loads((path / LOOP_STATE_FILE).read_text()))


def rewind_logs(output_dir: Path, state: LoopState) -> None:
    """Drop log lines written after the checkpoint, which the resumed run writes again."""
    results = output_dir / "results.jsonl"
    if results.is_file():
        kept = results.read_text().splitlines()[: state.evaluations]
        results.write_text("".join(line + "\n" for line in kept))
    train_log = output_dir / "train_log.jsonl"
    if train_log.is_file():
        kept = [line for line in train_log.read_text().splitlines() if json.loads(line)["step"] <= state.global_step]
        train_log.write_text("".join(line + "\n" for line in kept))


def save_best(accelerator, model, tokenizer, output_dir: str) -> Path:
    return _atomic_folder(accelerator, output_dir, "best", lambda folder: save_model(accelerator, model, tokenizer, str(folder)))


def load_best_weights(accelerator, model, output_dir: str) -> None:
    from safetensors.torch import load_file

    weights = load_file(str(Path(output_dir) / "best" / "model.safetensors"), device="cpu")
    accelerator.unwrap_model(model).load_state_dict(weights, strict=False)


# ----------------------------------------------------------------------------------------------------
# Results and the final model


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def write_json(path: Path, values: dict) -> None:
    path.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")


def save_model(accelerator, model, tokenizer, output_dir: str) -> None:
    """save_pretrained (safetensors) of model and tokenizer; called on every process."""
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(output_dir, is_main_process=accelerator.is_main_process,
                              save_function=accelerator.save)
    if accelerator.is_main_process:
        tokenizer.save_pretrained(output_dir)


def make_uploader(cfg):
    """The background Hub uploader of this run (main process only)."""
    from tokclf.hub import HubUploader

    return HubUploader(cfg.output_dir, repo_id=cfg.hub_model_id, token=cfg.hub_token,
                       private=cfg.hub_private_repo, strategy=cfg.hub_strategy)


def write_card(cfg, output_dir: Path, results: dict, labels) -> Path:
    """OUTPUT_DIR/README.md: the model card, written at the end of every run, pushed or not."""
    from tokclf.card import write_model_card

    results_file = output_dir / "results.jsonl"
    epochs = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.is_file() else []
    return write_model_card(output_dir, results=results, epochs=epochs, hyperparameters=cfg.to_dict(),
                            label_names=list(labels.names), task=cfg.task_name, base_model=cfg.model_name_or_path,
                            dataset=cfg.dataset_name or cfg.data_dir or cfg.train_file, repo_id=cfg.hub_model_id)
