"""LoRA adapters through peft: wrap a token classifier so that only low-rank updates of some of its
layers and its whole classifier head train, then save, reload and merge them.

An adapter run's output folder (tokclf.runtime.outdir names the folders):

    OUTPUT_DIR/          the merged model (--merge_adapter, the default): config.json, model.safetensors,
                         tokenizer. A plain transformers folder, so pipeline(), `tokclf evaluate|predict`,
                         the Hub widget and every other consumer load it without peft, as after full
                         fine-tuning.
      adapter/           the adapter: adapter_config.json, adapter_model.safetensors (LoRA matrices and
                         the head), the base model's config.json with the labels, and the tokenizer:
                         what peft's PeftModel.from_pretrained(base, "OUTPUT_DIR/adapter") loads.
      best/              the best evaluation's adapter, same files.

The adapter sits in a folder of its own because transformers treats a folder holding
adapter_config.json as "load the base model named there, then this adapter": next to merged weights
it would apply the update twice.

peft is an optional dependency (`pip install 'tokclf[lora]'`); nothing here imports it before an
adapter is asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tokclf.arguments import help_field
from tokclf.checks import at_least, finite, fraction
from tokclf.errors import ConfigError, ModelError
from tokclf.runtime.model import PACKAGE_PREFIX, load_or_explain, resolve_model_path
from tokclf.runtime.outdir import OutputDir

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# The head names peft's TOKEN_CLS model saves in full (PeftModelForTokenClassification's modules_to_save).
HEAD_NAMES = ("classifier", "score")
INSTALL_HINT = "pip install 'tokclf[lora]' (or pip install peft)"


@dataclass
class AdapterArguments:
    """LoRA adapters (peft): train small low-rank updates and the head, not the whole model."""

    _argument_group_name = "LoRA adapters (peft)"

    peft: Literal["none", "lora"] = help_field(
        "lora: freeze the pretrained model and train LoRA adapters on its layers plus the whole classifier "
        "head (peft's get_peft_model, task TOKEN_CLS). Needs peft: pip install 'tokclf[lora]'.",
        default="none",
    )
    lora_r: int = help_field("Rank of the LoRA update matrices.", default=8)
    lora_alpha: int = help_field("LoRA scaling: the update is multiplied by lora_alpha / lora_r.", default=16)
    lora_dropout: float = help_field("Dropout on the input of the LoRA matrices.", default=0.1)
    lora_target_modules: str = help_field(
        "Layers that get adapters: auto (peft's choice for the architecture, e.g. query,value for BERT and "
        "q_proj,v_proj for Llama/Qwen2/Mistral; all linear layers for one peft does not know), all-linear "
        "(every linear layer but the head), or a comma-separated list of module names (e.g. "
        "query,key,value,dense).",
        default="auto",
    )
    merge_adapter: bool = help_field(
        "Also save the model with the adapter merged in (merge_and_unload) at the top of output_dir, where "
        "pipeline() and every other consumer of a transformers model folder load it without peft. The adapter "
        "alone is in output_dir/adapter either way.",
        default=True,
    )

    def __post_init__(self):
        at_least(self, 1, "lora_r", "lora_alpha")
        finite(self, "lora_dropout")
        fraction(self, "lora_dropout")
        if not [name for name in self.lora_target_modules.split(",") if name.strip()]:
            raise ConfigError("--lora_target_modules needs auto, all-linear or module names, got nothing.")

    @property
    def enabled(self) -> bool:
        return self.peft != "none"


def require_peft(why: str = "--peft lora"):
    """The peft module, or one line naming the package and how to install it."""
    try:
        import peft
    except ImportError:
        raise ConfigError(f"{why} needs the peft package, which is not installed: {INSTALL_HINT}.") from None
    return peft


def is_adapter_model(model) -> bool:
    """Whether `model` (unwrapped) is a peft model."""
    return hasattr(model, "peft_config") and hasattr(model, "merge_and_unload")


def head_names(model) -> list[str]:
    return [name for name, _ in model.named_children() if name in HEAD_NAMES]


def target_modules(requested: str, model) -> str | list[str] | None:
    """LoraConfig's target_modules for --lora_target_modules. auto: None (peft's table for the
    architecture) where peft knows it, else all-linear. The head is never a target: it is trained in
    full, and peft cannot both adapt and save one module."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as KNOWN

    if requested == "auto":
        return None if model.config.model_type in KNOWN else "all-linear"
    if requested == "all-linear":
        return requested
    names = [name.strip() for name in requested.split(",") if name.strip()]
    heads = sorted(set(names) & set(HEAD_NAMES))
    if heads:
        raise ConfigError(f"--lora_target_modules names the classifier head ({', '.join(heads)}), which is "
                          f"trained in full; leave it out.")
    return names


def base_model_name(name: str) -> str:
    """How the adapter names its base model: a Hub id or `python-package:PKG/SUB` as given (they load
    on any machine), a local folder as an absolute path (a relative one would depend on the cwd)."""
    if name.startswith(PACKAGE_PREFIX) or not Path(name).is_dir():
        return name
    return str(Path(name).resolve())


