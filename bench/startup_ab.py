"""Python's garbage collector over a tokclf process (tokclf/runtime/collector.py) A/B: whole processes of tokclf's
commands, alternating between Python's collection as usual (TOKCLF_FREEZE_STARTUP=0) and tokclf's default (the
collector paused through startup, what startup built frozen). Each process is timed start to exit, so the imports
and the interpreter's shutdown count. Prints each process's seconds, then each command's medians and their ratio.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/startup_ab.py --model OUTPUT_DIR [--rounds 3] [--commands train predict]

OUTPUT_DIR: a training run's folder for evaluate and predict (train starts from --base_model, the MiniLM), such as the
quick start's (configs/minilm-ner-offline.yaml). train: 2 steps without validation; evaluate: the validation
split; predict: the test file as CoNLL.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from run import MINILM, ROOT, run_measured

ARMS = {"as_usual": {"TOKCLF_FREEZE_STARTUP": "0"}, "frozen": {"TOKCLF_FREEZE_STARTUP": "1"}}
TOKCLF = [sys.executable, "-m", "tokclf"]


def command_line(command: str, args, scratch: Path) -> list[str]:
    data = Path(args.data_dir)
    if command == "train":
        return [sys.executable, "train_token_classification.py", "--model_name_or_path", args.base_model,
                "--train_file", str(data / "eng.train"), "--max_train_steps", "2", "--per_device_train_batch_size",
                "32", "--output_dir", str(scratch / "train"), "--no_report", "--mixed_precision", "no"]
    if command == "evaluate":
        return [*TOKCLF, "evaluate", "--model", args.model, "--data_dir", str(data), "--split", "validation"]
    return [*TOKCLF, "predict", "--model", args.model, "--input", str(data / "eng.testb"),
            "--output", str(scratch / "tags.conll")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a training run's output folder")
    parser.add_argument("--base_model", default=MINILM, help="what train starts from")
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commands", nargs="+", choices=("train", "evaluate", "predict"),
                        default=["train", "evaluate", "predict"])
    args = parser.parse_args()
    seconds = {(c, arm): [] for c in args.commands for arm in ARMS}
    for round_ in range(args.rounds):
        for command in args.commands:
            for arm in ARMS:
                with tempfile.TemporaryDirectory() as scratch:
                    wall, _ = run_measured(command_line(command, args, Path(scratch)), ARMS[arm])
                seconds[command, arm].append(wall)
                print(f"round {round_ + 1} {command} {arm}: {wall:.2f} s", flush=True)
    for command in args.commands:
        usual, frozen = (statistics.median(seconds[command, arm]) for arm in ARMS)
        print(f"{command}: as_usual {usual:.2f} s, frozen {frozen:.2f} s ({usual / frozen:.2f}x)")


if __name__ == "__main__":
    main()
