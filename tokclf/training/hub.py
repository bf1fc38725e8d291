"""Upload of the output folder to the Hugging Face Hub while training runs.

The main process makes one HubUploader. Uploads run one at a time on a worker thread, so training never
waits for the network and two commits never race; a failed upload is retried, then reported as one line,
never raised into training. Local files are only read."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tokclf.errors import ConfigError

# The events each --hub_strategy pushes at.
STRATEGY_EVENTS = {"end": {"end"}, "epoch": {"epoch", "end"}, "checkpoint": {"epoch", "checkpoint", "end"}}
CHECKPOINT_PATTERNS = ["step_*/*", "epoch_*/*"]
# A checkpoint still being written (.tmp-*), tracker event files (runs/, the tensorboard project folder
# tokclf/) and lock files are never model files.
# The report's page and numbers hold sentences of the data, which may not be public: only its figures
# (which the card shows) go up.
NEVER_UPLOADED = [".tmp-*/*", ".old-*/*", "runs/*", "tokclf/*", "*events.out.tfevents*", "*.lock",
                  "report/index.html", "report/report.json"]
RETRY_BACKOFF_SECONDS = 5.0  # doubled after every failed attempt


def ignore_patterns(include_checkpoints: bool) -> list[str]:
    """A new list on every call: upload_folder appends its own patterns to the list it is given."""
    return NEVER_UPLOADED + ([] if include_checkpoints else CHECKPOINT_PATTERNS)


class HubUploader:
    """Pushes output_dir to a Hub model repository in the background; `wants` says at which events."""

    def __init__(self, output_dir, repo_id: str | None = None, token: str | None = None, private: bool = False,
                 strategy: str = "end", endpoint: str | None = None, retries: int = 3, backoff: float | None = None):
        from huggingface_hub import HfApi, get_token

        if strategy not in STRATEGY_EVENTS:
            raise ConfigError(f"--hub_strategy {strategy}: expected one of {', '.join(STRATEGY_EVENTS)}.")
        self.output_dir = str(output_dir)
        self.repo_id = repo_id or Path(output_dir).resolve().name  # namespace added by the first push
        self.private = private
        self.strategy = strategy
        self.retries = retries
        self.backoff = RETRY_BACKOFF_SECONDS if backoff is None else backoff
        self._token = token or get_token()  # get_token: HF_TOKEN, then the cached login
        # huggingface_hub reads HF_ENDPOINT once, at import; read it here so a later setting counts too.
        endpoint = endpoint or os.environ.get("HF_ENDPOINT")
        self._api = HfApi(endpoint=endpoint.rstrip("/") if endpoint else None, token=self._token)
        self._repo_created = False
        self._errors: list[str] = []
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-upload")

    def wants(self, event: str) -> bool:
        """Whether the strategy pushes at `event`: "epoch", "checkpoint" or "end"."""
        if event not in STRATEGY_EVENTS["checkpoint"]:
            raise ValueError(f"unknown Hub push event {event!r}")
        return event in STRATEGY_EVENTS[self.strategy]

    def push(self, message: str, include_checkpoints: bool = False) -> None:
        """Queue an upload of the folder as it is when the upload starts, and return at once."""
        self._worker.submit(self._upload, message, include_checkpoints)

    def finish(self, final_message: str = "final model") -> list[str]:
        """Push everything one last time, wait for all uploads and return their errors (empty: all succeeded)."""
        self.push(final_message, include_checkpoints=self.strategy == "checkpoint")
        self._worker.shutdown(wait=True)
        return list(self._errors)

    def _upload(self, message: str, include_checkpoints: bool) -> None:
        problem = self._blocker()
        if problem:
            self._report(message, problem)
            return
        for attempt in range(self.retries + 1):
            try:
                self._commit(message, include_checkpoints)
                return
            except Exception as error:  # anything: an upload must never stop training
                if attempt == self.retries:
                    self._report(message, f"failed after {attempt + 1} attempts: {type(error).__name__}: {error}")
                else:
                    time.sleep(self.backoff * 2 ** attempt)

    def _blocker(self) -> str | None:
        """Why no upload can work, said before any request is made."""
        from huggingface_hub import constants

        if constants.is_offline_mode():
            return "offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set); unset it to push."
        if not self._token:
            return "no Hub token: pass --hub_token, set HF_TOKEN or log in with `hf auth login`."
        return None

    def _commit(self, message: str, include_checkpoints: bool) -> None:
        if not self._repo_created:
            # private=None leaves the namespace's default visibility when private was not asked for.
            self.repo_id = self._api.create_repo(self.repo_id, private=self.private or None, exist_ok=True).repo_id
            self._repo_created = True
        self._api.upload_folder(repo_id=self.repo_id, folder_path=self.output_dir,
                                commit_message=f"tokclf: {message}",
                                ignore_patterns=ignore_patterns(include_checkpoints))

    def _report(self, message: str, problem: str) -> None:
        """Keep the error for finish() and print it as one line on stderr, the token blanked out."""
        line = " ".join(f"Hub upload '{message}' to {self.repo_id}: {problem}".split())
        if self._token:
            line = line.replace(self._token, "***")
        self._errors.append(line)
        print(f"warning: {line}", file=sys.stderr, flush=True)


def uploader_for(output) -> HubUploader:
    """The background uploader of a training run's output options (main process only)."""
    return HubUploader(output.output_dir, repo_id=output.hub_model_id, token=output.hub_token,
                       private=output.hub_private_repo, strategy=output.hub_strategy)
