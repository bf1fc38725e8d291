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
    from accelerate.utils import GradientAccumulationPlugin

    accelerator = Accelerator(
        cpu=make_cpu_group_if_needed(),
        # The loop decides where a window ends (see loop.train_window), not the end of the data loader.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=cfg.gradient_accumulation_steps, sync_with_dataloader=False),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        log_with=cfg.report_to if cfg.with_tracking else None,
        project_dir=cfg.output_dir,
    )
    check_one_group(accelerator)
    if accelerator.mixed_precision == "bf16" and accelerator.device.type == "cpu":
        accelerator.print("warning: bf16 on a CPU is often many times slower than fp32; use --mixed_precision no.")
    return accelerator


def pad_multiple(accelerator) -> int | None:
    return 8 if accelerator.mixed_precision in ("fp16", "bf16") else None


# ----------------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(accelerator, output_dir: str, name: str, state: LoopState, cfg) -> Path:
    """accelerator.save_state plus the loop state and config, written under a temporary name and
    renamed, so a process killed mid-save never leaves a folder that resume would pick."""
    final = Path(output_dir) / name
    tmp = Path(output_dir) / f".tmp-{name}"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / LOOP_STATE_FILE).write_text(json.dumps(state.to_dict(), indent=2))
        (tmp / "args.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()
    return final


def find_checkpoint(spec: str, output_dir: str) -> Path:
    """The folder named, or for `latest` the newest complete step_N/epoch_N folder in output_dir."""
    if spec == "latest":
        candidates = [p for p in Path(output_dir).glob("*") if CHECKPOINT_NAME.match(p.name)
                      and (p / LOOP_STATE_FILE).is_file()]
        if not candidates:
            raise ConfigError(f"--resume_from_checkpoint latest: no checkpoint in {output_dir}.")
        return max(candidates, key=lambda p: json.loads((p / LOOP_STATE_FILE).read_text())["global_step"])
    path = Path(spec)
    if not (path / LOOP_STATE_FILE).is_file():
        raise ConfigError(f"--resume_from_checkpoint {spec}: not a complete checkpoint folder (no {LOOP_STATE_FILE}).")
    return path


def load_checkpoint(accelerator, path: Path) -> LoopState:
    accelerator.load_state(str(path))
    return LoopState(**json.loads((path / LOOP_STATE_FILE).read_text()))


# ----------------------------------------------------------------------------------------------------
# Results and the final model


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def write_json(path: Path, values: dict) -> None:
    path.write_text(json.dumps(values, indent=2) + "\n", encoding="utf-8")


def save_model(accelerator, model, tokenizer, output_dir: str) -> None:
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(output_dir, is_main_process=accelerator.is_main_process,
                              save_function=accelerator.save)
    if accelerator.is_main_process:
        tokenizer.save_pretrained(output_dir)


def push_to_hub(cfg, output_dir: str) -> str:
    """Upload the output folder (without checkpoints) to the Hub; the token is never written anywhere."""
    from huggingface_hub import HfApi

    api = HfApi(token=cfg.hub_token)
    repo_id = cfg.hub_model_id or Path(output_dir).resolve().name
    repo_id = api.create_repo(repo_id, exist_ok=True).repo_id
    api.upload_folder(repo_id=repo_id, folder_path=output_dir, commit_message="tokclf: final model",
                      ignore_patterns=["step_*", "epoch_*", ".tmp-*", "runs/*", "*/events.out.*"])
    return repo_id
