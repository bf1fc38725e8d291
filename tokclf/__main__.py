"""`python -m tokclf train|evaluate|predict ...`"""

import sys

from tokclf.cli import evaluate_main, train_main
from tokclf.predict import predict_main

COMMANDS = {"train": train_main, "evaluate": evaluate_main, "predict": predict_main}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m tokclf {{{','.join(COMMANDS)}}} [options]  (--help after a command lists them)",
              file=sys.stderr)
        sys.exit(2)
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