def add_lora(model, args, base_name: str, say=print):
    """The model wrapped by get_peft_model: LoRA on the target layers, the head trained in full
    (modules_to_save), everything else frozen. `base_name` is recorded as the adapter's base model."""
    peft = require_peft()
    targets = target_modules(args.lora_target_modules, model)
    config = peft.LoraConfig(task_type=peft.TaskType.TOKEN_CLS, r=args.lora_r, lora_alpha=args.lora_alpha,
                             lora_dropout=args.lora_dropout, target_modules=targets,
                             exclude_modules=head_names(model) if targets == "all-linear" else None)
    try:
        wrapped = peft.get_peft_model(model, config)
    except ValueError as err:  # peft's "Target modules {...} not found in the base model"
        raise ConfigError(f"--lora_target_modules {args.lora_target_modules}: {str(err).splitlines()[0]} "
                          f"Name layers of this {model.config.model_type} model, or use auto.") from None
    wrapped.peft_config["default"].base_model_name_or_path = base_name
    facts = adapter_record(wrapped)
    say(f"LoRA r {args.lora_r}, alpha {args.lora_alpha}, dropout {args.lora_dropout} on "
        f"{', '.join(facts['lora_target_modules'])}; head {', '.join(head_names(model))} trained in full: "
        f"{facts['trainable_parameters']:,} of {facts['total_parameters']:,} parameters train "
        f"({100 * facts['trainable_parameters'] / facts['total_parameters']:.2f}%)")
    return wrapped


def adapter_record(model) -> dict:
    """What all_results.json and the model card say about an adapter (empty for a plain model)."""
    if not is_adapter_model(model):
        return {}
    config = model.peft_config["default"]
    trainable, total = model.get_nb_trainable_parameters()
    # the layers that got LoRA matrices (config.target_modules may still name the excluded head)
    kinds = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")})
    return {"peft": "lora", "lora_r": config.r, "lora_alpha": config.lora_alpha,
            "lora_dropout": config.lora_dropout, "lora_target_modules": kinds,
            "trainable_parameters": trainable, "total_parameters": total}


def save_adapter(model, tokenizer, folder: Path, is_main_process: bool) -> None:
    """adapter_config.json and adapter_model.safetensors (peft), and the base model's config with the
    labels (the head's shape and names) and the tokenizer, so that the folder loads on its own."""
    model.save_pretrained(str(folder), is_main_process=is_main_process)
    if is_main_process:
        model.get_base_model().config.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        (folder / "README.md").unlink(missing_ok=True)  # peft's empty template; the run's card is OUTPUT_DIR's


def trainable_names(model) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


def unwrapped_name(name: str) -> str:
    """A state-dict key without the `module.` of a DDP wrapper (checkpoints are written without it)."""
    return name.removeprefix("module.")


def checkpoint_trainable_weights_only(accelerator) -> None:
    """An adapter run's checkpoints hold the weights that train (LoRA matrices, head), not the frozen
    base model, which the resuming run loads from the base again: for MiniLM 1 MiB instead of 87 MiB
    per checkpoint, for a 7B base megabytes instead of 28 GB. Optimizer, schedule and RNG states are
    saved as always."""

    def keep_trainable(models, weights, output_dir):
        for i, model in enumerate(models):
            unwrapped = accelerator.unwrap_model(model)
            if is_adapter_model(unwrapped):
                trainable = trainable_names(unwrapped)
                weights[i] = {name: value for name, value in weights[i].items() if unwrapped_name(name) in trainable}

    accelerator.register_save_state_pre_hook(keep_trainable)


def load_state_options(accelerator, model, folder: Path) -> dict:
    """accelerator.load_state's options for a checkpoint: an adapter run's holds only the weights
    that train (strict=False would also pass a checkpoint lacking some: refuse that first)."""
    from accelerate.utils import SAFE_WEIGHTS_NAME
    from safetensors import safe_open

    unwrapped = accelerator.unwrap_model(model)
    if not is_adapter_model(unwrapped):
        return {}
    with safe_open(str(folder / SAFE_WEIGHTS_NAME), framework="pt") as saved:
        missing = sorted(trainable_names(unwrapped) - {unwrapped_name(name) for name in saved.keys()})
    if missing:
        raise ConfigError(f"cannot resume from {folder}: it lacks {len(missing)} of the adapter's weights (e.g. "
                          f"{missing[0]}); it was written by a run with other --peft/--lora_* options.")
    return {"strict": False}


def load_adapter_weights(model, folder: Path) -> None:
    """Put the adapter saved in `folder` (LoRA matrices and head) into the peft model `model`."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(folder / ADAPTER_WEIGHTS), device="cpu"))


def merged(model):
    """The base model with the adapter merged into its weights, LoRA layers removed (peft's
    merge_and_unload). In place: the peft model is not usable afterwards."""
    return model.merge_and_unload()


def adapter_folder(folder: Path) -> Path | None:
    """The adapter folder a command was given: `folder` itself (OUTPUT_DIR/adapter, best/), or
    OUTPUT_DIR/adapter of a run saved without the merged model; None for a plain model folder."""
    if (folder / ADAPTER_CONFIG).is_file():
        return folder
    adapter = OutputDir(folder).adapter
    if not (folder / "config.json").is_file() and (adapter / ADAPTER_CONFIG).is_file():
        return adapter
    return None


def open_adapter(folder: Path, config, flag: str = "--model"):
    """The base model named in the adapter's config with the adapter loaded and merged in (inference
    runs one set of weights, as fast as the merged model). `config` is the folder's config.json."""
    from transformers import AutoModelForTokenClassification

    peft = require_peft(f"{flag} {folder} holds a LoRA adapter; loading it")
    base = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ModelError(f"{flag} {folder}: {ADAPTER_CONFIG} names no base_model_name_or_path.")
    model = load_or_explain("adapter's base model", AutoModelForTokenClassification.from_pretrained,
                            resolve_model_path(base), config=config)
    model = merged(peft.PeftModel.from_pretrained(model, str(folder)))
    # peft froze every weight; unfrozen as in any loaded model, which is what evaluate and predict prepare
    # (in several processes DDP refuses a model without a parameter that requires a gradient)
    return model.requires_grad_(True)
