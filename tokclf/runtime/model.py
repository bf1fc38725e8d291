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


def open_tokenizer(name: str, model_type: str | None, trust_remote_code: bool = False, say=print):
    """A fast tokenizer that pads on the right (scored positions count from a window's start) and with
    a pad token (decoder models often have none: their EOS token then pads, masked out), and that splits
    a pre-split word as it splits the same word mid-sentence (byte-level BPE needs the prefix space)."""
    from transformers import AutoTokenizer

    kwargs = {"add_prefix_space": True} if model_type in PREFIX_SPACE_MODEL_TYPES else {}
    tokenizer = load_or_explain("tokenizer", AutoTokenizer.from_pretrained, name, trust_remote_code=trust_remote_code,
                                **kwargs)
    require_fast(tokenizer, name)
    require_usable_vocabulary(tokenizer, name)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"{name}: its tokenizer has neither a pad token nor an EOS token to pad with; give "
                             f"--tokenizer_name of one that has.")
        tokenizer.pad_token = tokenizer.eos_token
        say(f"the tokenizer has no pad token: padding with its EOS token {tokenizer.eos_token!r} "
            f"(masked out of attention and loss)")
    require_word_pieces_as_in_text(tokenizer, name, say)
    return tokenizer


PROBE_WORDS = ["the", "house"]


def word_pieces(tokenizer) -> tuple[list[str], list[str]]:
    """The pieces of PROBE_WORDS[1] given as a pre-split word, and inside the sentence as text."""
    presplit = tokenizer(PROBE_WORDS, is_split_into_words=True, add_special_tokens=False)
    alone = [piece for piece, word in zip(presplit.tokens(), presplit.word_ids()) if word == 1]
    first = len(tokenizer(PROBE_WORDS[0], add_special_tokens=False).tokens())
    return alone, tokenizer(" ".join(PROBE_WORDS), add_special_tokens=False).tokens()[first:]


def require_word_pieces_as_in_text(tokenizer, name: str, say=print) -> None:
    """Training sees pre-split words, pipeline() and predict sentences: both must give a word the same
    pieces. A byte-level BPE tokenizer (GPT-2, Llama 3, Qwen2) marks a mid-sentence word by its leading
    space ("Ġhouse"), which a pre-split word lacks unless the pre-tokenizer adds it: set it there
    (transformers' add_prefix_space reaches only some tokenizer classes); refuse where it cannot be set."""
    alone, in_text = word_pieces(tokenizer)
    if alone == in_text:
        return
    if set_prefix_space(tokenizer.backend_tokenizer):
        tokenizer.add_prefix_space = tokenizer.init_kwargs["add_prefix_space"] = True  # saved with the tokenizer
        alone, in_text = word_pieces(tokenizer)
        if alone == in_text:
            say(f"the tokenizer puts a space before each word (add_prefix_space), as in running text: "
                f"{PROBE_WORDS[1]!r} -> {alone}")
            return
    raise ModelError(f"{name}: its tokenizer splits a word given alone ({PROBE_WORDS[1]!r} -> {alone}) unlike the "
                     f"same word in a sentence ({in_text}), and tokclf found no pre-tokenizer whose prefix space it "
                     f"could set. Give --tokenizer_name of a tokenizer with add_prefix_space support.")


def set_prefix_space(backend) -> bool:
    """Make the backend's byte-level or metaspace pre-tokenizer prefix every word; False when it has none."""
    from tokenizers import pre_tokenizers

    found = False
    for part in pre_tokenizer_parts(backend.pre_tokenizer):
        if isinstance(part, pre_tokenizers.ByteLevel):
            part.add_prefix_space, found = True, True
        elif isinstance(part, pre_tokenizers.Metaspace):
            part.prepend_scheme, found = "always", True
    return found


def pre_tokenizer_parts(pre) -> list:
    """The pre-tokenizers a Sequence holds (references: setting theirs sets the backend's), or [pre]."""
    from tokenizers import pre_tokenizers

    if not isinstance(pre, pre_tokenizers.Sequence):
        return [] if pre is None else [pre]
    parts = []
    while True:
        try:
            parts.append(pre[len(parts)])
        except IndexError:
            return parts


def model_config(args: ModelArguments, **overrides):
    from transformers import AutoConfig

    name = resolve_model_path(args.config_name or args.model_name_or_path)
    return load_or_explain("config", AutoConfig.from_pretrained, name, trust_remote_code=args.trust_remote_code,
                           **overrides)


def load_tokenizer(args: ModelArguments, say=print):
    name = resolve_model_path(args.tokenizer_name or args.model_name_or_path)
    return open_tokenizer(name, model_config(args).model_type, args.trust_remote_code, say)


def load_model(args: ModelArguments, labels, max_length: int, pad_token_id: int | None = None):
    """The pretrained model with a head of len(labels) outputs whose id2label/label2id hold the tag names
    (and the tokenizer's pad token id where its config names none)."""
    from transformers import AutoModelForTokenClassification

    config = model_config(args, num_labels=len(labels.names), id2label=labels.id2label, label2id=labels.label2id)
    if getattr(config, "pad_token_id", None) is None and pad_token_id is not None:
        config.pad_token_id = pad_token_id
    check_max_length(max_length, config)
    return load_or_explain("model", AutoModelForTokenClassification.from_pretrained,
                           resolve_model_path(args.model_name_or_path), config=config,
                           ignore_mismatched_sizes=args.ignore_mismatched_sizes,
                           trust_remote_code=args.trust_remote_code)
