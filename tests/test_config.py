"""Configuration: YAML + command line, upstream flag names, loud failures on unknown keys and types."""

from pathlib import Path

import pytest
import yaml

from tokclf.config import parse_config
from tokclf.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))

UPSTREAM_FLAGS = [
    "--model_name_or_path", "m", "--config_name", "m", "--tokenizer_name", "m", "--dataset_name", "d",
    "--dataset_config_name", "c", "--train_file", "t.json", "--validation_file", "v.json",
    "--text_column_name", "tokens", "--label_column_name", "ner_tags", "--task_name", "ner",
    "--max_length", "64", "--pad_to_max_length", "--label_all_tokens", "--per_device_train_batch_size", "4",
    "--per_device_eval_batch_size", "4", "--learning_rate", "1e-4", "--weight_decay", "0.01",
    "--num_train_epochs", "2", "--max_train_steps", "10", "--gradient_accumulation_steps", "2",
    "--lr_scheduler_type", "cosine", "--num_warmup_steps", "3", "--output_dir", "o", "--seed", "1",
    "--return_entity_level_metrics", "--debug", "--ignore_mismatched_sizes", "--trust_remote_code",
    "--checkpointing_steps", "epoch", "--resume_from_checkpoint", "latest", "--with_tracking",
    "--report_to", "tensorboard", "--push_to_hub", "--hub_model_id", "me/x", "--hub_token", "hf_x",
]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_loads_and_starts_with_its_command(path):
    cfg = parse_config(["--config", str(path)])
    values = cfg.to_dict()
    for key, value in yaml.safe_load(path.read_text()).items():  # every key lands in its group, as written
        assert values[key] == (str(value) if key == "checkpointing_steps" else value), key
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and "train_token_classification.py --config configs/" + path.name in first


def test_every_upstream_flag_is_accepted_with_its_meaning():
    cfg = parse_config(UPSTREAM_FLAGS)
    assert cfg.data.pad_to_max_length and cfg.data.label_all_tokens and cfg.data.debug and cfg.output.with_tracking
    assert cfg.training.max_train_steps == 10 and cfg.training.learning_rate == 1e-4
    assert cfg.training.lr_scheduler_type == "cosine"
    assert cfg.output.checkpointing_steps == "epoch" and cfg.output.hub_model_id == "me/x"
    assert cfg.to_dict()["hub_token"] == "***"


def test_command_line_overrides_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_name_or_path: m\ntrain_file: t.txt\nlearning_rate: 1.0e-3\ncheckpointing_steps: 50\n")
    cfg = parse_config(["--config", str(path), "--learning_rate", "2e-5"])
    assert cfg.training.learning_rate == 2e-5 and cfg.output.checkpointing_steps == "50"


def test_unknown_yaml_key_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_name_or_path: m\nlerning_rate: 1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'lerning_rate'. Did you mean 'learning_rate'"):
        parse_config(["--config", str(path)])


def test_wrong_yaml_type_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_name_or_path: m\ntrain_file: t\nper_device_train_batch_size: eight\n")
    with pytest.raises(ConfigError, match=r"key 'per_device_train_batch_size' must be int, got str"):
        parse_config(["--config", str(path)])


def test_unknown_flag_fails_loudly():
    with pytest.raises(ConfigError, match="unknown option.*--lerning_rate"):
        parse_config(["--model_name_or_path", "m", "--train_file", "t", "--lerning_rate", "1"])


def test_wrong_flag_type_and_unknown_task_exit_with_argparse_message(capsys):
    with pytest.raises(SystemExit):
        parse_config(["--model_name_or_path", "m", "--train_file", "t", "--task_name", "sentiment"])
    assert "invalid choice: 'sentiment'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config(["--model_name_or_path", "m", "--train_file", "t", "--learning_rate", "fast"])
    assert "--learning_rate" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--stride", "100"], "--stride"),
    (["--checkpointing_steps", "often"], "--checkpointing_steps"),
    (["--warmup_ratio", "1.5"], "--warmup_ratio"),
])
def test_invalid_values_are_refused(flags, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(["--model_name_or_path", "m", "--train_file", "t"] + flags)


def test_readme_lists_every_option():
    from tokclf.config import field_types
    page = (ROOT / "docs" / "options.md").read_text()  # the README's options table moved there
    missing = [name for name in field_types() if f"`--{name}`" not in page]
    assert not missing
