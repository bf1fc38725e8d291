"""Load the tokenizer and a token-classification model whose labels carry the tag names."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tokclf.errors import ModelError
from tokclf.features import require_fast, require_usable_vocabulary

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


def _load(what, loader, name, **kwargs):
    try:
        return loader(name, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(
            f"could not load the {what} from '{name}': {first_line} "
            f"(offline? a local folder must hold config.json and the tokenizer files)."
        ) from None


def load_tokenizer(cfg):
    from transformers import AutoConfig, AutoTokenizer

    name = resolve_model_path(cfg.tokenizer_name or cfg.model_name_or_path)
    model_config = _load("config", AutoConfig.from_pretrained, resolve_model_path(cfg.config_name or cfg.model_name_or_path),
                         trust_remote_code=cfg.trust_remote_code)
    kwargs = {"add_prefix_space": True} if model_config.model_type in PREFIX_SPACE_MODEL_TYPES else {}
    tokenizer = _load("tokenizer", AutoTokenizer.from_pretrained, name, trust_remote_code=cfg.trust_remote_code,
                      **kwargs)
    require_fast(tokenizer, name)
    require_usable_vocabulary(tokenizer, name)
    return tokenizer


def load_model(cfg, labels):
    """The model with a head of len(labels) outputs and id2label/label2id holding the tag names."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    path = resolve_model_path(cfg.model_name_or_path)
    config = _load("config", AutoConfig.from_pretrained, resolve_model_path(cfg.config_name or cfg.model_name_or_path),
                   num_labels=len(labels.names), id2label=labels.id2label, label2id=labels.label2id,
                   trust_remote_code=cfg.trust_remote_code)
    max_positions = getattr(config, "max_position_embeddings", None)
    if max_positions and cfg.max_length > max_positions:
        raise ModelError(f"--max_length {cfg.max_length} exceeds the model's {max_positions} positions.")
    return _load("model", AutoModelForTokenClassification.from_pretrained, path, config=config,
                 ignore_mismatched_sizes=cfg.ignore_mismatched_sizes, trust_remote_code=cfg.trust_remote_code)
