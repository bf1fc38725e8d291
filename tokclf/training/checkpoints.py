"""Checkpoints, the best model and the final model on disk: written atomically on every process,
found, pruned, checked against the resuming run and loaded back."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tokclf.runtime.adapters import (ADAPTER_WEIGHTS, is_adapter_model, load_adapter_weights, load_state_options, merged,
                             save_adapter)
from tokclf.errors import ConfigError
from tokclf.training.loop import LoopState
from tokclf.runtime.outdir import OutputDir, keep_first_lines, write_json

LOOP_STATE_FILE = "loop_state.json"  # written last: its presence marks a complete checkpoint
SIGNATURE_FILE = "run_signature.json"


def run_signature(cfg, num_processes: int, label_names, n_train_features: int) -> dict:
    """What must not change between a checkpoint and the run resuming from it."""
    data, training = cfg.data, cfg.training
    return {"model_name_or_path": cfg.model.model_name_or_path, "labels": list(label_names),
            "per_device_train_batch_size": training.per_device_train_batch_size,
            "train_sampling": training.train_sampling,
            "gradient_accumulation_steps": training.gradient_accumulation_steps,
            "num_processes": num_processes, "max_length": data.max_length, "stride": data.stride,
            "label_all_tokens": data.label_all_tokens, "context_sentences": data.context_sentences,
            "train_features": n_train_features, "seed": training.seed,
            **{key: getattr(cfg.adapter, key) for key in ("peft", "lora_r", "lora_alpha", "lora_target_modules")}}


def write_config_files(out: OutputDir, cfg) -> None:
    """args.json and config.yaml of the resolved options (token redacted); config.yaml is a valid --config."""
    import yaml

    values = cfg.to_dict()
    write_json(out.args, values)
    out.config_yaml.write_text(yaml.safe_dump({k: v for k, v in values.items() if k != "hub_token"},
                                              sort_keys=False), encoding="utf-8")


def atomic_folder(accelerator, final: Path, write) -> Path:
    """Run `write(tmp_folder)` on every process, then (main process) rename the folder into place, so a
    process killed mid-save never leaves a folder under the final name."""
    tmp, old = final.with_name(f".tmp-{final.name}"), final.with_name(f".old-{final.name}")
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
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def save_checkpoint(accelerator, out: OutputDir, name: str, state: LoopState, cfg, signature: dict) -> Path:
    """accelerator.save_state (model, optimizer, scheduler, RNG states) plus the loop state and config."""

    def write(folder: Path):
        accelerator.save_state(str(folder))
        if accelerator.is_main_process:
            write_json(folder / SIGNATURE_FILE, signature)
            write_config_files(OutputDir(folder), cfg)
            write_json(folder / LOOP_STATE_FILE, state.to_dict())  # last: marks the checkpoint complete

    return atomic_folder(accelerator, out.checkpoint(name), write)


def list_checkpoints(out: OutputDir) -> list[tuple[int, Path]]:
    """(global step, folder) of the complete checkpoints in the output folder, oldest first."""
    found = []
    for path in out.checkpoint_folders():
        if (path / LOOP_STATE_FILE).is_file():
            found.append((json.loads((path / LOOP_STATE_FILE).read_text())["global_step"], path))
    return sorted(found)


def prune_checkpoints(out: OutputDir, keep: int, protected_step) -> None:
    """Delete all but the newest `keep` checkpoints, never the one taken at the best evaluation."""
    checkpoints = list_checkpoints(out)
    for step, path in checkpoints[: max(len(checkpoints) - keep, 0)]:
        if step != protected_step:
            shutil.rmtree(path, ignore_errors=True)


def find_checkpoint(spec: str, out: OutputDir) -> Path:
    """The folder named, or for `latest` the newest complete step_N/epoch_N folder in the output folder."""
    if spec == "latest":
        checkpoints = list_checkpoints(out)
        if not checkpoints:
            raise ConfigError(f"--resume_from_checkpoint latest: no complete checkpoint in {out.root}.")
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


def load_checkpoint(accelerator, path: Path, signature: dict, model) -> LoopState:
    """The states of `path` into the prepared model, optimizer, scheduler and RNGs; the loop state."""
    check_resumable(path, signature)
    accelerator.load_state(str(path), **load_state_options(accelerator, model, path))
    return LoopState(**json.loads((path / LOOP_STATE_FILE).read_text()))


def rewind_logs(out: OutputDir, state: LoopState) -> None:
    """Drop log lines written after the checkpoint, which the resumed run writes again."""
    keep_first_lines(out.results_log, lambda i, record: i < state.evaluations)
    keep_first_lines(out.train_log, lambda i, record: record["step"] <= state.global_step)


def save_model(accelerator, model, tokenizer, folder: Path) -> None:
    """save_pretrained (safetensors) of model and tokenizer, an adapter model's adapter (see
    tokclf.runtime.adapters); called on every process."""
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    if is_adapter_model(unwrapped):
        save_adapter(unwrapped, tokenizer, folder, accelerator.is_main_process)
        return
    unwrapped.save_pretrained(str(folder), is_main_process=accelerator.is_main_process,
                              save_function=accelerator.save)
    if accelerator.is_main_process:
        tokenizer.save_pretrained(str(folder))


def save_final_model(accelerator, model, tokenizer, out: OutputDir, merge_adapter: bool) -> None:
    """The model of the finished run in OUTPUT_DIR; an adapter run's adapter in OUTPUT_DIR/adapter and,
    with `merge_adapter`, the merged model in OUTPUT_DIR. Merging is in place: call this last."""
    unwrapped = accelerator.unwrap_model(model)
    if not is_adapter_model(unwrapped):
        save_model(accelerator, model, tokenizer, out.root)
        return
    save_model(accelerator, model, tokenizer, out.adapter)
    if merge_adapter:
        save_model(accelerator, merged(unwrapped), tokenizer, out.root)


def save_best(accelerator, model, tokenizer, out: OutputDir) -> Path:
    return atomic_folder(accelerator, out.best, lambda folder: save_model(accelerator, model, tokenizer, folder))


def weights_file(accelerator, model, folder: Path) -> Path:
    """The weights file save_model writes in `folder` for this model."""
    adapter = is_adapter_model(accelerator.unwrap_model(model))
    return folder / (ADAPTER_WEIGHTS if adapter else OutputDir.weights_name)


def load_best_weights(accelerator, model, out: OutputDir) -> None:
    from safetensors.torch import load_file

    unwrapped = accelerator.unwrap_model(model)
    if is_adapter_model(unwrapped):
        load_adapter_weights(unwrapped, out.best)
        return
    weights = load_file(str(out.best / OutputDir.weights_name), device="cpu")
    unwrapped.load_state_dict(weights, strict=False)
