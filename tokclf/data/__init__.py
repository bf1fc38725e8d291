"""Data between reading and the model: split files, Arrow splits, tag schemes and labels, encoding, batching."""
