"""Fine-tune a Transformers model for token classification (NER, POS, chunking) with Accelerate.

    accelerate launch train_token_classification.py --config configs/conll2003-ner.yaml
"""

from tokclf.runtime.collector import paused_for_startup

if __name__ == "__main__":
    with paused_for_startup():  # this process is one run: tokclf/runtime/collector.py says why
        from tokclf.cli import train_main

        train_main()
