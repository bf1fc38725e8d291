"""Helpers the test modules share: launching real processes, ports, weights and logs on disk.
Test modules import from here (and conftest.py's fixtures), never from each other."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = str(ROOT / "train_token_classification.py")


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


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def all_results(out: Path) -> dict:
    return json.loads((out / "all_results.json").read_text())
