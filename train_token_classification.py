"""Fine-tune a Transformers model for token classification (NER, POS, chunking) with Accelerate.

    accelerate launch train_token_classification.py --config configs/conll2003-ner.yaml
"""

from tokclf.cli import train_main

if __name__ == "__main__":
    train_main()
