"""The output folder type: every name in one place, and the checks on output paths."""

import json

import pytest

from tokclf.errors import ConfigError
from tokclf.runtime.outdir import OutputDir, append_jsonl, keep_first_lines, prepare_output_file, read_jsonl


def test_every_path_of_an_output_folder_is_named_once(tmp_path):
    out = OutputDir(tmp_path)
    assert out.weights == tmp_path / "model.safetensors" and out.best == tmp_path / "best"
    assert out.args == tmp_path / "args.json" and out.config_yaml == tmp_path / "config.yaml"
    assert out.all_results == tmp_path / "all_results.json" and out.card == tmp_path / "README.md"
    assert out.results_log == tmp_path / "results.jsonl" and out.train_log == tmp_path / "train_log.jsonl"
    assert out.tracker_dir == tmp_path / "tokclf"
    assert out.checkpoint(OutputDir.step_checkpoint_name(40)) == tmp_path / "step_40"
    assert OutputDir.epoch_checkpoint_name(2) == "epoch_2"


def test_checkpoint_folders_are_step_and_epoch_folders_only(tmp_path):
    for name in ("step_10", "epoch_0", "best", ".tmp-step_20", "step_x", "steps_3"):
        (tmp_path / name).mkdir()
    found = sorted(p.name for p in OutputDir(tmp_path).checkpoint_folders())
    assert found == ["epoch_0", "step_10"]
    assert OutputDir(tmp_path / "missing").checkpoint_folders() == []


def test_args_of_a_folder_without_them_are_empty(tmp_path):
    out = OutputDir(tmp_path)
    assert out.read_args() == {}
    out.args.write_text(json.dumps({"max_length": 64}))
    assert out.read_args() == {"max_length": 64}


def test_logs_are_appended_and_rewound(tmp_path):
    log = tmp_path / "train_log.jsonl"
    for step in (1, 2, 3):
        append_jsonl(log, {"step": step})
    keep_first_lines(log, lambda i, record: record["step"] <= 2)
    assert read_jsonl(log) == [{"step": 1}, {"step": 2}]


def test_an_output_file_folder_is_made_and_bad_paths_fail_at_once(tmp_path):
    target = prepare_output_file(str(tmp_path / "new" / "deeper" / "e.json"), "--output_file")
    assert target.parent.is_dir() and not target.exists()
    with pytest.raises(ConfigError, match=r"--output_file .*: is a folder; give a file name"):
        prepare_output_file(str(tmp_path), "--output_file")
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(ConfigError, match=r"--output .*cannot create its folder"):
        prepare_output_file(str(tmp_path / "blocker" / "out.jsonl"), "--output")
