"""`tokclf train|evaluate|predict|tune ...` (also `python -m tokclf ...`)."""

import sys

from tokclf.cli import evaluate_main, predict_main, train_main, tune_main
from tokclf.runtime.collector import paused_for_startup

COMMANDS = {"train": train_main, "evaluate": evaluate_main, "predict": predict_main, "tune": tune_main}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: tokclf {{{','.join(COMMANDS)}}} [options]  (--help after a command lists them)",
              file=sys.stderr)
        sys.exit(2)
    with paused_for_startup():  # this process is one command: tokclf/runtime/collector.py says why
        COMMANDS[argv[0]](argv[1:])
    return 0  # the console script exits with main()'s value: success is 0, not the command's result


if __name__ == "__main__":
    main()
