"""Python's cyclic garbage collector over the life of a tokclf process.

A tokclf command imports torch, transformers, datasets and the rest and builds a model: about 470,000 objects
that CPython's cyclic collector tracks and that all live until the process ends. Each full collection (of the
oldest generation) walks every one of them: on the 2-core EPYC seven of those ran while a training process
started (1.5 s), more during an evaluation and more while the interpreter shut down (2-3 s). A collection at the
end of a training run's setup found 11,859 unreachable objects, and freeing them gave back no resident memory.

So a process that runs one command (train_token_classification.py, `tokclf ...`) starts with the collector
off; once the command's setup is done (model loaded, data encoded, optimizer made; for `tokclf tune`, before its
first trial, so that each trial's model is collected as usual when the trial ends) it freezes everything that
exists (`gc.freeze()`: moved to a permanent generation that collections skip, so the shutdown skips it too) and
turns the collector back on for what training, evaluation or prediction create. Nothing about the computation
changes. What the startup left as cyclic garbage stays allocated (no resident memory, measured as above).
Callers inside another program (tests, notebooks, `tokclf.cli.train_main`) are left alone: only the process entry
points pause the collector. TOKCLF_FREEZE_STARTUP=0 keeps Python's collection as usual (the bench's
`gc_as_usual` row).
"""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager

FREEZE_STARTUP_ENV = "TOKCLF_FREEZE_STARTUP"
_paused = False  # whether this process's entry point turned the collector off and startup is not yet done


@contextmanager
def paused_for_startup():
    """Around a command that is the whole life of this process: the collector is off until startup_done()
    (or until the command ends, if it stops before its setup is done)."""
    global _paused
    if os.environ.get(FREEZE_STARTUP_ENV, "1") == "0" or not gc.isenabled():
        yield
        return
    gc.disable()
    _paused = True
    try:
        yield
    finally:
        if _paused:  # stopped before its setup was done: the collector as it was
            _paused = False
            gc.enable()


def startup_done() -> None:
    """The command's long-lived objects exist: freeze them and collect again what comes after.
    Does nothing unless a process entry point paused the collector (and only the first time)."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    gc.enable()
