"""Shared fixtures: a tiny random BERT with a WordPiece tokenizer, and a small learnable NER data set
written as real CoNLL-2003-style files (IOB1 tags, -DOCSTART- lines)."""

from __future__ import annotations

import os
import random
import string
from pathlib import Path

import pytest

from helpers import NO_REPORT

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tiny test models are faster on one thread, and two threads thrash when anything else runs.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Every split goes through the datasets cache: one of this session's own, so that no run of the tests sees
# another's files (subprocesses inherit it).
if "HF_DATASETS_CACHE" not in os.environ:
    import tempfile

    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="tokclf-test-datasets-")

ROOT = Path(__file__).resolve().parents[1]
SHARED_CONLL = ROOT.parent / "shared" / "data" / "conll2003"
needs_conll = pytest.mark.skipif(
    not (SHARED_CONLL / "eng.train").is_file(),
    reason=f"the CoNLL-2003 files are not at {SHARED_CONLL} (../shared is absent on this checkout)",
)

PEOPLE = ["john", "mary", "smith", "anna", "peter", "maria", "tom", "lee"]
PLACES = ["paris", "london", "berlin", "rome", "madrid", "tokyo"]
ORGS = ["acme", "reuters", "google", "nato", "fifa", "unesco"]
FILLER = ["the", "a", "went", "to", "saw", "with", "and", "said", "in", "from", "today", "met", "visited", "."]
# Words that are not in the vocabulary and so split into several WordPiece pieces.
LONG_WORDS = ["extraordinarily", "counterintuitive", "zyxwvut"]


def make_sentence(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(word, pos, chunk, ner) rows with IOB1 NER tags: spans start with I- (B- only between two
    adjacent spans of one type)."""
    rows = []
    for _ in range(rng.randint(2, 7)):
        choice = rng.random()
        if choice < 0.45:
            rows.append((rng.choice(FILLER + LONG_WORDS), "NN", "I-NP", "O"))
            continue
        kind, pool = rng.choice([("PER", PEOPLE), ("LOC", PLACES), ("ORG", ORGS)])
        words = [rng.choice(pool) for _ in range(rng.randint(1, 2))]
        previous = rows[-1][3] if rows else "O"
        first = "B-" if previous.endswith(kind) else "I-"
        for i, word in enumerate(words):
            rows.append((word.capitalize(), "NNP", "I-NP", (first if i == 0 else "I-") + kind))
    return rows


def write_conll(path: Path, n_sentences: int, seed: int, per_doc: int = 5) -> None:
    rng = random.Random(seed)
    lines = []
    for i in range(n_sentences):
        if i % per_doc == 0:
            lines += ["-DOCSTART- -X- -X- O", ""]
        lines += [" ".join(row) for row in make_sentence(rng)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def conll_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("conll")
    write_conll(folder / "eng.train", 240, seed=1)
    write_conll(folder / "eng.testa", 61, seed=2)  # not a multiple of any batch size used
    write_conll(folder / "eng.testb", 47, seed=3)
    return folder


def build_tiny_bert(folder: Path, max_positions: int = 512, dropout: float = 0.0) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer
    import torch

    words = sorted({w for w in PEOPLE + PLACES + ORGS + FILLER})
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + chars + ["##" + c for c in chars]
    vocab = list(dict.fromkeys(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    BertModel(config).save_pretrained(folder)
    return folder


def byte_level_bpe(seed: int = 0):
    """A byte-level BPE tokenizer (as GPT-2, Llama 3 and Qwen2 use) trained here on the fixture's words."""
    from tokenizers import ByteLevelBPETokenizer

    rng = random.Random(seed)
    words = PEOPLE + PLACES + ORGS + FILLER + LONG_WORDS
    corpus = [" ".join(rng.choice(words).capitalize() if rng.random() < 0.3 else rng.choice(words)
                       for _ in range(8)) for _ in range(400)]
    bpe = ByteLevelBPETokenizer()  # no prefix space: a pre-split word then lacks the leading "Ġ"
    bpe.train_from_iterator(corpus, vocab_size=600, min_frequency=2, special_tokens=["<s>", "</s>"], show_progress=False)
    return bpe


def build_tiny_decoder(folder: Path, kind: str) -> Path:
    """A tiny random decoder (llama: a Llama-3-style tokenizer without a pad token; qwen2: Qwen2's own
    tokenizer class, which has one) that AutoModelForTokenClassification opens with a new `score` head."""
    import json

    import torch
    from transformers import (AutoModel, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config,
                              Qwen2Tokenizer)

    bpe = byte_level_bpe()
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "llama":
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>")
        config_class = LlamaConfig
    else:
        model = json.loads(bpe._tokenizer.to_str())["model"]
        tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]],
                                   eos_token="</s>", pad_token="</s>", unk_token=None)
        config_class = Qwen2Config
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = config_class(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                          bos_token_id=0, eos_token_id=1, tie_word_embeddings=False)
    AutoModel.from_config(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session", params=["llama", "qwen2"])
def tiny_decoder(request, tmp_path_factory) -> Path:
    return build_tiny_decoder(tmp_path_factory.mktemp(f"tiny-{request.param}"), request.param)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_model_with_dropout(tmp_path_factory) -> Path:
    """Dropout makes exact resume depend on restoring the RNG states too."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-dropout"), dropout=0.1)


# The two precisions the properties of training must hold in, as tokclf's flag: fp32 (`no`) where they
# hold exactly, and bf16 autocast where they hold within bf16's rounding (the tests say how much).
PRECISIONS = ("no", "bf16")


@pytest.fixture(params=["native", "none"], ids=["cpu-with-bf16-units", "cpu-without-bf16-units"])
def cpu_kind(request, monkeypatch) -> str:
    """Run the test as on a CPU with bf16 units and as on one without, whatever this machine is:
    tokclf.runtime.precision reads TOKCLF_CPU_BF16 (in this process and in the processes a test starts)."""
    from tokclf.runtime.precision import OVERRIDE_ENV

    monkeypatch.setenv(OVERRIDE_ENV, request.param)
    return request.param


@pytest.fixture
def base_args(tiny_model, conll_dir, tmp_path):
    """Command-line arguments for a quick in-process run on the tiny model and synthetic data."""
    return ["--model_name_or_path", str(tiny_model), "--data_dir", str(conll_dir), "--output_dir",
            str(tmp_path / "out"), "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "8",
            "--learning_rate", "1e-2", "--num_train_epochs", "2", "--seed", "7", "--max_length", "64",
            "--stride", "16", *NO_REPORT]


@pytest.fixture
def resume_args(tiny_model_with_dropout, conll_dir):
    """A run with dropout, accumulation and step checkpoints: what exact resume must reproduce."""
    return ["--model_name_or_path", str(tiny_model_with_dropout), "--data_dir", str(conll_dir),
            "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2", "--learning_rate", "5e-3",
            "--num_train_epochs", "4", "--checkpointing_steps", "10", "--max_length", "64", "--seed", "11",
            "--logging_steps", "5", *NO_REPORT]
