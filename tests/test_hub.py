"""HubUploader: the real huggingface_hub upload code, over HTTP, against the fake Hub in hub_server.py."""

from __future__ import annotations

import time

import pytest
from hub_server import fake_hub, fingerprint, hub_online  # noqa: F401  (fixtures)

from tokclf.training.hub import HubUploader

TOKEN = "hf_fakeSecretToken0123456789"
MODEL_FILES = ["config.json", "model.safetensors", "tokenizer.json", "all_results.json", "README.md"]
EXCLUDED = ["step_10/model.safetensors", "epoch_0/optimizer.bin", ".tmp-step_20/model.safetensors",
            "runs/events.out.tfevents.1.host", "tokclf/events.out.tfevents.2.host", "model.safetensors.lock"]


@pytest.fixture
def output_dir(tmp_path):
    """A training output folder named `ner-run`: model files, checkpoints and tracker logs."""
    folder = tmp_path / "ner-run"
    for name in MODEL_FILES + EXCLUDED:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(f"contents of {name}".encode())
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# ner-run\n")
    return folder


def uploader(output_dir, hub, **kwargs) -> HubUploader:
    return HubUploader(output_dir, token=TOKEN, endpoint=hub.url, backoff=0.0, **kwargs)


def snapshot(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_wants_follows_the_strategy(tmp_path):
    pushes = {strategy: [event for event in ("epoch", "checkpoint", "end")
                         if HubUploader(tmp_path, token=TOKEN, strategy=strategy).wants(event)]
              for strategy in ("end", "epoch", "checkpoint")}
    assert pushes == {"end": ["end"], "epoch": ["epoch", "end"], "checkpoint": ["epoch", "checkpoint", "end"]}


@pytest.mark.parametrize("xet", [True, False], ids=["xet-pipeline", "single-commit"])
def test_push_uploads_model_files_but_not_checkpoints_or_tracker_logs(output_dir, fake_hub, monkeypatch, xet):
    """upload_folder takes another code path when hf_xet is not installed: both must work."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", not xet)
    hub = uploader(output_dir, fake_hub)
    hub.push("epoch 1")
    assert hub.finish() == []
    assert hub.repo_id == "tester/ner-run"  # the folder's name, namespace resolved by create_repo
    assert fake_hub.count("create") == 1  # once, lazily, for both pushes
    assert fake_hub.visibility["tester/ner-run"] is None  # the namespace's default
    assert None not in {r.endpoint for r in fake_hub.requests}  # the fake knows every request made
    files = fake_hub.files["tester/ner-run"]
    assert sorted(files) == sorted(MODEL_FILES)
    assert files["all_results.json"] == (output_dir / "all_results.json").read_bytes()


def test_checkpoint_strategy_uploads_checkpoint_folders(output_dir, fake_hub):
    hub = uploader(output_dir, fake_hub, strategy="checkpoint", private=True)
    hub.push("step 10", include_checkpoints=True)
    assert hub.finish() == []
    assert fake_hub.visibility["tester/ner-run"] == "private"
    files = fake_hub.files["tester/ner-run"]
    assert {"step_10/model.safetensors", "epoch_0/optimizer.bin"} <= set(files)
    assert not {".tmp-step_20/model.safetensors", "runs/events.out.tfevents.1.host"} & set(files)


def test_failing_commits_are_retried_then_reported_never_raised(output_dir, fake_hub, capfd):
    before = snapshot(output_dir)
    fake_hub.fail_next(1000, status=500, endpoint="commit")
    hub = uploader(output_dir, fake_hub, retries=2)
    hub.push("epoch 1")
    errors = hub.finish()
    assert len(errors) == 2  # one per push, each after 1 + 2 attempts
    assert fake_hub.count("commit") == 6
    assert "failed after 3 attempts" in errors[0] and "500" in errors[0]
    assert snapshot(output_dir) == before
    assert "Hub upload 'final model'" in capfd.readouterr().err


def test_push_returns_before_the_upload_is_done(output_dir, fake_hub):
    fake_hub.delay = 0.2  # on every request: create, validate, preupload and commit take 0.8 s
    hub = uploader(output_dir, fake_hub)
    started = time.monotonic()
    hub.push("epoch 1")
    assert time.monotonic() - started < 0.05
    assert fake_hub.count("commit") == 0
    assert hub.finish() == []
    # the epoch's push commits; finish()'s final push finds nothing changed, and huggingface_hub
    # skips an empty commit
    assert fake_hub.count("commit") == 1


def test_token_argument_is_sent_as_bearer(output_dir, fake_hub):
    assert uploader(output_dir, fake_hub).finish() == []
    assert {r.auth for r in fake_hub.requests} == {fingerprint(f"Bearer {TOKEN}")}


def test_token_and_endpoint_from_the_environment(output_dir, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    assert HubUploader(output_dir, backoff=0.0).finish() == []
    assert {r.auth for r in fake_hub.requests} == {fingerprint(f"Bearer {TOKEN}")}


def test_token_never_printed_or_returned(output_dir, fake_hub, capfd):
    fake_hub.fail_next(1000, status=500)  # its error messages echo the Authorization header
    errors = uploader(output_dir, fake_hub, retries=1).finish()
    out, err = capfd.readouterr()
    assert errors and "request authorization: Bearer ***" in errors[0]
    assert TOKEN not in "\n".join(errors) + out + err


def test_offline_mode_is_an_error_string_not_an_exception(output_dir, fake_hub, monkeypatch, capfd):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub = uploader(output_dir, fake_hub)
    hub.push("epoch 1")
    errors = hub.finish()
    assert len(errors) == 2 and all("offline mode is on" in e for e in errors)
    assert fake_hub.requests == []
    assert "HF_HUB_OFFLINE" in capfd.readouterr().err
