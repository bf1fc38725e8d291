"""The machine: the Accelerator, precision, model and tokenizer loading, output folders."""
