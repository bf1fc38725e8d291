"""The training run: recipe, loop, step protocol, handlers, checkpoints, optimizer, card, Hub uploads."""
