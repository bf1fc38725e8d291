"""Open tokenizers and token-classification models, for training (a pretrained model with a new head)
and for inference (a folder written by training: see tokclf.inference.saved_model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tokclf.arguments import ModelArguments
from tokclf.errors import ModelError
from tokclf.data.features import require_fast, require_usable_vocabulary

PACKAGE_PREFIX = "python-package:"
# Byte-level BPE tokenizers need a space before pre-split words to tokenize them as mid-sentence words.
PREFIX_SPACE_MODEL_TYPES = {"roberta", "deberta", "deberta-v2", "gpt2", "bloom", "longformer", "bart",
                            "mvp", "led", "xlm-roberta", "camembert", "gpt_neox", "codegen", "mpnet"}


def resolve_model_path(name: str) -> str:
    """A Hub id or folder as given; `python-package:PKG/SUB` → that folder inside an installed package."""
    if not name.startswith(PACKAGE_PREFIX):
        return name
    package, _, sub = name[len(PACKAGE_PREFIX):].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"{name}: Python package '{package}' is not installed (pip install {package.replace('_', '-')}).")
    folder = Path(list(spec.submodule_search_locations)[0]) / sub
    if not folder.is_dir():
        raise ModelError(f"{name}: no folder {folder}.")
    return str(folder)


def load_or_explain(what: str, loader, name: str, **kwargs):
    """loader(name, **kwargs), its failures turned into one line that names what and where. Without
    transformers' "Loading weights" bar: loading takes a second, and the bar would precede the one
    line a failing command prints."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return loader(name, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(
            f"could not load the {what} from '{name}': {first_line} "
            f"(offline? a local folder must hold config.json and the tokenizer files)."
        ) from None
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


def check_max_length(max_length: int, model_config, flag: str = "--max_length") -> None:
    """Every command refuses windows longer than the model's position table, before any work."""
    max_positions = getattr(model_config, "max_position_embeddings", None)
    if max_positions and max_length > max_positions:
        raise ModelError(f"{flag} {max_length} exceeds the model's {max_positions} positions.")


def open_tokenizer(name: str, model_type: str | None, trust_remote_code: bool = False):
    """A fast tokenizer; byte-level BPE ones get a prefix space so that pre-split words tokenize as
    mid-sentence words."""
    from transformers import AutoTokenizer

    kwargs = {"add_prefix_space": True} if model_type in PREFIX_SPACE_MODEL_TYPES else {}
    tokenizer = load_or_explain("tokenizer", AutoTokenizer.from_pretrained, name, trust_remote_code=trust_remote_code,
                                **kwargs)
    require_fast(tokenizer, name)
    require_usable_vocabulary(tokenizer, name)
    return tokenizer


def model_config(args: ModelArguments, **overrides):
    from transformers import AutoConfig

    name = resolve_model_path(args.config_name or args.model_name_or_path)
    return load_or_explain("config", AutoConfig.from_pretrained, name, trust_remote_code=args.trust_remote_code,
                           **overrides)


def load_tokenizer(args: ModelArguments):
    name = resolve_model_path(args.tokenizer_name or args.model_name_or_path)
    return open_tokenizer(name, model_config(args).model_type, args.trust_remote_code)


def load_model(args: ModelArguments, labels, max_length: int):
    """The pretrained model with a head of len(labels) outputs whose id2label/label2id hold the tag names."""
    from transformers import AutoModelForTokenClassification

    config = model_config(args, num_labels=len(labels.names), id2label=labels.id2label, label2id=labels.label2id)
    check_max_length(max_length, config)
    return load_or_explain("model", AutoModelForTokenClassification.from_pretrained,
                           resolve_model_path(args.model_name_or_path), config=config,
                           ignore_mismatched_sizes=args.ignore_mismatched_sizes,
                           trust_remote_code=args.trust_remote_code)
