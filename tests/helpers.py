"""Helpers the test modules share: launching real processes, ports, weights and logs on disk.
Test modules import from here (and conftest.py's fixtures), never from each other."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = str(ROOT / "train_token_classification.py")
# tokclf's own code by module name (tokclf/runtime/accel.py, ...): what a traceback frame of it ends with,
# wherever the checkout or the installed package lives (a path may hold `tokclf` anywhere: /home/u/tokclf/.venv).
OWN_MODULES = tuple(sorted({p.relative_to(ROOT).as_posix() for p in (ROOT / "tokclf").rglob("*.py")}
                           | {Path(ENTRY).name}))
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+', re.MULTILINE)


# The error-analysis report costs a tiny run about 1 s more than its training (matplotlib drawing), so the
# suite's shared arguments skip it; tests/test_report.py trains with the default (report written) and checks it.
NO_REPORT = ("--no_report",)

def tokclf_frames(output: str) -> list[str]:
    """The files of the traceback frames in output that run tokclf's own code (by module, not by a
    substring a checkout's path could hold)."""
    paths = [m["path"].replace("\\", "/") for m in _FRAME.finditer(output)]
    return [path for path in paths if any(path == name or path.endswith("/" + name) for name in OWN_MODULES)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_process() -> list[str]:
    return ["--num_processes", "1", "--cpu"]


def two_processes() -> list[str]:
    # Exactly what a user types on a GPU box; here, on a CPU-only machine.
    return ["--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port())]


def processes_flags(processes: int) -> list[str]:
    return one_process() if processes == 1 else two_processes()


def launch(launch_args: list[str], script_args: list[str], script=(ENTRY,), new_session: bool = False):
    """`accelerate launch LAUNCH_ARGS SCRIPT SCRIPT_ARGS` as a real subprocess, output merged into stdout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch_args, *script, *script_args]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=new_session)


def finish(proc, timeout=600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def start(args: list[str], processes: int) -> subprocess.Popen:
    """A training of 1 or 2 processes in a session of its own (so that it can be killed as a group)."""
    return launch(processes_flags(processes), args, new_session=True)


def run_to_end(args, processes) -> str:
    return finish(start(args, processes))


def kill_everything(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every process under it, as losing the machine would. Killing the
    launcher's process group is not enough: torch's elastic agent starts each worker in a session of
    its own, so the workers would live on as orphans and keep writing checkpoints."""
    import psutil

    launcher = psutil.Process(proc.pid)
    everyone = [launcher] + launcher.children(recursive=True)
    for process in everyone:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    _, alive = psutil.wait_procs(everyone, timeout=30)
    assert not alive, alive


def kill_after(args, processes, checkpoint: Path) -> None:
    """Start a run and SIGKILL its whole process group as soon as `checkpoint` is complete."""
    import time

    proc = start(args, processes)
    deadline = time.time() + 300
    while not (checkpoint / "loop_state.json").is_file():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.01)
    kill_everything(proc)


def max_weight_diff(a: Path, b: Path, weights: str = "model.safetensors") -> float:
    """The largest difference between two saved models' weights (or adapters': adapter_model.safetensors)."""
    from safetensors.torch import load_file

    x, y = load_file(a / weights), load_file(b / weights)
    return max((x[k] - y[k]).abs().max().item() for k in x)


def random_head_model(tiny_model: Path, folder: Path, names: list[str], **args) -> Path:
    """The tiny BERT with a random head over names, saved as a trained model folder (args.json: args, NER)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_model, id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    with torch.no_grad():  # large random weights: varied tags, many of them invalid under argmax
        model.classifier.weight.normal_(0, 0.5)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    (folder / "args.json").write_text(json.dumps({"task_name": "ner", **args}))
    return folder


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def train_each(tiny_model: Path, data_dirs: list[Path], tmp_path_factory) -> list[Path]:
    """A model trained on each data folder with the same options (fp32, words split on whitespace): a
    format holding another's words and tags trains to the same digits."""
    from tokclf.cli import train_main

    base = ["--model_name_or_path", str(tiny_model), "--word_split", "whitespace",
            "--per_device_train_batch_size", "16", "--learning_rate", "1e-2", "--num_train_epochs", "2",
            "--seed", "7", "--max_length", "64", "--stride", "16", "--mixed_precision", "no", *NO_REPORT]
    models = []
    for data in data_dirs:
        out = tmp_path_factory.mktemp("model")
        train_main(base + ["--data_dir", str(data), "--output_dir", str(out)])
        models.append(out)
    return models


def assert_same_scores(ours: Path, theirs: Path, keys=("eval_f1", "train_loss", "test_f1")) -> None:
    """Two runs' all_results.json agree to the digit on keys, and learned something."""
    a, b = (json.loads((m / "all_results.json").read_text()) for m in (ours, theirs))
    assert [a[k] for k in keys] == [b[k] for k in keys] and a["eval_f1"] > 0, (a, b)


def all_results(out: Path) -> dict:
    return json.loads((out / "all_results.json").read_text())


# Under bf16 autocast two runs that do the same arithmetic in another order (a batch of 32 against 4 of 8,
# fused against plain AdamW, compiled against eager kernels) round differently: bf16 keeps 8 bits of
# mantissa, so each matmul differs by ~4e-3 relative, and the runs drift apart by a fraction of a percent of
# how far training moved the weights (measured: 0.24% for accumulation on the tiny BERT). A real change of
# the arithmetic (batch 16 in place of 32: 64% of the movement) is far above BF16_DRIFT.
BF16_DRIFT = 0.02


def drift(a: dict, b: dict, start: Path) -> float:
    """How far apart two trained state dicts are, as a fraction of how far `a` moved from the pretrained
    weights in `start` (a model folder): ||a - b|| / ||a - start|| over the weights both have."""
    from safetensors.torch import load_file

    pretrained = load_file(start / "model.safetensors")
    begin = {name: pretrained.get(name, pretrained.get(name.split(".", 1)[-1])) for name in a}
    shared = [name for name in a if begin[name] is not None and begin[name].shape == a[name].shape]
    assert shared, "no pretrained weight matches the trained model's"
    apart = sum(float(((a[n] - b[n]) ** 2).sum()) for n in shared) ** 0.5
    moved = sum(float(((a[n] - begin[n]) ** 2).sum()) for n in shared) ** 0.5
    return apart / moved


def assert_trained_alike(a: dict, b: dict, precision: str, start: Path, fp32_atol: float = 1e-5) -> None:
    """fp32: every weight within fp32_atol. bf16: within BF16_DRIFT of the training's movement."""
    assert a.keys() == b.keys()
    if precision == "no":
        for name, value in a.items():
            assert (value - b[name]).abs().max().item() <= fp32_atol, name
    else:
        assert drift(a, b, start) < BF16_DRIFT


def prepared_tags(split_tags: dict, scheme: str, task: str, *, sentences: dict = None, **options):
    """Training's label preparation (tag_columns.prepare_columns) of tags given as lists, or of `sentences`
    read from files ({split: Sentence list}, so that errors name file:line): ({split: tag lists}, labels)."""
    from tokclf.data.arrow_data import sentences_split
    from tokclf.records import Sentence
    from tokclf.data.tag_columns import prepare_columns

    sentences = sentences or {}
    splits = {}
    for split, tags in split_tags.items():
        given = sentences.get(split) or [Sentence(["w"] * len(t), list(t)) for t in tags]
        splits[split] = sentences_split(given, given[0].source if given else None)
    gold, labels = prepare_columns(splits, scheme, task, **options)
    return {split: [list(t) for t in tags] for split, tags in gold.items()}, labels
