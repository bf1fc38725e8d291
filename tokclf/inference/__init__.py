"""Using a trained model: the saved model, windows back to word scores and metrics, decoding."""
