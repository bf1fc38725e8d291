"""What a run leaves behind and publishes: TensorBoard events, the Hub upload, and no token anywhere."""

import json
from pathlib import Path


import tokclf.training.hub
from hub_server import fake_hub, hub_online  # noqa: F401  (fixtures)
from tokclf.config import parse_config
from tokclf.training.recipe import train

TOKEN = "hf_tokclfTestSecret0123456789"


def scalar_steps(logdir: Path) -> dict[str, list[int]]:
    """tag → steps, from every TensorBoard event file under logdir."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps: dict[str, list[int]] = {}
    for events in logdir.rglob("events.out.tfevents*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            steps.setdefault(tag, []).extend(e.step for e in accumulator.Scalars(tag))
    return steps


def hparams_logged(logdir: Path) -> bool:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for events in logdir.rglob("events.out.tfevents*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        try:
            if accumulator.PluginTagToContent("hparams"):
                return True
        except KeyError:  # this file holds no hparams summary
            continue
    return False


def test_tensorboard_events_hold_train_and_eval_scalars_at_their_steps(base_args):
    cfg = parse_config(base_args + ["--with_tracking", "--report_to", "tensorboard", "--logging_steps", "5"])
    train(cfg)
    steps = scalar_steps(Path(cfg.output.output_dir))
    for tag in ("train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_second",
                "train/samples_per_second"):
        assert sorted(steps[tag]) == [5, 10, 15, 20, 25, 30], tag
    for tag in ("eval_f1", "eval_precision", "eval_accuracy", "eval_PER_f1", "eval_LOC_f1"):
        assert sorted(steps[tag]) == [15, 30], tag
    assert hparams_logged(Path(cfg.output.output_dir))


def test_push_to_hub_uploads_the_final_folder_without_checkpoints_or_token(base_args, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    cfg = parse_config(base_args + ["--push_to_hub", "--hub_model_id", "tester/tiny-ner", "--hub_token", TOKEN,
                                    "--hub_strategy", "epoch", "--checkpointing_steps", "10", "--with_tracking",
                                    "--report"])  # base_args skip the report; the card links its curves
    results = train(cfg)
    out = Path(cfg.output.output_dir)
    uploaded = fake_hub.files["tester/tiny-ner"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "all_results.json"} <= set(uploaded)
    assert not [p for p in uploaded if p.startswith(("step_", "epoch_", "tokclf/", ".tmp-"))]
    # The last commit carries the final results and the card (upstream pushes before writing them).
    assert json.loads(uploaded["all_results.json"]) == results
    assert uploaded["README.md"] == (out / "README.md").read_bytes()
    # the card shows the report's curves, which go up with it; the report's sentences do not (#28)
    assert b"](report/figures/curves.png)" in uploaded["README.md"] and "report/figures/curves.png" in uploaded
    assert not {"report/index.html", "report/report.json"} & set(uploaded)
    assert fake_hub.count("commit") == 3  # after each of the 2 epochs (hub_strategy epoch) and at the end
    leaks = [p for p in out.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert not leaks
    assert json.loads((out / "args.json").read_text())["hub_token"] == "***"


def test_a_failing_hub_never_stops_training(base_args, fake_hub, monkeypatch, capfd):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setattr(tokclf.training.hub, "RETRY_BACKOFF_SECONDS", 0.0)
    fake_hub.fail_next(1000, status=500)
    cfg = parse_config(base_args + ["--push_to_hub", "--hub_model_id", "tester/down", "--hub_token", TOKEN])
    results = train(cfg)
    assert results["step"] == 30 and (Path(cfg.output.output_dir) / "model.safetensors").is_file()
    err = capfd.readouterr().err
    assert "Hub upload 'final model'" in err and "failed after 4 attempts" in err and TOKEN not in err
